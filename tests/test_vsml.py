"""The VSML RNN: factorised kernels vs the plain per-cell reference, protocol semantics, errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vsml.config import ConfigError, from_dict
from vsml.learners.base import InputError, TaskSpec, episode, run_episode, run_episodes
from vsml.learners.reference import ReferenceVSML
from vsml.learners.vsml import VSML, LayerSpec, VSMLConfig, error_message, merge_batch

KEY = jax.random.PRNGKey(0)


def _episode_data(input_shape, num_classes, batch, steps, seed=1):
    kx, ky = jax.random.split(jax.random.PRNGKey(seed))
    xs = jax.random.normal(kx, (steps, batch, *input_shape))
    ys = jax.random.randint(ky, (steps, batch), 0, num_classes)
    return xs, ys


def _perturbed_params(learner, seed=3):
    """Random biases/LN params so every parameter matters (init has zero biases)."""
    params = learner.init_params(jax.random.PRNGKey(seed))
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(seed + 1), len(leaves))
    leaves = [x + 0.3 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)]
    return jax.tree.unflatten(tree, leaves)


CASES = {
    "dense": (VSMLConfig(), (6,), 3, 1),
    "dense_3_layers": (VSMLConfig(hidden_layers=(LayerSpec(units=5), LayerSpec(units=4))), (7,), 3, 1),
    "conv_dense": (
        VSMLConfig(hidden_layers=(LayerSpec(kind="conv", channels=2, kernel=3, stride=2), LayerSpec(units=4))),
        (7, 7, 2),
        3,
        1,
    ),
    "conv_conv_2d_input": (
        VSMLConfig(hidden_layers=(LayerSpec(kind="conv", channels=2, kernel=2), LayerSpec(kind="conv", channels=1, kernel=2))),
        (4, 4),
        2,
        2,
    ),
    "batch4_merge": (VSMLConfig(hidden_layers=(LayerSpec(units=4),)), (5,), 3, 4),
    "backward_pass": (VSMLConfig(hidden_layers=(LayerSpec(units=4),), backward_pass=True), (5,), 3, 2),
    "backward_pass_separate_rnn": (
        VSMLConfig(hidden_layers=(LayerSpec(units=4),), backward_pass=True, separate_backward_rnn=True),
        (5,),
        3,
        1,
    ),
    "label_feeding": (VSMLConfig(label_feeding=True), (6,), 4, 1),
    "per_layer_rnn": (VSMLConfig(hidden_layers=(LayerSpec(units=4),), per_layer_rnn=True), (5,), 3, 1),
    "sum_reduce_layer_norm": (
        VSMLConfig(hidden_layers=(LayerSpec(kind="conv", channels=2, kernel=2), LayerSpec(units=3)), reduce="sum", layer_norm=True),
        (4, 4, 1),
        3,
        2,
    ),
    "three_micro_ticks_small_state": (VSMLConfig(state_size=6, message_size=4, micro_ticks=3), (5,), 3, 1),
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

    (lf, (sf, rf)), gf = jax.jit(jax.value_and_grad(lambda p: loss(fast, p), has_aux=True))(params)
    (lr, (sr, rr)), gr = jax.jit(jax.value_and_grad(lambda p: loss(ref, p), has_aux=True))(params)
    assert rf.logits.shape == (3, batch, num_classes)
    assert float(jnp.abs(rf.logits).max()) > 1e-3  # not trivially zero
    np.testing.assert_allclose(rf.logits, rr.logits, rtol=1e-5, atol=2e-6)
    np.testing.assert_allclose(lf, lr, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(sf), jax.tree.leaves(sr)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-6)
    scale = max(float(jnp.abs(b).max()) for b in jax.tree.leaves(gr))  # shift-invariant leaves have ~0 grads
    for a, b in zip(jax.tree.leaves(gf), jax.tree.leaves(gr)):
        np.testing.assert_allclose(a / scale, b / scale, atol=1e-5)
    assert any(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(gf))


def test_param_structure_options():
    cfg = VSMLConfig(hidden_layers=(LayerSpec(units=4),), per_layer_rnn=True, backward_pass=True,
                     separate_backward_rnn=True, layer_norm=True)
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
    learner = VSML(VSMLConfig(hidden_layers=(LayerSpec(kind="conv", channels=2, kernel=5),)))
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
