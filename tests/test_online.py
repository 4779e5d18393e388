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


def test_any_rows_per_call_equal_one_at_a_time():
    xs, ys = _stream(t=11, d=4)
    one = vsml.online("sgd", input_shape=(4,), num_classes=3, lr=0.1)
    many = vsml.online("sgd", input_shape=(4,), num_classes=3, lr=0.1)
    ref = np.stack([one.learn(x, y) for x, y in zip(xs, ys)])
    got = np.concatenate([many.learn(xs[:5], ys[:5]), many.learn(xs[5:6], ys[5:6]), many.learn(xs[6:], ys[6:])])
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)
    assert many.steps == one.steps == 11
    np.testing.assert_allclose(many.predict(xs), one.predict(xs), rtol=1e-6, atol=1e-6)


def test_rows_that_do_not_fill_a_batch_wait_for_the_next_call(tmp_path):
    xs, ys = _stream(t=7, d=3)
    split = vsml.online("sgd", input_shape=(3,), num_classes=3, batch_size=2, lr=0.1)
    whole = vsml.online("sgd", input_shape=(3,), num_classes=3, batch_size=2, lr=0.1)
    split.learn(xs[:3], ys[:3])
    assert split.steps == 1 and split.pending == 1  # rows 0-1 learned, row 2 waits
    split = vsml.OnlineModel.load(split.save(tmp_path / "m.npz"))  # the waiting row is saved too
    split.learn(xs[3:], ys[3:])
    whole.learn(xs[:6], ys[:6])
    assert split.steps == whole.steps == 3 and split.pending == 1
    np.testing.assert_allclose(split.predict(xs[:2]), whole.predict(xs[:2]), rtol=1e-6)


def test_class_labels_probabilities_and_label_errors(tmp_path):
    xs, ys = _stream(t=9, d=4)
    names = np.array(["cat", "dog", "emu"])[ys]
    model = vsml.online("meta_digits", input_shape=(4,), classes=["cat", "dog", "emu"])
    assert model.task.num_classes == 3
    model.learn(xs, names)
    proba = model.predict_proba(xs)
    assert proba.shape == (9, 3) and np.allclose(proba.sum(1), 1)
    labels = model.predict_label(xs)
    assert labels.tolist() == [["cat", "dog", "emu"][i] for i in proba.argmax(1)]
    again = vsml.OnlineModel.load(model.save(tmp_path / "m.npz"))
    assert again.classes == ("cat", "dog", "emu") and again.predict_label(xs).tolist() == labels.tolist()
    with pytest.raises(InputError, match="'fox' is not one of this model's classes"):
        model.learn(xs[0], "fox")
    with pytest.raises(InputError, match="one per row"):
        model.learn(xs[:3], names[:2])
    with pytest.raises(InputError, match="num_classes=4 but 3 classes"):
        vsml.online("sgd", input_shape=(4,), num_classes=4, classes=[1, 2, 3])
    with pytest.raises(InputError, match="pass num_classes"):
        vsml.online("sgd", input_shape=(4,))


def test_running_standardisation_matches_numpy_and_predict_keeps_it():
    from vsml.online import RunningStats, running_standardize

    rng = np.random.default_rng(1)
    x = rng.normal([5.0, -300.0, 0.0], [2.0, 50.0, 0.0], size=(40, 3)).astype(np.float32)
    stats, first = running_standardize(RunningStats.empty((3,)), x[:25])
    stats, rest = running_standardize(stats, x[25:])
    out = np.concatenate([first, rest])
    for i in (1, 10, 39):  # row i: the statistics of rows 0..i
        seen = x[: i + 1, :2].astype(np.float64)
        np.testing.assert_allclose(out[i, :2], (x[i, :2] - seen.mean(0)) / seen.std(0), rtol=1e-4, atol=1e-5)
    assert np.all(out[:, 2] == 0) and np.all(out[0] == 0)  # a constant feature, and the first row, give 0
    np.testing.assert_allclose(stats.std[:2], x[:, :2].std(0), rtol=1e-4)

    model = vsml.online("sgd", input_shape=(3,), num_classes=2, standardize=True, lr=0.1)
    model.learn(x[:25], (x[:25, 0] > 5).astype(int))
    before = model.stats
    shifted = model.predict(x[:5])
    assert model.stats is before  # predict leaves the statistics alone
    # the model sees standardised inputs: an affine change of units changes nothing it predicts
    other = vsml.online("sgd", input_shape=(3,), num_classes=2, standardize=True, lr=0.1)
    other.learn(x[:25] * 3 + 7, (x[:25, 0] > 5).astype(int))
    np.testing.assert_allclose(other.predict(x[:5] * 3 + 7), shifted, rtol=1e-3, atol=1e-3)


def test_contract_switches_standardisation_on_for_general():
    assert vsml.online("general", input_shape=(5,), num_classes=3).standardize
    assert not vsml.online("general", input_shape=(5,), num_classes=3, standardize=False).standardize
    assert not vsml.online("cloned_sgd_1layer", input_shape=(5,), num_classes=3).standardize  # no contract
    assert not vsml.online("sgd", input_shape=(5,), num_classes=3).standardize
