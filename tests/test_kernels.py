"""Fused CPU kernel (vsml.kernels) against the XLA kernels: values, gradients, vmap / groups,
every dense-layer option through the learner (episode scan with per-step remat, both the authors'
and the legacy semantics), the explicit XLA fallbacks (conv layers, unsupported operands, kernel
not built), selection and the one fallback warning.

Fused-only tests are skipped when the extension is not built (no compiler at install time)."""

from __future__ import annotations

import dataclasses
import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vsml import kernels
from vsml.config import ConfigError
from vsml.kernels import dense as kdense
from vsml.learners.base import TaskSpec, episode
from vsml.learners.vsml import LEGACY_SEMANTICS, VSML, LayerSpec, VSMLConfig

fused_only = pytest.mark.skipif(
    not kernels.available(), reason=f"fused kernel not built: {kernels.unavailable_reason()}"
)


def _inputs(a=5, b=3, n=16, m=8, batch=2, seed=0, groups=()):
    """Random operands (NumPy: eager jax.random calls would each compile)."""
    r = np.random.default_rng(seed)
    g = tuple(groups)

    def normal(*shape, scale=1.0):
        return jnp.asarray(scale * r.standard_normal((*g, *shape)), jnp.float32)

    return dict(
        wh=normal(n, 4 * n, scale=1 / np.sqrt(n)),
        u=normal(batch, a, 4 * n),
        v=normal(batch, b, 4 * n),
        h=normal(batch, a * b, n, scale=0.5),
        c=normal(batch, a * b, n),
        whead=normal(n, 2 * m, scale=1 / np.sqrt(n)),
        bhead=normal(2 * m),
    )


# Compile time dominates these tiny tests: XLA's backend optimisations off (a third of the time).
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


class _jit:
    """``jax.jit(fn)``, compiled on first call with :data:`FAST_COMPILE`."""

    def __init__(self, fn):
        self._jitted, self._compiled = jax.jit(fn), None

    def lower(self, *args):
        return self._jitted.lower(*args)

    def __call__(self, *args):
        if self._compiled is None:
            self._compiled = self._jitted.lower(*args).compile(FAST_COMPILE)
        return self._compiled(*args)


def _weighted_sum(outs):
    """A scalar that depends on every output entry with a different weight."""
    return sum((o * jnp.sin(0.37 * jnp.arange(o.size).reshape(o.shape))).sum() for o in outs)


def _close(got, want, tol, global_scale=False):
    """Equal up to ``tol`` relative to each leaf's largest entry (or the largest entry of all leaves:
    shift-invariant parameters have gradients that are pure rounding noise)."""
    top = max(float(jnp.abs(w).max()) for w in jax.tree.leaves(want))
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        scale = top if global_scale else max(float(jnp.abs(w).max()), 1e-6)
        np.testing.assert_allclose(np.asarray(g) / scale, np.asarray(w) / scale, atol=tol)


# ---- the approximations ------------------------------------------------------------------------


@fused_only
@pytest.mark.parametrize("isa", ["avx512", "avx2", "generic", "scalar"])
def test_approximations_are_float32_accurate(isa):
    from vsml.kernels import _ffi

    try:
        _ffi.force_isa(isa)
    except ValueError:
        pytest.skip(f"{isa} not supported by this CPU")
    try:
        x = np.concatenate([np.linspace(-20, 20, 40001), [-1e-30, 0.0, 1e-30, -100.0, 100.0, np.inf, -np.inf]]).astype(
            np.float32
        )
        x64 = x.astype(np.float64)
        for kind, exact in (("sigmoid", 1 / (1 + np.exp(-x64))), ("tanh", np.tanh(x64))):
            y = _ffi.eval_approx(kind, x).astype(np.float64)
            err = np.abs(y - exact)
            assert err.max() < 4e-7, (kind, err.max())  # absolute
            big = np.abs(exact) > 1e-30
            assert (err[big] / np.abs(exact[big]))[np.abs(x[big]) < 40].max() < 1.5e-6, kind  # relative
        assert np.isnan(_ffi.eval_approx("tanh", np.float32([np.nan]))).all()
        assert np.isnan(_ffi.eval_approx("sigmoid", np.float32([np.nan]))).all()
    finally:
        _ffi.force_isa(None)


# ---- the op: fused vs XLA ----------------------------------------------------------------------

