"""The VSML RNN: factorised kernels vs the plain per-cell reference, protocol semantics, errors."""

from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vsml.config import ConfigError, from_dict
from vsml.learners.base import InputError, TaskSpec, episode, run_episode, run_episodes
from vsml.learners.vsml import (
    LEGACY_SEMANTICS,
    VSML,
    LayerSpec,
    VSMLConfig,
    error_message,
    merge_batch,
    unit_count,
    vsml_config_from_record,
)
from vsml.learners.vsml_reference import ReferenceVSML

KEY = jax.random.PRNGKey(0)


def _episode_data(input_shape, num_classes, batch, steps, seed=1):
    kx, ky = jax.random.split(jax.random.PRNGKey(seed))
    xs = jax.random.normal(kx, (steps, batch, *input_shape))
    ys = jax.random.randint(ky, (steps, batch), 0, num_classes)
    return xs, ys


def _perturbed_params(learner, seed=3):
    """Random biases/LN params so every parameter matters (init has zero biases)."""
    params = learner.init_params(jax.random.PRNGKey(seed))
    rng = np.random.default_rng(seed + 1)  # numpy: no eager JAX op to compile per leaf shape
    return jax.tree.map(lambda x: jnp.asarray(np.asarray(x) + 0.3 * rng.standard_normal(x.shape, np.float32)), params)


CONV = partial(LayerSpec, kind="conv")

CASES = {  # config, input shape, classes, batch; semantic options at their defaults unless named
    # (options are combined so that each case is one pair of compiles; every option appears at least once)
    "dense": (VSMLConfig(), (6,), 3, 1),
    "dense_3_layers_batch4_merge_3_micro_ticks_odd_state_bias": (
        VSMLConfig(
            hidden_layers=(LayerSpec(units=5), LayerSpec(units=4)),
            state_size=7,
            message_size=4,
            micro_ticks=3,
            bias=True,
        ),
        (7,),
        3,
        4,
    ),
    "conv_dense_layer_norm": (
        VSMLConfig(hidden_layers=(CONV(channels=2, kernel=3, stride=2), LayerSpec(units=4)), layer_norm=True),
        (5, 5, 2),
        3,
        1,
    ),
    "conv_conv_2d_input_layer_norm": (
        VSMLConfig(hidden_layers=(CONV(channels=2, kernel=2), CONV(channels=1, kernel=3, stride=2)), layer_norm=True),
        (2, 3),  # not square: rows and columns cannot be swapped unnoticed
        2,
        2,
    ),
    "backward_pass_label_feeding_separate_per_layer_layer_norm_bias": (
        VSMLConfig(
            hidden_layers=(LayerSpec(units=4),),
            backward_pass=True,
            label_feeding=True,
            separate_backward_rnn=True,
            per_layer_rnn=True,
            layer_norm=True,
            bias=True,
        ),
        (5,),
        3,
        2,
    ),
    "backward_pass_shared_rnn": (
        VSMLConfig(hidden_layers=(LayerSpec(units=4),), backward_pass=True),
        (5,),
        3,
        1,
    ),
    "sum_reduce_layer_norm": (
        VSMLConfig(hidden_layers=(CONV(channels=2, kernel=2), LayerSpec(units=3)), reduce="sum", layer_norm=True),
        (3, 3, 1),
        3,
        2,
    ),
    # every semantic option at its legacy value (the kernels differ in VALID padding and LayerNorm on
    # the reduced message; the step-level options are shared code, checked by tests/test_fidelity.py)
    "legacy_semantics": (
        VSMLConfig(
            hidden_layers=(CONV(channels=2, kernel=2), LayerSpec(units=3)),
            reduce="sum",
            layer_norm=True,
            **LEGACY_SEMANTICS,
        ),
        (3, 3, 1),
        3,
        2,
    ),
}


def _close(a, b, tol=1e-5):
    """Equal to float32 precision relative to the array's scale (LayerNorm and sums amplify rounding)."""
    a, b = np.asarray(a), np.asarray(b)
    scale = max(float(np.abs(b).max()), 1.0)
    np.testing.assert_allclose(a / scale, b / scale, atol=tol)


