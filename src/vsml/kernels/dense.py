"""The fused dense-layer tick as a JAX function (XLA FFI custom call with a fused backward pass).

    h, c, red_b, red_a = dense_ticks(wh, u, v, h, c, micro_ticks)                 # core mode
    h, c, nf, nb = dense_ticks(wh, u, v, h, c, micro_ticks, heads=(whead, bhead))  # cell-norm mode

Shapes (batch leading; optional extra leading *group* dims, broadcast like NumPy, e.g. one set of
weights per ES member): ``wh [N, 4N]``, ``u [batch, A, 4N]`` (= fwd_in @ wx[:M]), ``v [batch, B, 4N]``
(= bwd_in @ wx[M:] + b), ``h, c [batch, A·B, N]`` (cell a·B + b). All ``micro_ticks`` LSTM ticks
``z = h @ wh + u[a] + v[b]; (h, c) = lstm_gates(z, c)`` run in one call, then

  * core mode: ``red_b [batch, B, N] = Σ_a h_ab`` and ``red_a [batch, A, N] = Σ_b h_ab``;
  * cell-norm mode (``whead [N, 2M] = [W_f | W_b]``, ``bhead [2M] = [b_f | b_b]``): every cell's
    messages ``h_ab W_f + b_f`` and ``h_ab W_b + b_b`` are layer-normalised over their M channels
    (eps 1e-5, no affine), and ``nf [batch, B, M] = Σ_a``, ``nb [batch, A, M] = Σ_b`` of them. The
    learned LayerNorm scale/bias and any division by the number of senders are applied in JAX.

:func:`dense_ticks` composes with ``jit``, ``lax.scan``, ``jax.checkpoint``, ``grad`` (a
``custom_vjp`` whose backward pass is a second fused kernel that recomputes the ticks) and
``vmap`` (vmapped axes become group dims of one kernel call: ``vmap_method="broadcast_all"``). The
state buffers ``h, c`` (and the cotangents ``dh, dc`` in the backward call) are updated in place
(``input_output_aliases``), which saves XLA a copy of the state per step inside ``lax.scan``.
:func:`dense_ticks_xla` is the same contract in plain JAX (reference for tests).

Several devices: XLA's partitioner cannot split a custom call, so a call whose operands are
sharded would run on the whole gathered axis on every device. Traced under :func:`per_device`
(what :func:`vsml.meta.sharding.sharded_vmap` sets around a ``vmap`` over the mesh's axis,
``spmd_axis_name``), every call is a ``shard_map`` over the mesh instead, so each device runs
the kernel on its own share of the mapped axis (forward and backward call alike).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from jax.ad_checkpoint import checkpoint_name
from jax.sharding import PartitionSpec

from vsml.errors import VSMLError
from vsml.kernels import _ffi
from vsml.kernels.ops import lstm_gates, matmul, normalize, outer_add, reduced_messages, sum_axis1

KINDS = ("auto", "fused", "xla")
# Name of the fused call's reduced outputs (the messages) for ``jax.checkpoint`` policies: a step
# rematerialised with :data:`REMAT_POLICY` keeps them (a few KB per layer and step) instead of
# recomputing them, so its backward pass does not run the forward kernel a second time (the
# backward kernel recomputes the ticks from the step's inputs itself).
REMAT_NAME = "vsml_fused_messages"
# vmap: every vmapped axis becomes a leading group dim of the one kernel call, all operands broadcast
# to it (weights are tiny; it lets the state buffers be updated in place, input_output_aliases).
VMAP_METHOD = "broadcast_all"
ENV_VAR = "VSML_KERNEL"


class KernelUnavailableError(VSMLError, RuntimeError):
    """``kernel: fused`` was requested but the fused CPU kernel cannot run here."""


class FusedKernelWarning(UserWarning):
    """``kernel: auto`` fell back to the pure-JAX (XLA) kernels."""


# The mesh whose devices each run the fused calls traced under `per_device` on their own share
# (None: calls are traced as they are, one call over whatever operands XLA gives them).
_PER_DEVICE: contextvars.ContextVar = contextvars.ContextVar("vsml_kernel_per_device", default=None)


@contextlib.contextmanager
def per_device(mesh):
    """Trace the fused calls made inside as a ``shard_map`` over ``mesh`` (a mesh of one device:
    no change). Meant for the body of a ``vmap(..., spmd_axis_name=<mesh axis>)`` whose mapped
    axis is split over the mesh (:func:`vsml.meta.sharding.sharded_vmap`): ``shard_map``'s
    batching rule then splits that axis over the devices, and each device runs the kernel on its
    share. Outside such a ``vmap`` the call runs whole on every device (replicated operands),
    as an unpartitioned custom call would. Nested uses keep the outer mesh."""
    outer = _PER_DEVICE.get()
    token = _PER_DEVICE.set(
        outer if outer is not None else (mesh if mesh is not None and mesh.devices.size > 1 else None)
    )
    try:
        yield
    finally:
        _PER_DEVICE.reset(token)


def per_device_mesh():
    """The mesh set by an enclosing :func:`per_device` (None outside one, or for one device)."""
    return _PER_DEVICE.get()


def _on_each_device(fn, mesh):
    """``fn`` (one FFI call) as a ``shard_map`` over ``mesh`` with every operand and result
    replicated in its own dims: under a ``vmap`` with ``spmd_axis_name`` the mapped axis is the
    one split over the devices. ``check_vma=False``: the body is a single call, a pure per-device
    map (the FFI call has no rule for varying manual axes)."""
    if mesh is None:
        return fn
    spec = PartitionSpec()
    if hasattr(jax, "shard_map"):
        return jax.shard_map(fn, mesh=mesh, in_specs=spec, out_specs=spec, check_vma=False)
    from jax.experimental.shard_map import shard_map  # jax < 0.7 (not exercised by the suite)

    try:
        return shard_map(fn, mesh=mesh, in_specs=spec, out_specs=spec, check_vma=False)
    except TypeError:  # before check_rep was renamed
        return shard_map(fn, mesh=mesh, in_specs=spec, out_specs=spec, check_rep=False)


def remat_policy():
    """``jax.checkpoint`` policy of a rematerialised step: save the fused kernel's messages
    (:data:`REMAT_NAME`), recompute everything else. On the XLA path nothing carries the name, so
    it is the default policy (save nothing) there."""
    return jax.checkpoint_policies.save_only_these_names(REMAT_NAME)


# --------------------------------------------------------------------------------------------
# Selection


def _smoke_test() -> None:
    """Run the fused kernel on a tiny problem against the XLA path (raises on any mismatch)."""
    k = jax.random.split(jax.random.PRNGKey(0), 5)
    wh = jax.random.normal(k[0], (4, 16)) * 0.3
    u, v = jax.random.normal(k[1], (1, 3, 16)), jax.random.normal(k[2], (1, 2, 16))
    h, c = jax.random.normal(k[3], (1, 6, 4)), jax.random.normal(k[4], (1, 6, 4))
    got = jax.jit(lambda *a: _fused(*a, 2, None, None))(wh, u, v, h, c)
    want = jax.jit(lambda *a: dense_ticks_xla(*a, 2))(wh, u, v, h, c)
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-4, atol=1e-5)


@functools.cache
def unavailable_reason() -> str | None:
    """Why the fused kernel cannot run in this process, or None when it can. Cached.

    Checks that the compiled library loads and registers its FFI targets; when it was compiled
    against another jaxlib version than the one running, it is also run once on a tiny problem.
    """
    lib, reason = _ffi.load()
    if lib is None:
        return reason
    if not _ffi.build_jaxlib_matches():
        try:
            _smoke_test()
        except Exception as e:  # noqa: BLE001
            return (
                f"the compiled kernel ({_ffi.build_info()}) does not work with the installed jaxlib "
                f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); reinstall vsml to rebuild it"
            )
    return None


def available() -> bool:
    """True when the fused kernel can run in this process."""
    return unavailable_reason() is None


_warned = False


def _warn_fallback(reason: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(
            f"vsml: fused CPU kernel unavailable, using the pure-JAX (XLA) kernels, which are slower. "
            f"Reason: {reason}. Set {ENV_VAR}=xla or kernel: xla to silence this.",
            FusedKernelWarning,
            stacklevel=3,
        )


def resolve_kernel(kind: str = "auto") -> str:
    """``"fused"`` or ``"xla"`` for a ``VSMLConfig.kernel`` value.

    ``auto`` follows the environment variable ``VSML_KERNEL`` (auto | fused | xla) when set, and
    otherwise picks the fused kernel when it is available and JAX runs on CPU (one device or
    several: the meta-steps map the kernel per device, :func:`per_device`), else the XLA kernels
    (with one warning per process when the kernel is missing). ``fused`` raises
    :class:`KernelUnavailableError` when the kernel cannot run.
    """
    if kind not in KINDS:
        raise ValueError(f"kernel must be one of {KINDS}, got {kind!r}")
    if kind == "auto":
        env = os.environ.get(ENV_VAR, "").strip().lower()
        if env:
            if env not in KINDS:
                raise ValueError(f"environment variable {ENV_VAR}={env!r}: expected one of {', '.join(KINDS)}")
            kind = env
    if kind == "xla":
        return "xla"
    reason = unavailable_reason()
    if kind == "fused":
        if reason is not None:
            raise KernelUnavailableError(f"kernel 'fused' requested but the fused CPU kernel cannot run: {reason}")
        if jax.default_backend() != "cpu":
            raise KernelUnavailableError(f"kernel 'fused' runs on CPU only; the JAX backend is {jax.default_backend()}")
        return "fused"
    if reason is not None:
        _warn_fallback(reason)
        return "xla"
    # Several devices: the meta-steps map the episode / population axis with sharded_vmap, under
    # which every fused call runs per device on its share (per_device: shard_map), so the kernel
    # serves multi-device and multi-process runs too.
    return "fused" if jax.default_backend() == "cpu" else "xla"


def unsupported(*operands, state_size: int | None = None, head_size: int | None = None) -> str | None:
    """Why the fused kernel cannot compute a layer with these operands (None when it can).

    The kernel computes in float32 (any other dtype, e.g. float64 under ``jax_enable_x64``, is
    unsupported); it runs state sizes ``N <= 64`` on any CPU and larger multiples of the SIMD width
    (up to 64 vectors: 1024 with AVX-512) where the CPU has that width; cell-norm heads take
    ``M <= 256`` channels. Every micro-tick count, batch size and layer shape is supported.
    """
    for x in operands:
        if jnp.result_type(x) != jnp.float32:
            return f"operands of dtype {jnp.result_type(x)} (the kernel computes in float32)"
    if (reason := unavailable_reason()) is not None:
        return reason
    if state_size is not None and not _ffi.kernel_isa(int(state_size)):
        return f"state size {state_size} (this CPU's kernels run N <= 64 or multiples of its SIMD width)"
    if head_size is not None and head_size > 256:
        return f"message size {head_size} with per-cell LayerNorm (the kernel's heads take M <= 256)"
    return None


# --------------------------------------------------------------------------------------------
# The FFI calls


def _aligned(*xs_and_base_ranks):
    """Give every operand the same number of leading group dims (left-padded with 1s)."""
    lead_rank = max(x.ndim - r for x, r in xs_and_base_ranks)
    out, leads = [], []
    for x, r in xs_and_base_ranks:
        x = jnp.asarray(x, jnp.float32)
        x = x.reshape((1,) * (lead_rank - (x.ndim - r)) + x.shape)
        out.append(x)
        leads.append(x.shape[:lead_rank])
    return out, tuple(np.broadcast_shapes(*leads)) if leads else ()


def _fwd_call(wh, u, v, h, c, ticks, heads, mesh=None):
    ops = [(wh, 2), (u, 3), (v, 3), (h, 3), (c, 3)]
    if heads is not None:
        ops += [(heads[0], 2), (heads[1], 1)]
    ops, lead = _aligned(*ops)
    ops[3] = jnp.broadcast_to(ops[3], lead + ops[3].shape[len(lead) :])  # h, c: updated in place
    ops[4] = jnp.broadcast_to(ops[4], lead + ops[4].shape[len(lead) :])
    batch, cells, n = ops[3].shape[-3:]
    a, b = ops[1].shape[-2], ops[2].shape[-2]
    r = n if heads is None else ops[5].shape[-1] // 2
    f32 = jnp.float32
    shapes = (
        jax.ShapeDtypeStruct(lead + (batch, cells, n), f32),
        jax.ShapeDtypeStruct(lead + (batch, cells, n), f32),
        jax.ShapeDtypeStruct(lead + (batch, b, r), f32),
        jax.ShapeDtypeStruct(lead + (batch, a, r), f32),
    )
    target = "vsml_dense_fwd" if heads is None else "vsml_dense_fwd_cellnorm"
    call = jax.ffi.ffi_call(target, shapes, vmap_method=VMAP_METHOD, input_output_aliases={3: 0, 4: 1})
    return tuple(_on_each_device(lambda *a: call(*a, ticks=np.int64(ticks)), mesh)(*ops))


def _unbroadcast(g, shape):
    """Sum a cotangent with broadcast leading dims back to ``shape``."""
    extra = g.ndim - len(shape)
    if extra:
        g = g.sum(tuple(range(extra)))
    axes = tuple(i for i, (s, t) in enumerate(zip(shape, g.shape)) if s == 1 and t != 1)
    return g.sum(axes, keepdims=True) if axes else g


def _bwd_call(ticks, res, cts, mesh=None):
    wh, u, v, h, c, heads = res
    ops = [(wh, 2), (u, 3), (v, 3), (h, 3), (c, 3)]
    if heads is not None:
        ops += [(heads[0], 2), (heads[1], 1)]
    ops += [(ct, 3) for ct in cts]
    ops, lead = _aligned(*ops)
    k = len(ops) - 4  # dh_out, dc_out: overwritten in place by dh, dc
    for i in (k, k + 1):
        ops[i] = jnp.broadcast_to(ops[i], lead + ops[i].shape[len(lead) :])
    f32 = jnp.float32
    base = [wh.shape[-2:], u.shape[-3:], v.shape[-3:], h.shape[-3:], c.shape[-3:]]
    if heads is not None:
        base += [heads[0].shape[-2:], heads[1].shape[-1:]]
    shapes = tuple(jax.ShapeDtypeStruct(lead + tuple(s), f32) for s in base)
    target = "vsml_dense_bwd" if heads is None else "vsml_dense_bwd_cellnorm"
    call = jax.ffi.ffi_call(target, shapes, vmap_method=VMAP_METHOD, input_output_aliases={k: 3, k + 1: 4})
    grads = _on_each_device(lambda *a: call(*a, ticks=np.int64(ticks)), mesh)(*ops)
    prim = [wh, u, v, h, c] + ([] if heads is None else list(heads))
    return [_unbroadcast(g, p.shape).astype(p.dtype) for g, p in zip(grads, prim)]


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6))
def _fused_core(wh, u, v, h, c, ticks, mesh):
    return _fwd_call(wh, u, v, h, c, ticks, None, mesh)


def _fused_core_fwd(wh, u, v, h, c, ticks, mesh):
    return _fwd_call(wh, u, v, h, c, ticks, None, mesh), (wh, u, v, h, c)


def _fused_core_bwd(ticks, mesh, res, cts):
    return tuple(_bwd_call(ticks, (*res, None), cts, mesh))


_fused_core.defvjp(_fused_core_fwd, _fused_core_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(7, 8))
def _fused_cellnorm(wh, u, v, h, c, whead, bhead, ticks, mesh):
    return _fwd_call(wh, u, v, h, c, ticks, (whead, bhead), mesh)


def _fused_cellnorm_fwd(wh, u, v, h, c, whead, bhead, ticks, mesh):
    return _fwd_call(wh, u, v, h, c, ticks, (whead, bhead), mesh), (wh, u, v, h, c, whead, bhead)


def _fused_cellnorm_bwd(ticks, mesh, res, cts):
    wh, u, v, h, c, whead, bhead = res
    return tuple(_bwd_call(ticks, (wh, u, v, h, c, (whead, bhead)), cts, mesh))


_fused_cellnorm.defvjp(_fused_cellnorm_fwd, _fused_cellnorm_bwd)


def _fused(wh, u, v, h, c, micro_ticks, heads, mesh):
    """The fused call; ``mesh`` (static, captured when the forward call is traced, so that the
    backward call traced later maps the same way): see :func:`per_device`."""
    if heads is None:
        return _fused_core(wh, u, v, h, c, int(micro_ticks), mesh)
    return _fused_cellnorm(wh, u, v, h, c, heads[0], heads[1], int(micro_ticks), mesh)


def dense_ticks(wh, u, v, h, c, micro_ticks: int, heads=None):
    """All micro ticks of a dense layer plus the reductions, as one fused kernel call (see module doc).

    Raises :class:`KernelUnavailableError` when the compiled kernel is not available.
    """
    reason = unavailable_reason()
    if reason is not None:
        raise KernelUnavailableError(f"the fused CPU kernel cannot run: {reason}")
    return _fused(wh, u, v, h, c, micro_ticks, heads, per_device_mesh())


# --------------------------------------------------------------------------------------------
# Plain-JAX reference of the same contract (no group dims; vmap it for groups)


def dense_ticks_xla(wh, u, v, h, c, micro_ticks: int, heads=None):
    """:func:`dense_ticks` in plain JAX with the primitives of :mod:`vsml.kernels.ops`."""
    batch, _, n = h.shape
    a, b = u.shape[1], v.shape[1]
    uv = outer_add(u, v)
    for _ in range(micro_ticks):
        h, c = lstm_gates(matmul(h, wh) + uv, c)
    if heads is None:
        h4 = h.reshape(batch, a, b, n)
        return h, c, sum_axis1(h4), h4.sum(2)
    whead, bhead = heads
    m = whead.shape[-1] // 2
    msg = matmul(h, whead) + bhead
    nf = normalize(msg[..., :m]).reshape(batch, a, b, m)
    nb = normalize(msg[..., m:]).reshape(batch, a, b, m)
    return h, c, sum_axis1(nf), nb.sum(2)


# --------------------------------------------------------------------------------------------
# The dense layer on the fused kernel


def fused_dense_layer(p, h, c, u, v, geom, *, micro_ticks: int, mean: bool, layer_norm: bool, cell_norm: bool):
    """A dense layer's tick after its two input products, on the fused kernel.

    ``p``: the sub-RNN's parameters (``wh``, the heads ``wf, bf, wb, bb`` and, with LayerNorm,
    ``ln_{f,b}_{scale,bias}``); ``u = fwd_in @ wx[:M]``, ``v = bwd_in @ wx[M:] + b``; ``geom =
    (A, B)``. Returns ``(h, c, fwd_out, bwd_out)``. ``cell_norm=False``: messages ``W·(reduced
    h) + count·b``, then LayerNorm when ``layer_norm`` (:func:`vsml.kernels.ops.reduced_messages`).
    ``cell_norm=True``: per-cell LayerNorm of each cell's message, then the sum over senders
    (averaged when ``mean``), with the learned LN scale / bias.
    """
    a, b = geom
    if not cell_norm:
        h, c, h_to_b, h_to_a = dense_ticks(p["wh"], u, v, h, c, micro_ticks)
        h_to_b, h_to_a = checkpoint_name((h_to_b, h_to_a), REMAT_NAME)
        if mean:
            h_to_b, h_to_a = h_to_b / a, h_to_a / b
        fwd_out, bwd_out = reduced_messages(p, h_to_b, h_to_a, a, b, mean, layer_norm)
        return h, c, fwd_out, bwd_out
    whead = jnp.concatenate([p["wf"], p["wb"]], axis=-1)
    bhead = jnp.concatenate([p["bf"], p["bb"]], axis=-1)
    h, c, nf, nb = dense_ticks(p["wh"], u, v, h, c, micro_ticks, heads=(whead, bhead))
    nf, nb = checkpoint_name((nf, nb), REMAT_NAME)
    if mean:
        nf, nb, count_f, count_b = nf / a, nb / b, 1.0, 1.0
    else:
        count_f, count_b = float(a), float(b)
    fwd_out = nf * p["ln_f_scale"] + count_f * p["ln_f_bias"]
    bwd_out = nb * p["ln_b_scale"] + count_b * p["ln_b_bias"]
    return h, c, fwd_out, bwd_out
