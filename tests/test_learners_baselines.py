"""Interface tests for every registered learner, plus backprop-specific checks.

The generic tests run over ``registry.available()``, so a learner registered later (``vsml``) is
covered automatically: shapes, determinism under one key, no label leakage, finite meta-gradients.
"""

from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vsml.config import ConfigError
from vsml.learners import registry
from vsml.learners.backprop import Backprop, lr_sweep, with_traced_lr
from vsml.learners.base import InputError, TaskSpec, episode, run_episode, run_episodes

NAMES = registry.available()
T, C = 12, 5


def _data(seed=0, t=T, batch=1, shape=(8, 8), classes=C):
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(t, batch, *shape)).astype(np.float32)
    ys = rng.integers(0, classes, size=(t, batch)).astype(np.int32)
    return xs, ys


@partial(jax.jit, static_argnames=("learner", "task"))
def _logits(learner, params, key, xs, ys, task):
    return episode(learner, params, key, xs, ys, task)[1].logits


def test_registry_lists_all_baselines():
    assert set(registry.BASELINES) <= set(NAMES)
    assert "vsml" in registry.names()


@pytest.mark.parametrize("name", NAMES)
def test_shapes_determinism_and_no_label_leakage(name):
    learner = registry.make_learner(name)
    params = learner.init_params(jax.random.PRNGKey(0))
    key = jax.random.PRNGKey(1)
    batch = 2  # batch 1 is exercised by the other tests
    xs, ys = _data(batch=batch)
    task = TaskSpec((8, 8), C, batch)
    logits = np.asarray(_logits(learner, params, key, xs, ys, task))
    assert logits.shape == (T, batch, C)
    assert np.all(np.isfinite(logits))
    # determinism under the same key
    np.testing.assert_array_equal(logits, np.asarray(_logits(learner, params, key, xs, ys, task)))
    # no label leakage: changing y_t (of one batch element) leaves predictions at steps <= t unchanged
    for t in (0, 5):
        ys2 = ys.copy()
        ys2[t, 0] = (ys2[t, 0] + 1) % C
        logits2 = np.asarray(_logits(learner, params, key, xs, ys2, task))
        np.testing.assert_allclose(logits2[: t + 1], logits[: t + 1], rtol=1e-6, atol=1e-6)
        if name in registry.BASELINES:  # and the test is sensitive: later predictions do change
            assert not np.allclose(logits2[t + 1 :], logits[t + 1 :])


@pytest.mark.parametrize("name", [n for n in NAMES if n in registry.BACKPROP])
def test_backprop_initial_weights_come_from_the_key(name):
    learner = registry.make_learner(name)
    task = TaskSpec((8, 8), C)
    s1 = learner.init_state({}, jax.random.PRNGKey(0), task)
    s2 = learner.init_state({}, jax.random.PRNGKey(1), task)
    assert not np.allclose(s1["net"][0]["w"], s2["net"][0]["w"])
    assert s1["net"][0]["w"].shape == (64, C)


def _meta_learners():
    out = []
    for name in NAMES:
        learner = registry.make_learner(name)
        if jax.tree_util.tree_leaves(learner.init_params(jax.random.PRNGKey(0))):
            out.append(name)
    return out + ["sgd:meta_lr=true"]


@pytest.mark.parametrize("spec", _meta_learners())
def test_meta_gradient_is_finite(spec):
    name, options = registry.parse_learner_spec(spec)
    learner = registry.make_learner(name, options)
    params = learner.init_params(jax.random.PRNGKey(0))
    xs, ys = _data(t=8)
    task = TaskSpec((8, 8), C, 1)

    def loss(p):
        return episode(learner, p, jax.random.PRNGKey(2), jnp.asarray(xs), jnp.asarray(ys), task)[1].losses.mean()

    grads = jax.jit(jax.grad(loss))(params)
    leaves = jax.tree_util.tree_leaves(grads)
    assert leaves and all(np.all(np.isfinite(np.asarray(g))) for g in leaves)
    assert any(np.any(np.asarray(g) != 0) for g in leaves)


