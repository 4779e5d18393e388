"""The streaming API: vsml.online(...).learn / predict / save / load, for LAs and baselines."""

import jax
import numpy as np
import pytest

import vsml
from vsml.learners.base import InputError, run_episode


def _stream(t=12, d=5, c=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(t, d)).astype(np.float32), rng.integers(0, c, size=t)


def test_learn_equals_the_episode_runner_and_predict_leaves_the_state():
    xs, ys = _stream()
    model = vsml.online("cloned_sgd_1layer", input_shape=(5,), num_classes=3, seed=4)
    before = model.predict(xs[0])
    assert np.array_equal(model.predict(xs[0]), before)  # predict does not change the state
    got = np.stack([model.learn(x, y) for x, y in zip(xs, ys)])
    ref = run_episode(model.learner, model.params, jax.random.PRNGKey(4), xs[:, None], ys[:, None], 3)
    np.testing.assert_allclose(got, np.asarray(ref.logits)[:, 0], rtol=1e-5, atol=1e-5)
    assert model.steps == 12 and not np.allclose(model.predict(xs[0]), before)


def test_save_load_and_baselines(tmp_path):
    xs, ys = _stream(d=4)
    for name, opts in (("meta_digits", {}), ("adam", {"lr": 0.05})):
        model = vsml.online(name, input_shape=(4,), num_classes=3, **opts)
        for x, y in zip(xs[:6], ys[:6]):
            model.learn(x, y)
        path = model.save(tmp_path / f"{name}.npz")
        again = vsml.OnlineModel.load(path)
        assert again.steps == 6
        for x, y in zip(xs[6:], ys[6:]):  # continues exactly where it left off
            np.testing.assert_array_equal(again.learn(x, y), model.learn(x, y))


def test_batches_and_errors():
    model = vsml.online("sgd", input_shape=(2, 3), num_classes=4, batch_size=2)
    assert model.learn(np.zeros((2, 2, 3)), [1, 3]).shape == (2, 4)
    with pytest.raises(InputError, match="x must have shape"):
        model.learn(np.zeros((3, 3)), [0, 1])
    with pytest.raises(InputError, match="labels must be in"):
        model.learn(np.zeros((2, 2, 3)), [0, 4])
    with pytest.raises(InputError, match="NaN"):
        model.predict(np.full((2, 2, 3), np.nan))
    with pytest.raises(InputError, match="neither a registered learner"):
        vsml.online("no_such_thing", input_shape=(3,), num_classes=2)
    with pytest.raises(InputError, match="only apply"):
        vsml.online("meta_digits", input_shape=(3,), num_classes=2, lr=0.1)