CASES = {  # a, b, n, m, batch, micro ticks, cell-norm mode (N = 16, M = 8: every-ISA test below)
    "core_n4_t3": (5, 3, 4, 4, 1, 3, False),
    "cellnorm_n6_batch2_t1": (7, 2, 6, 4, 2, 1, True),  # no SIMD width divides N: scalar code
    "cellnorm_n16_m4": (5, 3, 16, 4, 1, 2, True),  # AVX-512: heads narrower than a vector (scalar loops)
    "core_n8": (6, 3, 8, 4, 1, 2, False),  # AVX2: one vector per cell (4-cell x 2-vector product tiles)
    "core_n24_batch2": (5, 2, 24, 4, 2, 2, False),  # no fixed-width code: the dynamic path's column blocks
}


@fused_only
@pytest.mark.parametrize("name", sorted(CASES))
def test_dense_ticks_values_and_grads(name):
    a, b, n, m, batch, ticks, cell_norm = CASES[name]
    x = _inputs(a, b, n, m, batch)
    args = (x["wh"], x["u"], x["v"], x["h"], x["c"]) + ((x["whead"], x["bhead"]) if cell_norm else ())

    def loss(fn):
        def f(wh, u, v, h, c, *heads):
            out = fn(wh, u, v, h, c, ticks, heads=heads or None)
            return _weighted_sum(out), out

        return _jit(jax.value_and_grad(f, argnums=tuple(range(len(args))), has_aux=True))

    (lf, out_f), gf = loss(kernels.dense_ticks)(*args)
    (lx, out_x), gx = loss(kernels.dense_ticks_xla)(*args)
    _close(out_f, out_x, 2e-6)
    np.testing.assert_allclose(lf, lx, rtol=2e-5)
    _close(gf, gx, 2e-5)


@fused_only
def test_every_instruction_set_gives_the_same_result():
    """Each instruction set (and its way of vectorising the cell-norm heads) against XLA."""
    from vsml.kernels import _ffi

    x = _inputs(5, 3, 16, 8, 2)
    heads = (x["whead"], x["bhead"])

    def loss(fn, hd):
        def f(wh, h):
            out = fn(wh, x["u"], x["v"], h, x["c"], 2, heads=hd)
            return _weighted_sum(out), out

        return _jit(jax.value_and_grad(f, argnums=(0, 1), has_aux=True))

    fused = {hd is None: loss(kernels.dense_ticks, hd) for hd in (None, heads)}
    want = {hd is None: loss(kernels.dense_ticks_xla, hd)(x["wh"], x["h"]) for hd in (None, heads)}
    try:
        for isa in ("avx512", "avx2", "generic", "scalar"):
            try:
                _ffi.force_isa(isa)  # takes effect at run time: same compiled functions
            except ValueError:
                continue
            for core in (True, False):
                (_, out), g = fused[core](x["wh"], x["h"])
                _close(out, want[core][0][1], 2e-6)
                _close(g, want[core][1], 2e-5)
    finally:
        _ffi.force_isa(None)


@fused_only
def test_vmap_and_group_dims_reach_one_call_with_per_group_weights():
    """vmap over members with their own weights (ES) and over episodes sharing them, nested;
    also explicit leading group dims with broadcast (shared) weights."""
    x = _inputs(3, 2, 4, 2, 2, groups=(3,))
    u, v, c = x["u"][0], x["v"][0], x["c"][0]

    def both(fn):  # nested vmap: members with their own weights x 2 episodes sharing them; grads
        def f(wh, h):
            return fn(wh, u, v, h, c, 2)

        def loss(wh, hs):
            out = jax.vmap(jax.vmap(f, (None, 0)), (0, 0))(wh, hs)
            return _weighted_sum(out), out

        return _jit(jax.value_and_grad(loss, (0, 1), has_aux=True))

    hs = jnp.stack([x["h"], -x["h"]], 1)  # [3 members, 2 episodes, batch, cells, n]
    got, want = both(kernels.dense_ticks)(x["wh"], hs), both(kernels.dense_ticks_xla)(x["wh"], hs)
    _close(got[0][1], want[0][1], 2e-6)
    _close(got[1], want[1], 2e-5)
    jaxpr = str(
        jax.make_jaxpr(jax.vmap(jax.vmap(lambda w, h: kernels.dense_ticks(w, u, v, h, c, 2), (None, 0))))(x["wh"], hs)
    )
    assert jaxpr.count("ffi_call") == 1  # one batched call for all members and episodes

    # explicit group dims, weights broadcast (shared): the weight cotangent is summed over groups
    def explicit(fn):
        def loss(wh):
            out = fn(wh, x["u"], x["v"], x["h"], x["c"])
            return _weighted_sum(out), out

        return _jit(jax.value_and_grad(loss, has_aux=True))

    got = explicit(lambda wh, *a: kernels.dense_ticks(wh, *a, 2))(x["wh"][0])
    want = explicit(jax.vmap(lambda wh, *a: kernels.dense_ticks_xla(wh, *a, 2), (None, 0, 0, 0, 0)))(x["wh"][0])
    _close(got[0][1], want[0][1], 2e-6)
    _close(got[1], want[1], 2e-5)