def _numpy_mlp_sgd_step(ws, x, y, lr):
    """One online SGD step of a tanh MLP (float64) on ``x [batch, D]``.
    Returns ``(logits, d loss / d x, updated ws)``."""
    acts = [x]
    h = x
    for i, (w, b) in enumerate(ws):
        h = h @ w + b
        if i < len(ws) - 1:
            h = np.tanh(h)
        acts.append(h)
    logits = acts[-1]
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    delta = (p - np.eye(logits.shape[-1])[y]) / x.shape[0]
    grads = []
    for i in reversed(range(len(ws))):
        w, _ = ws[i]
        grads.append((acts[i].T @ delta, delta.sum(0)))
        delta = delta @ w.T
        if i > 0:
            delta = delta * (1 - acts[i] ** 2)
    grads.reverse()
    return logits, delta, [(w - lr * gw, b - lr * gb) for (w, b), (gw, gb) in zip(ws, grads)]


def _numpy_online_sgd(net, xs, ys, lr):
    """Plain numpy online SGD on a tanh MLP (float64). Returns per-step logits [T, batch, C]."""
    ws = [(np.asarray(l["w"], np.float64), np.asarray(l["b"], np.float64)) for l in net]
    out = []
    for x, y in zip(xs, ys):
        logits, _, ws = _numpy_mlp_sgd_step(ws, x.reshape(x.shape[0], -1).astype(np.float64), y, lr)
        out.append(logits)
    return np.stack(out)


@pytest.mark.parametrize("layers,batch", [(1, 1), (2, 3)])
def test_sgd_matches_numpy_reference(layers, batch):
    learner = Backprop(optimizer="sgd", lr=0.05, layers=layers, hidden=16)
    xs, ys = _data(seed=3, t=30, batch=batch, shape=(6,), classes=4)
    task = TaskSpec((6,), 4, batch)
    key = jax.random.PRNGKey(7)
    net = learner.init_state({}, key, task)["net"]
    got = np.asarray(_logits(learner, {}, key, xs, ys, task))
    want = _numpy_online_sgd(net, xs, ys, 0.05)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-5)
    assert np.abs(want[-1] - want[0]).max() > 0.1  # it did learn something


def _numpy_online_conv_sgd(net, xs, ys, lr, k, stride):
    """Plain numpy (float64, loops) online SGD on conv(k×k/stride, zero padding (k-1)//2 before and
    k//2 after) -> tanh -> flatten -> tanh MLP. Returns per-step logits [T, batch, C]."""
    cw, cb = (np.asarray(net[0][n], np.float64) for n in ("w", "b"))
    ws = [(np.asarray(l["w"], np.float64), np.asarray(l["b"], np.float64)) for l in net[1:]]
    lo, hi = (k - 1) // 2, k // 2
    out = []
    for x, y in zip(xs, ys):
        x = x.astype(np.float64)[..., None]  # [batch, H, W, 1]
        xp = np.pad(x, ((0, 0), (lo, hi), (lo, hi), (0, 0)))
        ho, wo = (xp.shape[1] - k) // stride + 1, (xp.shape[2] - k) // stride + 1
        z = np.zeros((x.shape[0], ho, wo, cw.shape[-1]))
        for i in range(ho):
            for j in range(wo):
                patch = xp[:, i * stride : i * stride + k, j * stride : j * stride + k, :]
                z[:, i, j, :] = np.einsum("bdec,deco->bo", patch, cw) + cb
        a = np.tanh(z)
        logits, delta, ws = _numpy_mlp_sgd_step(ws, a.reshape(x.shape[0], -1), y, lr)
        out.append(logits)
        dz = delta.reshape(z.shape) * (1 - a**2)  # through the conv layer's tanh
        gcw = np.zeros_like(cw)
        for i in range(ho):
            for j in range(wo):
                patch = xp[:, i * stride : i * stride + k, j * stride : j * stride + k, :]
                gcw += np.einsum("bdec,bo->deco", patch, dz[:, i, j, :])
        cw, cb = cw - lr * gcw, cb - lr * dz.sum((0, 1, 2))
    return np.stack(out)


@pytest.mark.parametrize("layers,kernel,stride,shape", [(1, 3, 2, (7, 7)), (2, 2, 1, (5, 6))])
def test_conv_sgd_matches_numpy_reference(layers, kernel, stride, shape):
    learner = Backprop(
        optimizer="sgd", lr=0.1, layers=layers, hidden=6, conv_channels=3, conv_kernel=kernel, conv_stride=stride
    )
    xs, ys = _data(seed=4, t=20, batch=2, shape=shape, classes=3)
    task = TaskSpec(shape, 3, 2)
    key = jax.random.PRNGKey(5)
    net = learner.init_state({}, key, task)["net"]
    assert net[0]["w"].shape == (kernel, kernel, 1, 3)
    got = np.asarray(_logits(learner, {}, key, xs, ys, task))
    want = _numpy_online_conv_sgd(net, xs, ys, 0.1, kernel, stride)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=5e-5)
    assert np.abs(want[-1] - want[0]).max() > 0.1  # it did learn something


