"""Fused CPU kernel (vsml.kernels) against the XLA kernels: values, gradients, vmap / groups,
scan + checkpoint, every dense-layer option through the learner, selection and fallback.

Fused-only tests are skipped when the extension is not built (no compiler at install time)."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vsml import kernels
from vsml.config import ConfigError
from vsml.kernels import dense as kdense
from vsml.learners.base import TaskSpec, episode
from vsml.learners.vsml import VSML, LayerSpec, VSMLConfig

fused_only = pytest.mark.skipif(not kernels.available(), reason=f"fused kernel not built: {kernels.unavailable_reason()}")


def _inputs(a=5, b=3, n=16, m=8, batch=2, seed=0, groups=()):
    k = jax.random.split(jax.random.PRNGKey(seed), 7)
    g = tuple(groups)
    return dict(
        wh=jax.random.normal(k[0], (*g, n, 4 * n)) / np.sqrt(n),
        u=jax.random.normal(k[1], (*g, batch, a, 4 * n)),
        v=jax.random.normal(k[2], (*g, batch, b, 4 * n)),
        h=0.5 * jax.random.normal(k[3], (*g, batch, a * b, n)),
        c=jax.random.normal(k[4], (*g, batch, a * b, n)),
        whead=jax.random.normal(k[5], (*g, n, 2 * m)) / np.sqrt(n),
        bhead=jax.random.normal(k[6], (*g, 2 * m)),
    )


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
        x = np.concatenate([np.linspace(-20, 20, 40001), [-1e-30, 0.0, 1e-30, -100.0, 100.0, np.inf, -np.inf]]).astype(np.float32)
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

CASES = {  # a, b, n, m, batch, micro ticks, cell-norm mode
    "core_n16_batch2_t2": (5, 3, 16, 8, 2, 2, False),
    "core_n4_t3": (5, 3, 4, 4, 1, 3, False),
    "cellnorm_n6_batch2_t1": (7, 2, 6, 4, 2, 1, True),
    "cellnorm_n16_t2": (5, 3, 16, 8, 1, 2, True),
    "cellnorm_n16_m4": (5, 3, 16, 4, 1, 2, True),  # AVX-512: heads narrower than a vector (scalar loops)
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

        return jax.jit(jax.value_and_grad(f, argnums=tuple(range(len(args))), has_aux=True))

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

        return jax.jit(jax.value_and_grad(f, argnums=(0, 1), has_aux=True))

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

        return jax.jit(jax.value_and_grad(loss, (0, 1), has_aux=True))

    hs = jnp.stack([x["h"], -x["h"]], 1)  # [3 members, 2 episodes, batch, cells, n]
    got, want = both(kernels.dense_ticks)(x["wh"], hs), both(kernels.dense_ticks_xla)(x["wh"], hs)
    _close(got[0][1], want[0][1], 2e-6)
    _close(got[1], want[1], 2e-5)
    jaxpr = str(jax.make_jaxpr(jax.vmap(jax.vmap(lambda w, h: kernels.dense_ticks(w, u, v, h, c, 2), (None, 0))))(x["wh"], hs))
    assert jaxpr.count("ffi_call") == 1  # one batched call for all members and episodes
    # explicit group dims, weights broadcast (shared): the weight cotangent is summed over groups
    def explicit(fn):
        def loss(wh):
            out = fn(wh, x["u"], x["v"], x["h"], x["c"])
            return _weighted_sum(out), out

        return jax.jit(jax.value_and_grad(loss, has_aux=True))

    got = explicit(lambda wh, *a: kernels.dense_ticks(wh, *a, 2))(x["wh"][0])
    want = explicit(jax.vmap(lambda wh, *a: kernels.dense_ticks_xla(wh, *a, 2), (None, 0, 0, 0, 0)))(x["wh"][0])
    _close(got[0][1], want[0][1], 2e-6)
    _close(got[1], want[1], 2e-5)


@fused_only
def test_grad_through_scan_with_checkpoint():
    x = _inputs(5, 3, 8, 4, 1)

    def run(fn, wh, u):
        def step(hc, _):
            h, c, rb, ra = jax.checkpoint(lambda h, c: fn(wh, u, x["v"], h, c, 2))(*hc)
            return (h, c), rb.sum() + (ra**2).sum()

        (h, c), ys = jax.lax.scan(step, (x["h"], x["c"]), None, length=4)
        return ys.sum() + (h * c).sum()

    gf = jax.jit(jax.grad(lambda w, u: run(kernels.dense_ticks, w, u), (0, 1)))(x["wh"], x["u"])
    gx = jax.jit(jax.grad(lambda w, u: run(kernels.dense_ticks_xla, w, u), (0, 1)))(x["wh"], x["u"])
    _close(gf, gx, 2e-5)


# ---- the learner: every dense-layer option -----------------------------------------------------

LEARNER_OPTIONS = dict(  # every dense-layer option at once (conv layers keep the XLA kernels)
    hidden_layers=(LayerSpec(units=4),), backward_pass=True, separate_backward_rnn=True, label_feeding=True,
    micro_ticks=3, per_layer_rnn=True, reduce="sum", layer_norm=True, state_size=8, message_size=4)


@fused_only
def test_learner_fused_matches_xla():
    """All dense-layer options together, batch 3 (batch merge), 3 steps: logits and final states.
    (Gradients: the op tests above; whole-learner gradients: tests/test_vsml.py, which runs the
    fused kernel against the per-cell reference whenever the extension is built.)"""
    opts, input_shape, num_classes, batch = LEARNER_OPTIONS, (5,), 3, 3
    task = TaskSpec(input_shape, num_classes, batch)
    kx, ky = jax.random.split(jax.random.PRNGKey(1))
    xs = jax.random.normal(kx, (3, batch, *input_shape))
    ys = jax.random.randint(ky, (3, batch), 0, num_classes)
    fused, xla = VSML(VSMLConfig(**opts, kernel="fused")), VSML(VSMLConfig(**opts, kernel="xla"))
    leaves, tree = jax.tree.flatten(fused.init_params(jax.random.PRNGKey(3)))
    keys = jax.random.split(jax.random.PRNGKey(4), len(leaves))
    params = jax.tree.unflatten(tree, [p + 0.3 * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)])

    def run(learner):
        fn = jax.jit(lambda p: episode(learner, p, jax.random.PRNGKey(0), xs, ys, task))
        return fn, fn(params)

    fn, (sf, rf) = run(fused)
    assert "vsml_dense_fwd" in fn.lower(params).as_text()
    _, (sx, rx) = run(xla)
    assert float(jnp.abs(rx.logits).max()) > 1e-3
    np.testing.assert_allclose(rf.logits, rx.logits, rtol=1e-5, atol=2e-6)
    for a_, b_ in zip(jax.tree.leaves(sf), jax.tree.leaves(sx)):
        np.testing.assert_allclose(a_, b_, rtol=1e-5, atol=2e-6)


@fused_only
def test_cell_norm_layer_matches_per_cell_layernorm():
    """Cell-norm mode: LN of every cell's message, then mean / sum over senders (with scale, bias)."""
    from vsml.learners.vsml import DenseGeom, init_cell_params, layer_norm

    a, b, n, m, batch = 5, 3, 8, 4, 2
    x = _inputs(a, b, n, m, batch)
    p = init_cell_params(jax.random.PRNGKey(2), n, m, layer_norm=True)
    p = jax.tree.map(lambda v, k: v + 0.3 * jax.random.normal(k, v.shape), p,
                     dict(zip(p, jax.random.split(jax.random.PRNGKey(5), len(p)))))
    for reduce in ("sum", "mean"):
        cfg = VSMLConfig(state_size=n, message_size=m, reduce=reduce, layer_norm=True)

        def fused(p, h):
            return kernels.fused_dense_layer(p, h, x["c"], x["u"], x["v"], DenseGeom(a, b), cfg, cell_norm=True)

        def ref(p, h):
            hn, cn, *_ = kernels.dense_ticks_xla(p["wh"], x["u"], x["v"], h, x["c"], cfg.micro_ticks)
            h4 = hn.reshape(batch, a, b, n)
            red = jnp.mean if reduce == "mean" else jnp.sum
            f = red(layer_norm(h4 @ p["wf"] + p["bf"], p["ln_f_scale"], p["ln_f_bias"]), axis=1)
            bk = red(layer_norm(h4 @ p["wb"] + p["bb"], p["ln_b_scale"], p["ln_b_bias"]), axis=2)
            return hn, cn, f, bk

        _close(jax.jit(fused)(p, x["h"]), jax.jit(ref)(p, x["h"]), 2e-6)
        if reduce == "sum":
            gf = jax.jit(jax.grad(lambda p, h: _weighted_sum(fused(p, h)), (0, 1)))(p, x["h"])
            _close(gf, jax.jit(jax.grad(lambda p, h: _weighted_sum(ref(p, h)), (0, 1)))(p, x["h"]), 2e-5)


# ---- selection and fallback ------------------------------------------------------------------


def test_kernel_selection_and_environment(monkeypatch):
    monkeypatch.delenv(kernels.ENV_VAR, raising=False)
    assert kernels.resolve_kernel("xla") == "xla"
    assert kernels.resolve_kernel("auto") == ("fused" if kernels.available() else "xla")
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
        params = learner.init_params(jax.random.PRNGKey(0))
        state = learner.init_state(params, jax.random.PRNGKey(1), TaskSpec((4,), 2, 1))
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