def _custom_calls(compiled_hlo: str) -> dict[str, list[str]]:
    """Result shapes of every custom call in compiled HLO text, by target."""
    out: dict[str, list[str]] = {}
    for line in compiled_hlo.splitlines():
        m = re.search(r'= (\(?[^=]*?\)?) custom-call\(.*custom_call_target="(\w+)"', line)
        if m:
            out.setdefault(m.group(2), []).append(m.group(1))
    return out


def _tiny_learner_problem(members: int = 0):
    learner = VSML(VSMLConfig(state_size=8, message_size=4, kernel="fused"))
    task = TaskSpec((4,), 3, 1)
    r = np.random.default_rng(2)
    params = jax.tree.map(
        lambda p: p + jnp.asarray(0.2 * r.standard_normal(p.shape), jnp.float32),
        _jit(learner.init_params)(jax.random.PRNGKey(0)),
    )
    if members:
        params = jax.tree.map(lambda p: jnp.stack([p * (1 + 0.1 * i) for i in range(members)]), params)
    xs = jnp.asarray(r.standard_normal((4, 1, 4)), jnp.float32)
    ys = jnp.asarray(r.integers(0, 3, (4, 1)), jnp.int32)

    def loss(p, remat):
        return episode(learner, p, jax.random.PRNGKey(0), xs, ys, task, remat=remat)[1].losses.mean()

    return params, loss


@fused_only
def test_remat_does_not_rerun_the_forward_kernel():
    """A rematerialised step keeps the kernel's messages (vsml.kernels.remat_policy), so the
    backward pass runs the backward kernel only, not the forward kernel a second time; the
    gradient is the one without remat."""
    params, loss = _tiny_learner_problem()
    calls, grads = {}, {}
    for remat in (False, True):
        fn = jax.jit(jax.value_and_grad(lambda p: loss(p, remat)))
        calls[remat] = _custom_calls(fn.lower(params).compile().as_text())
        grads[remat] = fn(params)
    for remat in (False, True):
        assert len(calls[remat].get("vsml_dense_fwd", [])) == 1, calls[remat]
        assert len(calls[remat].get("vsml_dense_bwd", [])) == 1, calls[remat]
    np.testing.assert_allclose(grads[True][0], grads[False][0], rtol=1e-6)
    _close(grads[True][1], grads[False][1], 1e-6, global_scale=True)


@fused_only
def test_vmapped_members_reach_the_kernel_as_one_batched_call():
    """vmap over members with their own parameters (ES / PES members, TBPTT particles) of a
    value-and-grad with remat: one forward and one backward custom call in the compiled program,
    each with the member axis as its leading group dim (not a loop of per-member calls), and the
    same values and gradients as one member at a time."""
    members = 3
    params, loss = _tiny_learner_problem(members)
    fn = jax.jit(jax.vmap(jax.value_and_grad(lambda p: loss(p, True))))
    calls = _custom_calls(fn.lower(params).compile().as_text())
    assert set(calls) >= {"vsml_dense_fwd", "vsml_dense_bwd"}
    for target in ("vsml_dense_fwd", "vsml_dense_bwd"):
        assert len(calls[target]) == 1, calls
        assert calls[target][0].startswith(f"(f32[{members},"), calls[target]
    vals, grads = fn(params)
    one = jax.jit(jax.value_and_grad(lambda p: loss(p, True)))
    for i in range(members):
        v, g = one(jax.tree.map(lambda p: p[i], params))
        np.testing.assert_allclose(vals[i], v, rtol=1e-6)
        _close(jax.tree.map(lambda p: p[i], grads), g, 1e-6, global_scale=True)


# ---- the learner: every dense-layer option, values and gradients ------------------------------

