"""Backprop in forward mode: the per-cell reference LA, cloning machinery, shipped cloned LAs."""

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vsml import pretrained
from vsml.checkpoint import CheckpointError
from vsml.cloning import backprop_la as ref
from vsml.cloning.clone import CloneConfig, CloneStage, run_clone, vsml_config
from vsml.config import ConfigError
from vsml.learners.backprop import Backprop
from vsml.learners.base import run_episode, run_episodes
from vsml.learners.vsml import VSML


def _stream(seed=0, t=40, d=12, c=4, batch=1):
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(t, batch, d)).astype(np.float32)
    ys = rng.integers(0, c, size=(t, batch)).astype(np.int32)
    return xs, ys, c


# ---------------------------------------------------------------------------------------------
# 1. the reference LA reproduces online SGD


@pytest.mark.parametrize("hidden", [(), (7,)])
@pytest.mark.parametrize("batch", [1, 3])
def test_reference_equals_online_sgd(hidden, batch):
    xs, ys, c = _stream(batch=batch)
    key = jax.random.PRNGKey(3)
    r = run_episode(ref.ReferenceBackprop(lr=0.1, hidden=hidden), {}, key, xs, ys, c)
    s = run_episode(Backprop(optimizer="sgd", lr=0.1, layers=len(hidden) + 1, hidden=7), {}, key, xs, ys, c)
    np.testing.assert_allclose(np.asarray(r.logits), np.asarray(s.logits), rtol=1e-5, atol=2e-6)
    assert float(jnp.abs(s.logits).max()) > 1.0  # the weights really moved