def test_conv_backprop_checks_its_inputs():
    learner = Backprop(conv_channels=4, layers=2, hidden=16)
    state = learner.init_state({}, jax.random.PRNGKey(0), TaskSpec((14, 14), 10, 1))
    assert [l["w"].shape for l in state["net"]] == [(3, 3, 1, 4), (7 * 7 * 4, 16), (16, 10)]
    with pytest.raises(InputError, match="do not flatten"):
        learner.init_state({}, jax.random.PRNGKey(0), TaskSpec((196,), 10, 1))
    with pytest.raises(ValueError, match="conv_stride"):
        Backprop(conv_channels=4, conv_stride=0)
    assert isinstance(registry.make_learner("adam", {"conv_channels": 4, "layers": 2, "hidden": 16}), Backprop)


def test_sgd_learns_a_separable_task():
    rng = np.random.default_rng(0)
    protos = rng.normal(size=(3, 20)).astype(np.float32)
    ys = rng.integers(0, 3, size=(4, 200, 1))
    xs = protos[ys] + 0.3 * rng.normal(size=(*ys.shape, 20)).astype(np.float32)
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    res = run_episodes(Backprop(lr=0.1), {}, keys, xs, ys, 3)
    acc = np.asarray(res.correct)
    assert acc[:, -50:].mean() > 0.9  # learned ...
    assert acc[:, :5].mean() < acc[:, -50:].mean() - 0.2  # ... from a clearly worse start


def test_lr_sweep_picks_a_rate_from_the_grid():
    rng = np.random.default_rng(1)
    protos = rng.normal(size=(3, 20)).astype(np.float32)
    ys = rng.integers(0, 3, size=(2, 60, 1))
    xs = protos[ys] + 0.3 * rng.normal(size=(*ys.shape, 20)).astype(np.float32)
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    sweep = lr_sweep(Backprop(), xs, ys, 3, keys, lrs=[1e-5, 0.1])
    assert sweep.best_lr == 0.1 and sweep.scores[1] > sweep.scores[0]
    with pytest.raises(ValueError):
        lr_sweep(Backprop(), xs, ys, 3, keys, lrs=[-1.0])
    # a traced learning rate gives the same episode as the static one
    static = run_episodes(Backprop(lr=0.1), {}, keys, xs, ys, 3)
    traced = run_episodes(*with_traced_lr(Backprop(lr=0.1)), keys, xs, ys, 3)
    np.testing.assert_allclose(traced.logits, static.logits, rtol=1e-5, atol=1e-5)


def test_registry_errors_and_options():
    with pytest.raises(ConfigError, match="Did you mean 'adam'"):
        registry.make_learner("adma")
    with pytest.raises(ConfigError, match="unknown config key 'lrr'"):
        registry.make_learner("sgd", {"lrr": 0.1})
    with pytest.raises(ConfigError, match="layers"):
        registry.make_learner("sgd", {"layers": 3})
    with pytest.raises(ConfigError, match="fixed by the learner name"):
        registry.make_learner("sgd", {"optimizer": "adam"})
    assert registry.make_learner("adam").lr == 1e-3
    assert registry.make_learner("sgd").lr == 0.01
    name, opts = registry.parse_learner_spec("adam:lr=3e-4,layers=2")
    learner = registry.make_learner(name, opts)
    assert (learner.lr, learner.layers, learner.optimizer) == (3e-4, 2, "adam")
    assert hash(learner) == hash(dataclasses.replace(learner))


@pytest.mark.parametrize("name", ["meta_rnn", "hebbian", "fwm", "delta_fwp"])
def test_fixed_size_learners_reject_too_large_tasks(name):
    learner = registry.make_learner(name)
    xs, ys = _data(t=2, shape=(30, 30))
    with pytest.raises(InputError, match="input_size"):
        run_episode(learner, learner.init_params(jax.random.PRNGKey(0)), jax.random.PRNGKey(0), xs, ys, C)
    xs, ys = _data(t=2, classes=3)
    with pytest.raises(InputError, match="num_outputs"):
        run_episode(learner, learner.init_params(jax.random.PRNGKey(0)), jax.random.PRNGKey(0), xs, ys, 12)