LEARNER_CASES = {  # options, input shape, batch (> 1: batch merge), steps, gradients too
    # the defaults (the authors' semantics: per-cell LayerNorm = the kernel's cell-norm mode,
    # replayed backward-sweep inputs), a hidden layer, backward pass with its own per-layer RNNs
    "authors": (
        dict(
            hidden_layers=(LayerSpec(units=3),),
            backward_pass=True,
            separate_backward_rnn=True,
            label_feeding=True,
            layer_norm=True,
            per_layer_rnn=True,
            state_size=8,
            message_size=4,
        ),
        (4,),
        3,
        2,
        True,
    ),
    # this library's older semantics (LayerNorm of the reduced message: the kernel's core mode, heads
    # in JAX; zero backward-sweep inputs), summed messages, 3 micro ticks, bias units (the clones' setting)
    "legacy": (
        dict(
            LEGACY_SEMANTICS,
            hidden_layers=(LayerSpec(units=4),),
            backward_pass=True,
            label_feeding=True,
            layer_norm=True,
            reduce="sum",
            micro_ticks=3,
            state_size=8,
            message_size=4,
            bias=True,
        ),
        (5,),
        2,
        2,
        True,
    ),
    # normal mode (each layer's backward input = the layer above's message of the last step), no
    # LayerNorm, a conv layer first (conv layers always take the XLA path)
    "normal_conv": (
        dict(
            hidden_layers=(LayerSpec("conv", channels=2, kernel=2), LayerSpec(units=3)),
            label_feeding=True,
            state_size=4,
            message_size=3,
        ),
        (3, 3),
        2,
        3,
        False,
    ),
}


@fused_only
@pytest.mark.parametrize("name", sorted(LEARNER_CASES))
def test_learner_fused_matches_xla(name):
    """A whole episode (lax.scan with per-step remat, as gradient meta-training runs it): logits,
    final states and (where marked) the gradient of the mean loss w.r.t. every meta-parameter."""
    opts, input_shape, batch, steps, grads = LEARNER_CASES[name]
    task = TaskSpec(input_shape, 3, batch)
    r = np.random.default_rng(1)
    xs = jnp.asarray(r.standard_normal((steps, batch, *input_shape)), jnp.float32)
    ys = jnp.asarray(r.integers(0, 3, (steps, batch)), jnp.int32)
    fused, xla = VSML(VSMLConfig(**opts, kernel="fused")), VSML(VSMLConfig(**opts, kernel="xla"))
    params = jax.tree.map(
        lambda p: p + jnp.asarray(0.3 * r.standard_normal(p.shape), jnp.float32),
        _jit(fused.init_params)(jax.random.PRNGKey(3)),
    )  # perturbed: biases, LN affine != 0, 1

    def run(learner):
        def loss(p):
            state, res = episode(learner, p, jax.random.PRNGKey(0), xs, ys, task, remat=True)
            return res.losses.mean(), (state, res.logits)

        fn = _jit(jax.value_and_grad(loss, has_aux=True) if grads else lambda p: (loss(p), None))
        return fn, fn(params)

    fn, ((lf, (sf, logits_f)), gf) = run(fused)
    hlo = fn.lower(params).as_text()
    assert "vsml_dense_fwd" in hlo and ("vsml_dense_bwd" in hlo) == grads
    _, ((lx, (sx, logits_x)), gx) = run(xla)
    assert float(jnp.abs(logits_x).max()) > 1e-3
    np.testing.assert_allclose(logits_f, logits_x, rtol=1e-5, atol=2e-6)
    np.testing.assert_allclose(lf, lx, rtol=1e-5)
    for a_, b_ in zip(jax.tree.leaves(sf), jax.tree.leaves(sx)):
        np.testing.assert_allclose(a_, b_, rtol=1e-5, atol=2e-6)
    if grads:
        _close(gf, gx, 5e-5, global_scale=True)


def test_unsupported_layers_take_the_xla_path():
    """What the kernel does not handle (float64 operands under jax_enable_x64; a state size that no
    SIMD width divides and the scalar code does not take, N > 64) is computed by the XLA kernels."""
    from vsml.learners.vsml import DenseGeom, dense_layer, init_cell_params

    assert kernels.unsupported(jnp.zeros(2, jnp.float32), state_size=16) is None
    assert "state size 66" in kernels.unsupported(state_size=66)
    geom = DenseGeom(3, 2)
    for n, x64 in ((66, False), (4, True)):
        dtype = jnp.float64 if x64 else jnp.float32
        with jax.enable_x64(x64):
            p = jax.tree.map(lambda v: v.astype(dtype), init_cell_params(jax.random.PRNGKey(0), n, 3, False))
            x = {k: v.astype(dtype) for k, v in _inputs(3, 2, n, 3, 1).items()}
            args = (x["h"], x["c"], x["u"][..., :3], x["v"][..., :3])
            auto = VSMLConfig(state_size=n, message_size=3)
            assert kernels.unsupported(*args, *p.values(), state_size=n) is not None
            jaxpr = jax.make_jaxpr(lambda *a: dense_layer(p, *a, geom, auto))(*args)
            assert "ffi_call" not in str(jaxpr) and jaxpr.out_avals[0].dtype == dtype
            got = _jit(lambda *a: dense_layer(p, *a, geom, auto))(*args)
            want = _jit(lambda *a: dense_layer(p, *a, geom, dataclasses.replace(auto, kernel="xla")))(*args)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)