def test_reference_without_bias_equals_autodiff_sgd():
    xs, ys, c = _stream(seed=1, t=12, d=9)
    learner = ref.ReferenceBackprop(lr=0.05, hidden=(5,), use_bias=False)
    state = learner.init_state({}, jax.random.PRNGKey(0), ref.TaskSpec((9,), c))
    w1, w2 = state["w"]

    def loss(ws, x, y):
        logits = jnp.tanh(x @ ws[0]) @ ws[1]
        return -jax.nn.log_softmax(logits)[0, y[0]]

    ws = (w1, w2)
    for x, y in zip(xs, ys):
        state, logits = learner.predict({}, state, jnp.asarray(x))
        np.testing.assert_allclose(np.asarray(logits), np.asarray(jnp.tanh(x @ ws[0]) @ ws[1]), rtol=1e-5, atol=1e-6)
        state = learner.update({}, state, jnp.asarray(x), logits, jnp.asarray(y))
        g = jax.grad(loss)(ws, x, y)
        ws = tuple(w - 0.05 * gw for w, gw in zip(ws, g))
    for a, b in zip(state["w"], ws):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_reference_messages_are_per_cell_backprop():
    """Summed per-cell messages = layer outputs (forward) and ∂L/∂(pre-activation below) (backward)."""
    xs, ys, c = _stream(seed=2, t=1, d=6)
    learner = ref.ReferenceBackprop(lr=0.1, hidden=(5,), use_bias=False)
    state = learner.init_state({}, jax.random.PRNGKey(1), ref.TaskSpec((6,), c))
    w1, w2 = state["w"]
    x, y = jnp.asarray(xs[0]), jnp.asarray(ys[0])
    state, logits = learner.predict({}, state, x)
    fwd1, fwd2 = state["msg_fwd"]
    assert fwd1.shape == (1, 6, 5, 8)
    np.testing.assert_allclose(np.asarray(fwd1[..., 1].sum(1)), np.asarray(x @ w1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(fwd2[..., 1].sum(1)), np.asarray(logits), rtol=1e-5, atol=1e-6)
    assert float(jnp.abs(fwd1[..., [0, *range(2, 8)]]).max()) == 0.0  # one channel only
    state = learner.update({}, state, x, logits, y)
    z = x @ w1
    dz = jax.grad(lambda z: -jax.nn.log_softmax(jnp.tanh(z) @ w2)[0, y[0]])(z)
    np.testing.assert_allclose(np.asarray(state["msg_bwd"][1][..., 0].sum(2)), np.asarray(dz), rtol=1e-5, atol=1e-6)


def test_reference_rejects_bad_kind_and_options():
    with pytest.raises(ValueError, match="cell kind"):
        ref.cell_forward(jnp.ones(2), jnp.ones(2), "relu", 8)
    with pytest.raises(ValueError, match="lr"):
        ref.ReferenceBackprop(lr=0.0)


# ---------------------------------------------------------------------------------------------
# 2. cloning machinery (tiny sizes)

TINY = dict(batch=8, stages=(CloneStage(4, 3, 0.5),), eval_seq_len=6, val_seq_len=6, checkpoint_every=2)


def test_handcrafted_cell_follows_reference():
    """The hand-constructed start of cloning already tracks backprop over a long stream."""
    from vsml.cloning.clone import evaluate_cells
    from vsml.cloning.handcrafted import handcrafted_cell

    cc = CloneConfig(hidden=(3,))
    params = {"rnn": (handcrafted_cell("linear"), handcrafted_cell("tanh"))}
    d = {k: float(v) for k, v in evaluate_cells(cc, params, jax.random.PRNGKey(0), 300, batch=64).items()}
    for kind in ("linear", "tanh"):
        assert d[f"{kind}_fwd_rel"] < 0.08 and d[f"{kind}_bwd_rel"] < 0.08, d
        assert d[f"{kind}_upd_rel"] < 0.02 and d[f"{kind}_w_rel"] < 0.01, d
    with pytest.raises(ValueError, match="state_size"):
        handcrafted_cell("linear", state_size=8)


def test_clone_config_validation():
    with pytest.raises(ConfigError):
        CloneConfig(name="a/b")
    with pytest.raises(ConfigError):
        CloneConfig(train_kinds=("tanh",))  # no tanh layer without hidden layers
    with pytest.raises(ConfigError):
        CloneConfig(stages=())
    with pytest.raises(ConfigError, match="bias_share"):
        CloneConfig(bias_share=1.0)
    cfg = vsml_config(CloneConfig(hidden=(4,)))
    assert cfg.reduce == "sum" and cfg.backward_pass and cfg.per_layer_rnn and not cfg.bias
    assert CloneConfig(hidden=(4,)).kinds == ("linear", "tanh")
    cfg = vsml_config(CloneConfig(hidden=(4,), bias=True, preact_clip=4.0))
    assert cfg.bias and cfg.hidden_bias_input == 4.0  # the constant the tanh bias cells were cloned on


def test_bias_cells_see_the_bias_units_constant_input():
    from vsml.cloning.clone import fresh_cells, sample_inputs

    cc = CloneConfig(hidden=(4,), bias=True, bias_share=0.25)
    key = jax.random.PRNGKey(0)
    for kind, value in (("linear", 1.0), ("tanh", cc.preact_clip)):
        cells = fresh_cells(cc, kind, key, 400)
        x, _ = sample_inputs(cc, kind, cells, jax.random.PRNGKey(1), 30)
        x = np.asarray(x)
        constant = np.all(x == value, axis=0)
        assert 0.15 < constant.mean() < 0.35  # ~ bias_share of the cells, and only they
        assert not np.any(np.all(x == value, axis=0) & (np.asarray(cells["spread"]) > 0))
    plain = fresh_cells(CloneConfig(hidden=(4,)), "linear", key, 400)
    assert not np.any(
        np.all(np.asarray(sample_inputs(CloneConfig(hidden=(4,)), "linear", plain, key, 30)[0]) == 1.0, 0)
    )


def test_clone_run_save_load_and_resume(tmp_path):
    cc = CloneConfig(name="tiny", hidden=(3,), **TINY)  # same config as the CLI test: one compilation
    full = run_clone(cc, tmp_path / "a", progress=False, log=lambda *_: None)
    assert full.name == "tiny.npz" and full.with_suffix(".json").is_file()
    config, params = pretrained.load(full)
    assert config == vsml_config(cc) and len(params["rnn"]) == 2
    meta = pretrained.info(full)["meta"]
    assert meta["seed"] == 0 and "wall_clock_s" in meta and meta["clone_config"]["hidden"] == [3]
    # interrupted after 2 iterations, then resumed: identical result
    assert run_clone(cc, tmp_path / "b", progress=False, log=lambda *_: None, stop_after=2) is None
    from vsml import artifacts

    assert artifacts.load(tmp_path / "b" / "tiny.ckpt.npz", kind="clone-checkpoint").meta["iteration"] == 2
    assert (tmp_path / "b" / "tiny.metrics.csv").read_text().startswith("iteration,seq_len,loss")
    resumed = run_clone(cc, tmp_path / "b", resume=True, progress=False, log=lambda *_: None)
    _, p2 = pretrained.load(resumed)
    for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(p2)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # the cloned LA runs as a VSML learner on a task of another size
    xs, ys, c = _stream(t=5, d=7, c=3)
    res = run_episode(VSML(config), params, jax.random.PRNGKey(0), xs, ys, c)
    assert np.all(np.isfinite(np.asarray(res.logits)))


def test_clone_resume_without_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="--resume: no checkpoint"):
        run_clone(CloneConfig(name="tiny", hidden=(3,), **TINY), tmp_path, resume=True, progress=False)