def _check_values(rf, rr, lf, lr, sf, sr, batch, num_classes):
    """Logits, loss and final state of the factorised kernels (``f``) equal the reference's (``r``)."""
    assert rf.logits.shape == (3, batch, num_classes)
    assert float(np.abs(rf.logits).max()) > 1e-3  # not trivially zero
    np.testing.assert_allclose(rf.logits, rr.logits, rtol=1e-5, atol=2e-6)
    np.testing.assert_allclose(lf, lr, rtol=1e-6)
    assert jax.tree.structure(sf) == jax.tree.structure(sr)
    for a, b in zip(jax.tree.leaves(sf), jax.tree.leaves(sr)):
        _close(a, b)


def _quick_jit(f, *args):
    """``jax.jit(f)(*args)`` compiled without XLA's expensive LLVM passes: the programs here run once
    on tiny inputs, so compile time is the whole cost (float32 results are unaffected)."""
    compiled = (
        jax.jit(f)
        .lower(*args)
        .compile({"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True})
    )
    return compiled(*args)


# The cases whose gradients are also compared (the reference's gradient compile is most of this
# test's cost). Together they cover every layer kind, option and custom VJP of the kernels: dense
# stacks with merging and micro ticks, convolutions with LayerNorm on a 2-D input, the backward-pass
# mode with label feeding and separate per-layer RNNs, bias units, and sum reduction with every
# legacy option.
# The other cases combine options already covered here, and their values and states are compared.
GRADIENT_CASES = {
    "dense",
    "dense_3_layers_batch4_merge_3_micro_ticks_odd_state_bias",
    "conv_conv_2d_input_layer_norm",
    "backward_pass_label_feeding_separate_per_layer_layer_norm_bias",
    "legacy_semantics",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_factorised_matches_reference(name):
    config, input_shape, num_classes, batch = CASES[name]
    fast, ref = VSML(config), ReferenceVSML(config)
    task = TaskSpec(input_shape, num_classes, batch)
    xs, ys = _episode_data(input_shape, num_classes, batch, steps=3)
    params = _perturbed_params(fast)

    def loss(learner, p):
        state, res = episode(learner, p, KEY, xs, ys, task)
        return res.losses.mean(), (state, res)

    if name not in GRADIENT_CASES:
        lf, (sf, rf) = _quick_jit(lambda p: loss(fast, p), params)
        lr, (sr, rr) = _quick_jit(lambda p: loss(ref, p), params)
        _check_values(rf, rr, lf, lr, sf, sr, batch, num_classes)
        return
    (lf, (sf, rf)), gf = _quick_jit(jax.value_and_grad(lambda p: loss(fast, p), has_aux=True), params)
    # The reference's gradient, checked leaf by leaf along a random direction per leaf: one batched
    # forward-mode (JVP) program, much cheaper to compile than its reverse-mode gradient, and an
    # independent derivation (forward mode of the per-cell loops against reverse mode of the kernels).
    # (numpy for the directions and the comparisons: eager JAX ops would each compile per leaf shape)
    leaves, tree = jax.tree.flatten(params)
    rng = np.random.default_rng(7)
    dirs = [rng.standard_normal(x.shape, np.float32) for x in leaves]
    tangents = [np.zeros((len(leaves), *x.shape), np.float32) for x in leaves]
    for i, d in enumerate(dirs):
        tangents[i][i] = d
    tangents = jax.tree.unflatten(tree, tangents)
    (lr, (sr, rr)), (dr, _) = _quick_jit(jax.vmap(lambda t: jax.jvp(lambda p: loss(ref, p), (params,), (t,))), tangents)
    lr, sr, rr = jax.tree.map(lambda x: np.asarray(x)[0], (lr, sr, rr))  # the primal, repeated along the batch
    _check_values(rf, rr, lf, lr, sf, sr, batch, num_classes)
    gleaves = [np.asarray(g) for g in jax.tree.leaves(gf)]
    scale = max(float(np.abs(g).max()) for g in gleaves)  # shift-invariant leaves have ~0 grads
    for i, (g, d) in enumerate(zip(gleaves, dirs)):
        # elementwise agreement to 1e-5 of scale, summed along a normal direction: ~1e-5 * scale * sqrt(size)
        np.testing.assert_allclose(
            float(np.vdot(g, d)),
            float(dr[i]),
            rtol=1e-4,
            atol=3e-5 * scale * np.sqrt(g.size),
            err_msg=f"gradient leaf {i} "
            f"({jax.tree_util.keystr(jax.tree_util.tree_flatten_with_path(params)[0][i][0])})",
        )
    assert any(float(np.abs(g).max()) > 0 for g in gleaves)


def test_param_structure_options():
    cfg = VSMLConfig(
        hidden_layers=(LayerSpec(units=4),),
        per_layer_rnn=True,
        backward_pass=True,
        separate_backward_rnn=True,
        layer_norm=True,
    )
    params = VSML(cfg).init_params(KEY)
    assert len(params["rnn"]) == 2 and len(params["bwd_rnn"]) == 2
    p = params["rnn"][0]
    assert p["wx"].shape == (16, 64) and p["wh"].shape == (16, 64) and p["wf"].shape == (16, 8)
    assert "ln_f_scale" in p
    assert set(VSML(VSMLConfig()).init_params(KEY)) == {"rnn"}


def test_initial_state_random_part_from_key():
    learner = VSML(VSMLConfig())
    task = TaskSpec((20,), 5, 3)
    params = learner.init_params(KEY)
    s1 = learner.init_state(params, jax.random.PRNGKey(1), task)
    s2 = learner.init_state(params, jax.random.PRNGKey(1), task)
    s3 = learner.init_state(params, jax.random.PRNGKey(2), task)
    c = s1["c"][0]
    assert c.shape == (3, 100, 16)
    np.testing.assert_array_equal(c, s2["c"][0])
    assert not np.allclose(c, s3["c"][0])
    assert float(jnp.abs(c[..., 8:]).max()) == 0.0 and float(jnp.abs(s1["h"][0]).max()) == 0.0
    np.testing.assert_allclose(c[..., :8].std(), 0.88 / np.sqrt(20), rtol=0.15)  # truncated normal / sqrt(A)
    np.testing.assert_array_equal(c[0], c[1])  # each example starts from the same copy


def test_merge_batch_averages_first_half_only():
    x = jax.random.normal(KEY, (4, 3, 16))
    m = merge_batch(x, 0.5)
    np.testing.assert_allclose(m[:, :, :8], jnp.broadcast_to(x[:, :, :8].mean(0), (4, 3, 8)), rtol=1e-6)
    np.testing.assert_array_equal(m[:, :, 8:], x[:, :, 8:])
    np.testing.assert_array_equal(merge_batch(x[:1], 0.5), x[:1])


def test_error_message_layout():
    logits = jnp.array([[0.0, 0.0, 0.0]])
    msg = error_message(logits, jnp.array([1]), 3, 8, label_feeding=True)
    np.testing.assert_allclose(msg[0, :, 0], [1 / 3, -2 / 3, 1 / 3], rtol=1e-6)
    np.testing.assert_allclose(msg[0, :, 1], [0, 1, 0])
    assert float(jnp.abs(msg[..., 2:]).max()) == 0
    assert float(jnp.abs(error_message(logits, jnp.array([1]), 3, 8, False)[..., 1]).max()) == 0


def test_prediction_does_not_see_its_label():
    """Changing y_t leaves the logits at steps <= t unchanged and changes later ones."""
    for config in (VSMLConfig(label_feeding=True), VSMLConfig(hidden_layers=(LayerSpec(units=4),), backward_pass=True)):
        learner = VSML(config)
        params = _perturbed_params(learner)
        xs, ys = _episode_data((5,), 3, 1, steps=6)
        ys2 = ys.at[3].set((ys[3] + 1) % 3)
        r1 = run_episode(learner, params, KEY, xs, ys, 3)
        r2 = run_episode(learner, params, KEY, xs, ys2, 3)
        np.testing.assert_array_equal(r1.logits[:4], r2.logits[:4])
        assert not np.allclose(r1.logits[4:], r2.logits[4:])


def test_backward_messages_reach_lower_layer_one_step_later():
    """Normal mode: the error fed after step t reaches layer K at t+1 and layer K−1 at t+2."""
    learner = VSML(VSMLConfig(hidden_layers=(LayerSpec(units=4),)))
    params = _perturbed_params(learner)
    task = TaskSpec((5,), 3, 1)
    xs, ys = _episode_data((5,), 3, 1, steps=4)
    ys2 = ys.at[0].set((ys[0] + 1) % 3)

    def states(ys):
        state = learner.init_state(params, KEY, task)
        out = []
        for t in range(3):
            state, logits = learner.predict(params, state, xs[t])
            out.append(state)
            state = learner.update(params, state, xs[t], logits, ys[t])
        return out

    a, b = states(ys), states(ys2)
    # step 1 (t=1): output layer saw the different error, hidden layer has not yet
    np.testing.assert_array_equal(a[1]["h"][0], b[1]["h"][0])
    assert not np.allclose(a[1]["h"][1], b[1]["h"][1])
    assert not np.allclose(a[2]["h"][0], b[2]["h"][0])


def test_run_episodes_matches_run_episode():
    learner = VSML(VSMLConfig())
    params = learner.init_params(KEY)
    xs, ys = _episode_data((6,), 3, 2, steps=5)
    keys = jax.random.split(KEY, 3)
    xb, yb = jnp.stack([xs, xs * 0.5, -xs]), jnp.stack([ys, ys, ys])
    batched = run_episodes(learner, params, keys, xb, yb, 3)
    single = run_episode(learner, params, keys[1], xb[1], yb[1], 3)
    np.testing.assert_allclose(batched.logits[1], single.logits, rtol=1e-5, atol=1e-6)
    assert batched.online_accuracy.shape == (3,)


def test_output_bound():
    config = VSMLConfig(output_bound=0.01)
    learner = VSML(config)
    params = _perturbed_params(learner)
    xs, ys = _episode_data((6,), 3, 1, steps=3)
    res = run_episode(learner, params, KEY, 100 * xs, ys, 3)
    assert float(jnp.abs(res.logits).max()) <= 0.01


# ---- errors -----------------------------------------------------------------------------------


def test_bad_shapes_and_values_raise_clear_errors():
    learner = VSML(VSMLConfig())
    params = learner.init_params(KEY)
    xs, ys = _episode_data((6,), 3, 2, steps=4)
    with pytest.raises(InputError, match="ys must have shape"):
        run_episode(learner, params, KEY, xs, ys[:3], 3)
    with pytest.raises(InputError, match="labels must be in"):
        run_episode(learner, params, KEY, xs, ys + 3, 3)
    with pytest.raises(InputError, match="NaN"):
        run_episode(learner, params, KEY, xs.at[1, 0, 2].set(jnp.nan), ys, 3)
    with pytest.raises(InputError, match="integer"):
        run_episode(learner, params, KEY, xs, ys.astype(jnp.float32), 3)
    with pytest.raises(InputError, match="one key per episode"):
        run_episodes(learner, params, jax.random.split(KEY, 2), xs[None], ys[None], 3)


def test_nan_inside_user_jit_propagates_to_logits():
    """Documented behaviour: inside a user's jit there is no check; NaN flows into that step's loss."""
    learner = VSML(VSMLConfig())
    params = learner.init_params(KEY)
    task = TaskSpec((6,), 3, 1)
    xs, ys = _episode_data((6,), 3, 1, steps=3)
    res = jax.jit(lambda x: episode(learner, params, KEY, x, ys, task)[1])(xs.at[1, 0, 0].set(jnp.nan))
    assert np.isfinite(res.losses[0]).all() and np.isnan(res.losses[1]).all()


def test_conv_larger_than_input():
    learner = VSML(VSMLConfig(hidden_layers=(LayerSpec(kind="conv", channels=2, kernel=5),), conv_padding="valid"))
    params = learner.init_params(KEY)
    xs, ys = _episode_data((4, 4, 1), 3, 1, steps=2)
    with pytest.raises(InputError, match="larger than its input"):
        run_episode(learner, params, KEY, xs, ys, 3)


def test_config_errors():
    with pytest.raises(ConfigError, match="Did you mean 'micro_ticks'"):
        from_dict(VSMLConfig, {"micro_tick": 3})
    with pytest.raises(ConfigError, match="reduce"):
        from_dict(VSMLConfig, {"reduce": "max"})
    with pytest.raises(ConfigError, match="needs backward_pass"):
        VSMLConfig(separate_backward_rnn=True)
    with pytest.raises(ConfigError, match="cannot follow a dense"):
        from_dict(VSMLConfig, {"hidden_layers": [{"units": 4}, {"kind": "conv", "channels": 2}]})
    with pytest.raises(ConfigError, match="hidden_layers\\[0\\].units|units"):
        from_dict(VSMLConfig, {"hidden_layers": [{"units": "many"}]})
    cfg = from_dict(VSMLConfig, {"hidden_layers": [{"kind": "conv", "channels": 2}, {"units": 8}]})
    assert cfg.hidden_layers[0] == LayerSpec(kind="conv", channels=2)
    hash(cfg)  # usable as a static jit argument


# ---- semantic options -------------------------------------------------------------------------


def test_semantic_option_defaults_and_legacy_records():
    """Defaults follow the authors' code; a stored record without the options predates them."""
    from vsml.config import to_dict

    cfg = VSMLConfig()
    assert (
        cfg.layer_norm_placement,
        cfg.backward_inputs,
        cfg.error_scale,
        cfg.param_init,
        cfg.conv_padding,
        cfg.conv_init_c_std,
        cfg.fraction_rounding,
    ) == ("cell", "replay", "batch_mean", "joint", "same", "kernel", "floor")
    assert all(getattr(cfg, k) != v for k, v in LEGACY_SEMANTICS.items())
    assert vsml_config_from_record({}) == VSMLConfig(**LEGACY_SEMANTICS)
    old = {"reduce": "sum", "backward_pass": True}
    assert vsml_config_from_record(old) == VSMLConfig(reduce="sum", backward_pass=True, **LEGACY_SEMANTICS)
    assert vsml_config_from_record({**old, "error_scale": "batch_mean"}).error_scale == "batch_mean"
    full = VSMLConfig(hidden_layers=(LayerSpec(units=3),), layer_norm=True)
    assert vsml_config_from_record(to_dict(full)) == full  # new records carry every field
    with pytest.raises(ConfigError, match="backward_inputs"):
        vsml_config_from_record({"backward_inputs": "random"})
    with pytest.raises(ConfigError, match="conv_padding"):
        VSMLConfig(conv_padding="full")
    with pytest.raises(ConfigError, match="Did you mean 'error_scale'"):
        from_dict(VSMLConfig, {"error_scaling": "sum"})


def test_fraction_rounding_and_error_scale():
    assert [unit_count(7, 0.5, r) for r in ("floor", "round")] == [3, 4]
    assert [unit_count(16, 1 / 16, r) for r in ("floor", "round")] == [1, 1]
    x = jax.random.normal(KEY, (2, 3, 7))
    for rounding, k in (("floor", 3), ("round", 4)):
        m = merge_batch(x, 0.5, rounding)
        np.testing.assert_array_equal(m[:, :, k:], x[:, :, k:])
        np.testing.assert_allclose(m[0, :, :k], x[:, :, :k].mean(0), rtol=1e-6)
    task = TaskSpec((5,), 3, 1)
    for rounding, k in (("floor", 3), ("round", 4)):
        c = VSML(VSMLConfig(state_size=7, fraction_rounding=rounding)).init_state(None, KEY, task)["c"][0]
        assert bool(jnp.all(c[..., :k] != 0)) and float(jnp.abs(c[..., k:]).max()) == 0
    logits, y = jnp.array([[0.0, 1.0, 2.0], [1.0, 0.0, 0.0]]), jnp.array([2, 0])
    full = error_message(logits, y, 3, 4, True, "sum")
    mean = error_message(logits, y, 3, 4, True, "batch_mean")
    np.testing.assert_allclose(mean[..., 0], full[..., 0] / 2, rtol=1e-6)
    np.testing.assert_array_equal(mean[..., 1], full[..., 1])  # the fed label is not scaled


def test_conv_same_padding_geometry():
    """SAME (default): k//2 zeros on each side for odd k, ceil(H/s) outputs; even k pads one less before."""
    from vsml.learners.vsml import layer_geometry

    def geom(k, s, shape=(5, 5, 1), padding="same"):
        cfg = VSMLConfig(hidden_layers=(LayerSpec(kind="conv", channels=2, kernel=k, stride=s),), conv_padding=padding)
        return layer_geometry(cfg, shape, 3)[0]

    assert (geom(3, 1).ho, geom(3, 2).ho, geom(5, 2).ho, geom(2, 1).ho) == (5, 3, 3, 5)
    assert (geom(3, 1).pad_lo, geom(3, 1).pad_hi, geom(2, 1).pad_lo, geom(2, 1).pad_hi) == (1, 1, 0, 1)
    assert geom(3, 2, padding="valid").ho == 2 and geom(7, 1, (4, 4, 1)).ho == 4  # SAME accepts a kernel > input
    # one SAME padding for the VSML conv layers and the backprop baseline: jax.lax's "SAME" at stride 1
    from vsml.learners._common import same_padding

    for k in range(1, 7):
        assert (
            same_padding(k)
            == tuple(jax.lax.padtype_to_pads((9,), (k,), (1,), "SAME")[0])
            == (geom(k, 1).pad_lo, geom(k, 1).pad_hi)
        )


def test_backward_pass_replay_state():
    """``backward_inputs="replay"``: the forward sweep's messages are kept for the backward sweep,
    whose backward messages reach the layers below in the next forward sweep; the error is zero there."""
    cfg = VSMLConfig(hidden_layers=(LayerSpec(units=4),), backward_pass=True)
    learner = VSML(cfg)
    params = _perturbed_params(learner)
    task = TaskSpec((5,), 3, 2)
    xs, ys = _episode_data((5,), 3, 2, steps=2)
    state = learner.init_state(params, KEY, task)
    assert [a.shape for a in state["fwd"]] == [(2, 4, 8)]
    state, logits = learner.predict(params, state, xs[0])
    assert float(jnp.abs(state["fwd"][0]).max()) > 0 and float(jnp.abs(state["bwd"][0]).max()) == 0
    state = learner.update(params, state, xs[0], logits, ys[0])
    assert float(jnp.abs(state["bwd"][0]).max()) > 0 and float(jnp.abs(state["bwd"][1]).max()) == 0
    assert "fwd" not in VSML(VSMLConfig(backward_pass=True, backward_inputs="zeros")).init_state(params, KEY, task)


def test_bias_units():
    """``bias: true`` adds one input unit per layer with a constant message; its backward message
    goes nowhere; conv layers have none."""
    from vsml.learners.vsml import INPUT_CHANNEL, OUTPUT_CHANNEL, with_bias_unit

    cfg = VSMLConfig(hidden_layers=(LayerSpec(units=4),), bias=True, hidden_bias_input=3.0)
    msg = jnp.ones((2, 5, 8))
    out0, out1 = np.asarray(with_bias_unit(msg, 0, cfg)), np.asarray(with_bias_unit(msg, 1, cfg))
    assert out0.shape == out1.shape == (2, 6, 8)
    np.testing.assert_array_equal(out0[:, :5], 1.0)
    np.testing.assert_array_equal(out0[:, 5], np.eye(8)[INPUT_CHANNEL][None].repeat(2, 0))
    np.testing.assert_array_equal(out1[:, 5], 3.0 * np.eye(8)[OUTPUT_CHANNEL][None].repeat(2, 0))
    assert with_bias_unit(msg, 0, VSMLConfig()) is msg
    task = TaskSpec((6,), 3, 2)
    for backward_pass in (False, True):
        learner = VSML(dataclasses.replace(cfg, backward_pass=backward_pass))
        params = learner.init_params(KEY)
        state = learner.init_state(params, KEY, task)
        assert [c.shape[1] for c in state["c"]] == [(6 + 1) * 4, (4 + 1) * 3]
        assert [b.shape[1] for b in state["bwd"]] == [4, 3]
        xs, ys = _episode_data((6,), 3, 2, steps=3)
        final, res = episode(learner, params, KEY, xs, ys, task)
        assert jax.tree.map(jnp.shape, final) == jax.tree.map(jnp.shape, state)
        # the bias unit is an input like any other: its cells change the output
        plain = VSML(dataclasses.replace(cfg, backward_pass=backward_pass, bias=False))
        _, res_plain = episode(plain, params, KEY, xs, ys, task)
        assert not np.allclose(res.logits, res_plain.logits)
    with pytest.raises(ConfigError, match="dense layers only"):
        VSMLConfig(hidden_layers=(CONV(channels=2),), bias=True)