def test_kernel_setting_is_not_part_of_a_stored_learner():
    """Which implementation runs is a property of the machine: records omit it, loading ignores it,
    and resuming a checkpoint compares learners without it."""
    from vsml.config import computation, execution_options, to_dict
    from vsml.learners.registry import learner_from_record, learner_record, make_learner

    assert execution_options(VSMLConfig) == ("kernel",)
    learner = VSML(VSMLConfig(kernel="xla", micro_ticks=3))
    record = learner_record("vsml", learner, {})
    assert "kernel" not in record["options"] and record["options"]["micro_ticks"] == 3
    assert to_dict(learner.config)["kernel"] == "xla"  # a config written out keeps the setting
    loaded = learner_from_record({"name": "vsml", "options": {**record["options"], "kernel": "fused"}})
    assert loaded.config.kernel == "auto" and computation(loaded) == computation(learner)
    assert loaded != learner  # a different compiled program: jit keys on the learner
    assert computation(loaded) != computation(VSML(VSMLConfig(kernel="xla", micro_ticks=2)))
    assert make_learner("vsml", {"kernel": "xla"}).config.kernel == "xla"  # learner.options.kernel in a config


# ---- selection and fallback ------------------------------------------------------------------


def test_kernel_selection_and_environment(monkeypatch):
    monkeypatch.delenv(kernels.ENV_VAR, raising=False)
    assert kernels.resolve_kernel("xla") == "xla"
    assert kernels.resolve_kernel("auto") == ("fused" if kernels.available() else "xla")
    if kernels.available():  # several devices: the fused kernel too (mapped per device, tests/test_meta_distributed.py)
        monkeypatch.setattr(jax, "device_count", lambda *a: 2)
        assert kernels.resolve_kernel("auto") == "fused" and kernels.resolve_kernel("fused") == "fused"
        monkeypatch.undo()
        monkeypatch.delenv(kernels.ENV_VAR, raising=False)
    monkeypatch.setenv(kernels.ENV_VAR, "xla")
    assert kernels.resolve_kernel("auto") == "xla"
    monkeypatch.setenv(kernels.ENV_VAR, "fast")
    with pytest.raises(ValueError, match="VSML_KERNEL"):
        kernels.resolve_kernel("auto")
    with pytest.raises(ConfigError, match="kernel"):
        VSMLConfig(kernel="gpu")


def test_unavailable_kernel_warns_once_and_falls_back(monkeypatch):
    monkeypatch.delenv(kernels.ENV_VAR, raising=False)
    monkeypatch.setattr(kdense, "unavailable_reason", lambda: "no compiler (simulated)")
    monkeypatch.setattr(kdense, "_warned", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert kernels.resolve_kernel("auto") == "xla"
        assert kernels.resolve_kernel("auto") == "xla"
        learner = VSML(VSMLConfig())
        params = jax.eval_shape(learner.init_params, jax.random.PRNGKey(0))
        state = jax.eval_shape(lambda p: learner.init_state(p, jax.random.PRNGKey(1), TaskSpec((4,), 2, 1)), params)
        jaxpr = jax.make_jaxpr(learner.predict)(params, state, jnp.ones((1, 4)))  # traced on the XLA path
    fallback = [w for w in caught if issubclass(w.category, kernels.FusedKernelWarning)]
    assert len(fallback) == 1 and "no compiler (simulated)" in str(fallback[0].message)
    assert "ffi_call" not in str(jaxpr) and jaxpr.out_avals[-1].shape == (1, 2)
    with pytest.raises(kernels.KernelUnavailableError, match="no compiler"):
        kernels.resolve_kernel("fused")
    with pytest.raises(kernels.KernelUnavailableError, match="no compiler"):
        kernels.dense_ticks(*(_inputs()[k] for k in ("wh", "u", "v", "h", "c")), 1)
    monkeypatch.setattr(kdense, "unavailable_reason", lambda: "no compiler (simulated)")
    with pytest.raises(ConfigError, match="no compiler"):
        VSMLConfig(kernel="fused")