def test_clone_cli_register(tmp_path, capsys):
    from vsml.cloning import cli

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    argv = [
        "clone",
        "--out",
        str(tmp_path),
        "--no-progress",
        "name=tiny",
        "batch=8",
        "hidden=[3]",
        "stages=[{iterations: 4, seq_len: 3, reset_prob: 0.5}]",
        "eval_seq_len=6",
        "val_seq_len=6",
        "checkpoint_every=2",
    ]
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    assert (tmp_path / "tiny.npz").is_file()
    meta = json.loads((tmp_path / "tiny.json").read_text())["meta"]["info"]  # the readable copy of the record
    assert meta["command"].startswith("vsml clone")
    # a fresh clone into a used folder is refused before any compute, as in vsml meta-train; --overwrite replaces
    # this clone's files (checkpoint, metrics, LA) and keeps the others
    (tmp_path / "notes.txt").write_text("keep")
    stamp = (tmp_path / "tiny.npz").stat().st_mtime_ns
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("vsml clone: error: ") and "already holds checkpoints" in err and "--overwrite" in err
    assert (tmp_path / "tiny.npz").stat().st_mtime_ns == stamp
    args = parser.parse_args([*argv, "--overwrite"])
    assert args.func(args) == 0 and (tmp_path / "notes.txt").read_text() == "keep"
    assert (tmp_path / "tiny.npz").stat().st_mtime_ns != stamp
    args = parser.parse_args([*argv, "--overwrite", "--resume"])
    assert args.func(args) == 2 and "pass one" in capsys.readouterr().err
    args = parser.parse_args(["clone", "--out", str(tmp_path), "nonsense_key=1"])
    assert args.func(args) == 2
    assert "nonsense_key" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# pretrained loading errors


def test_pretrained_errors(tmp_path):
    with pytest.raises(pretrained.PretrainedError, match="unknown LA"):
        pretrained.load("no_such_la")
    with pytest.raises(pretrained.PretrainedError, match="does not exist"):
        pretrained.load(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(pretrained.PretrainedError, match="corrupt"):
        pretrained.load(bad)
    cfg = vsml_config(CloneConfig())
    params = VSML(cfg).init_params(jax.random.PRNGKey(0))
    good = pretrained.save(tmp_path / "good.npz", cfg, params, {"seed": 0})
    assert pretrained.info(good)["meta"] == {"seed": 0}
    with np.load(good) as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(bad, **{k: v for k, v in arrays.items() if k != "__meta__"})  # arrays without their record
    with pytest.raises(pretrained.PretrainedError, match="sidecar"):
        pretrained.load(bad)
    np.savez(bad, **{**arrays, "params/1": arrays["params/1"][:2]})  # a truncated array
    with pytest.raises(pretrained.PretrainedError, match="checksum"):
        pretrained.load(bad)
    other = tmp_path / "other.npz"
    from vsml import artifacts

    artifacts.save(other, "learner", {"params": {}}, {"learner": {"name": "sgd", "options": {}}})
    with pytest.raises(pretrained.PretrainedError, match="not a VSML LA"):
        pretrained.load(other)


# ---------------------------------------------------------------------------------------------
# 4. shipped cloned LAs learn the embedded digits data online


SHIPPED = [n for n in pretrained.names() if n.startswith("cloned_")]


def test_cloned_las_are_shipped():
    assert {"cloned_sgd_1layer", "cloned_sgd_hidden"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_la_learns_digits(name):
    from vsml.data.episodes import DatasetSpec, SamplerConfig, draw_episodes
    from vsml.eval.evaluate import episode_keys

    config, params = pretrained.load(name)
    meta = pretrained.info(name)["meta"]
    assert meta["command"].startswith("vsml clone") and "seed" in meta
    eps = draw_episodes(SamplerConfig(datasets=(DatasetSpec("digits", "test"),), steps=400), 0, 2)
    res = run_episodes(VSML(config), params, episode_keys(0, 2), eps.xs, eps.ys, eps.num_classes)
    correct = np.asarray(res.correct)[:, :, 0]
    late = correct[:, -150:].mean()  # 300 predictions: a learner at chance (0.1) is far below the bar
    assert late > 0.6, f"{name}: accuracy over the last 150 of 400 steps {late:.2f} (chance 0.1)"


def test_clone_evaluate_with_bias_units_and_another_hidden_size(tmp_path, capsys):
    """``vsml clone-evaluate`` (here through its module entry point): an LA with bias units is compared with SGD with
    biases
    only (the per-cell no-bias reference is not what it cloned); ``--hidden`` resizes the hidden
    layer of the LA and of its SGD alike; ``--resize`` the images."""
    from vsml.cloning import evaluate as clone_eval
    from vsml.cloning.clone import init_clone_params

    cc = CloneConfig(name="tinybias", hidden=(3,), bias=True, init="random", **TINY)
    path = tmp_path / "tinybias.npz"
    pretrained.save(path, vsml_config(cc), init_clone_params(cc, jax.random.PRNGKey(0)), {"clone_config": {"lr": 0.02}})
    learners = clone_eval.learners_for(str(path), hidden_units=5)
    assert sorted(learners) == ["sgd 2L-h5 lr=0.02", "tinybias"]
    assert learners["tinybias"][0].config.hidden_layers[0].units == 5 and learners["tinybias"][0].config.bias
    assert learners["sgd 2L-h5 lr=0.02"][0].hidden == 5
    out = tmp_path / "eval"
    assert (
        clone_eval.main(
            [
                "--la",
                str(path),
                "-d",
                "digits",
                "-n",
                "2",
                "-T",
                "12",
                "--hidden",
                "5",
                "--resize",
                "4",
                "--chunk",
                "2",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads((out / "results.json").read_text())
    assert "tinybias" in capsys.readouterr().out and "--resize 4" in report["meta"]["command"]
