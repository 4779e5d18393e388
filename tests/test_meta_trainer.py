"""MetaTrainer end to end on tiny configs: gradient, ES, curriculum, resume after a crash, guards, CLI."""

import argparse
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
import yaml
from _meta_support import TINY_VSML, tiny_config

from vsml.checkpoint import CheckpointError, load_learner
from vsml.config import ConfigError
from vsml.meta.trainer import MetaTrainer, MetaTrainingError, meta_config_from_dict

SRC = str(Path(__file__).parents[1] / "src")


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


@pytest.mark.parametrize("boundary", [4, 6], ids=["stage-change-inside-segment", "checkpoint-on-stage-boundary"])
def test_resume_after_crash_is_bit_identical(tmp_path, boundary):
    # The run is killed right after the checkpoint of iteration 6; the curriculum advances after
    # iteration 4 (before the crash) or exactly at 6 (the checkpoint holds the new stage, EMA reset).
    over = {"iterations": 12, "curriculum": [{"classes": 2, "steps": 5, "iterations": boundary}, {}]}
    straight = MetaTrainer(meta_config_from_dict(tiny_config(tmp_path / "a", **over))).run()
    cfg_path = tmp_path / "b.yaml"
    cfg_path.write_text(yaml.safe_dump(tiny_config(tmp_path / "b", **over)))
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    crash = (
        "import os, sys; from vsml.meta.trainer import MetaTrainer, load_meta_config; "
        "MetaTrainer(load_meta_config(sys.argv[1])).run(on_iteration=lambda i: i == 6 and os._exit(17))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", crash, str(cfg_path)], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 17, proc.stderr[-2000:]
    assert (tmp_path / "b" / "checkpoints" / "ckpt_00000006.npz").is_file()
    assert not (tmp_path / "b" / "learner.npz").exists()
    cfg_b = meta_config_from_dict(yaml.safe_load(cfg_path.read_text()))
    with pytest.raises(CheckpointError, match="--resume"):
        MetaTrainer(cfg_b).run()  # never overwrites an existing run
    resumed = MetaTrainer(cfg_b).run(resume=True)
    for a, b in zip(_leaves(straight.params), _leaves(resumed.params)):
        np.testing.assert_array_equal(a, b)
    assert [r["loss"] for r in straight.history[6:]] == [r["loss"] for r in resumed.history]
    assert straight.history[-1]["stage"] == 1
    learner, params = load_learner(tmp_path / "b")
    for a, b in zip(_leaves(params), _leaves(resumed.params)):
        np.testing.assert_array_equal(a, b)
    from vsml import pretrained

    la_config, la_params = pretrained.load(tmp_path / "b" / "learner.npz")  # a VSML learner is an LA
    assert la_config == learner.config
    for a, b in zip(_leaves(la_params), _leaves(resumed.params)):
        np.testing.assert_array_equal(a, b)
    metrics = (tmp_path / "b" / "metrics.csv").read_text().splitlines()
    assert metrics[0].startswith("iteration") and [int(r.split(",")[0]) for r in metrics[1:]] == list(range(1, 13))
    # A changed config is refused on resume.
    changed = meta_config_from_dict(tiny_config(tmp_path / "b", **{**over, "seed": 1}))
    with pytest.raises(CheckpointError, match="different config"):
        MetaTrainer(changed).run(resume=True)


def test_allow_change_continues_a_run_with_a_changed_recipe_and_records_it(tmp_path, capsys):
    """``--allow-change KEY`` lets only that key differ on resume; the change is logged and kept in
    every later checkpoint's ``config_changes``; the resumed run trains under the new value."""
    from vsml.checkpoint import CheckpointManager
    from vsml.cli import main

    over = {"iterations": 2, "objective": {"bands": [2, 4]}}
    MetaTrainer(meta_config_from_dict(tiny_config(tmp_path / "r", **over))).run()
    changed = tiny_config(
        tmp_path / "r", **{**over, "iterations": 4, "objective": {"bands": [2, 4], "band_share": 0.5}}
    )
    with pytest.raises(CheckpointError, match=r"objective.band_share.*--allow-change"):
        MetaTrainer(meta_config_from_dict(changed)).run(resume=True)
    with pytest.raises(CheckpointError, match="seed"):  # only the named key may differ
        MetaTrainer(meta_config_from_dict({**changed, "seed": 3})).run(resume=True, allow_changes=("objective",))
    seen = []
    result = MetaTrainer(meta_config_from_dict(changed), log=seen.append).run(
        resume=True, allow_changes=("objective.band_share",)
    )
    assert result.iteration == 4 and any("objective.band_share: 1.0 -> 0.5" in m for m in seen)
    meta = (
        CheckpointManager(tmp_path / "r" / "checkpoints")
        .load(CheckpointManager(tmp_path / "r" / "checkpoints").latest())
        .meta
    )
    assert meta["config_changes"] == [{"iteration": 2, "changes": {"objective.band_share": [1.0, 0.5]}}]
    assert meta["config"]["objective"]["band_share"] == 0.5
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump(tiny_config(tmp_path / "c", **over)))
    assert main(["meta-train", str(cfg_path), "--allow-change", "objective"]) == 2
    assert "needs --resume" in capsys.readouterr().err


def test_stage_lr_sets_the_meta_learning_rate_of_its_stage(tmp_path):
    def run(name, lr, stage_lrs):
        stages = [{"classes": 2, "steps": 5, "iterations": 2}, {"classes": 2, "steps": 5}]
        for st, stage_lr in zip(stages, stage_lrs):
            if stage_lr is not None:
                st["lr"] = stage_lr
        cfg = tiny_config(
            tmp_path / name, iterations=4, curriculum=stages, gradient={"lr": lr, "clip": 25.0, "meta_batch": 2}
        )
        return MetaTrainer(meta_config_from_dict(cfg)).run()

    base = run("base", 0.01, [None, None])
    # stage rates replace gradient.lr, and Adam's state carries over the stage change
    same = run("same", 0.5, [0.01, 0.01])
    for a, b in zip(_leaves(base.params), _leaves(same.params)):
        np.testing.assert_array_equal(a, b)
    # a rate for the second stage only: the first two steps as before, then other updates
    late = run("late", 0.01, [None, 0.5])
    assert [r["loss"] for r in late.history[:3]] == [r["loss"] for r in base.history[:3]]
    assert any(not np.array_equal(a, b) for a, b in zip(_leaves(base.params), _leaves(late.params)))
    with pytest.raises(ConfigError, match=r"curriculum\[0\]\.lr: 0.0 is out of range"):
        meta_config_from_dict(tiny_config(tmp_path / "bad", curriculum=[{"lr": 0.0}]))


def _step_compiles(fn):
    """``fn()`` and the number of meta-step programs (jitted ``step``) XLA compiled while it ran."""
    from jax import monitoring

    names, active = [], [True]

    def listen(event, duration, **kw):
        if active[0] and event == "/jax/core/compile/backend_compile_duration":
            names.append(kw.get("fun_name"))

    monitoring.register_event_duration_secs_listener(listen)
    try:
        out = fn()
    finally:
        active[0] = False
        if hasattr(monitoring, "unregister_event_duration_listener"):
            monitoring.unregister_event_duration_listener(listen)
    return out, names.count("jit(step)")


def test_stages_that_differ_only_in_lr_share_one_compiled_step(tmp_path, monkeypatch):
    """The stage rate is an argument of the one compiled meta-step: three stages of equal shapes
    and three rates compile it once, and give bit for bit the parameters of the previous way (one
    meta-optimizer per stage rate, the rate a constant of each stage's program: three compiles),
    also when a run of the previous way is resumed from its checkpoint by this one."""
    from vsml.meta import trainer as trainer_mod

    stages = [
        {"classes": 2, "steps": 5, "iterations": 2, "lr": 0.02},
        {"classes": 2, "steps": 5, "iterations": 1, "lr": 0.004},
        {"classes": 2, "steps": 5},
    ]

    def run(name, resume=False, iterations=5):
        cfg = tiny_config(
            tmp_path / name,
            iterations=iterations,
            curriculum=stages,
            gradient={"lr": 0.0375, "clip": 25.0, "meta_batch": 2},
            checkpoint={"every": 1, "keep": 9},
        )
        trainer = MetaTrainer(meta_config_from_dict(cfg))
        return _step_compiles(lambda: trainer.run(resume=resume))

    new, n_new = run("new")
    assert n_new == 1 and [r["stage"] for r in new.history] == [0, 0, 1, 2, 2]
    with monkeypatch.context() as m:  # the previous way: a meta-optimizer per stage rate
        m.setattr(trainer_mod, "_takes_lr", lambda opt: False)
        old, n_old = run("old")
        part, _ = run("resumed", iterations=3)  # the previous way's checkpoint at iteration 3 (stage 1) ...
    assert n_old == 3
    for a, b in zip(_leaves(old.params), _leaves(new.params)):
        np.testing.assert_array_equal(a, b)
    assert [r["loss"] for r in old.history] == [r["loss"] for r in new.history]
    resumed, _ = run("resumed", resume=True)  # ... continued this way
    assert [r["stage"] for r in resumed.history] == [2, 2]
    for a, b in zip(_leaves(old.params), _leaves(resumed.params)):
        np.testing.assert_array_equal(a, b)


def test_every_stored_checkpoint_restores_its_optimizer_state():
    """Every checkpoint under docs/results with an optimizer state restores into this version's
    meta-optimizer state (its layout did not change when the rate became a step argument) and
    takes an update at a traced rate."""
    from vsml import artifacts
    from vsml.learners.registry import learner_from_record
    from vsml.meta.registry import make_meta_optimizer

    found = 0
    for path in sorted((Path(__file__).parents[1] / "docs" / "results").rglob("*.npz")):
        art = artifacts.load(path)
        if "opt_state" not in art.groups:
            continue
        found += 1
        cfg = meta_config_from_dict(art.meta["config"])
        learner = learner_from_record(art.meta["learner"])
        params = art.restore("params", jax.eval_shape(learner.init_params, jax.random.PRNGKey(0)))
        opt = make_meta_optimizer(cfg.meta_optimizer.name, cfg.meta_optimizer.config())
        opt_state = art.restore("opt_state", jax.eval_shape(opt.optimizer.init, params))
        stored = art.leaves("opt_state")
        assert all(np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(opt_state), stored)), path
        rule = opt.update_rule(np.float32(cfg_lr := opt.config.lr))
        updates, _ = jax.eval_shape(rule.update, params, opt_state, params)
        assert jax.tree_util.tree_structure(updates) == jax.tree_util.tree_structure(params), (path, cfg_lr)
    assert found >= 10


def test_resume_checkpoint_made_before_the_semantic_options(tmp_path):
    """A checkpoint whose learner record lacks the VSML semantic options was made with their legacy
    values: resuming it under today's defaults is refused, naming the overrides that resume it."""
    from vsml import artifacts
    from vsml.learners.vsml import LEGACY_SEMANTICS

    first = MetaTrainer(meta_config_from_dict(tiny_config(tmp_path / "r", iterations=3))).run()
    ckpt = tmp_path / "r" / "checkpoints" / "ckpt_00000003.npz"
    art = artifacts.load(ckpt)
    meta = art.meta
    assert set(LEGACY_SEMANTICS) <= set(meta["learner"]["options"])  # new records carry every option
    meta["learner"]["options"] = {k: v for k, v in meta["learner"]["options"].items() if k not in LEGACY_SEMANTICS}
    artifacts.save(
        ckpt, "checkpoint", {g: list(v) for g, v in art.arrays.items()}, meta
    )  # as if written before the options
    with pytest.raises(CheckpointError, match="learner.options.error_scale=sum"):
        MetaTrainer(meta_config_from_dict(tiny_config(tmp_path / "r", iterations=4))).run(resume=True)
    legacy = {"name": "vsml", "options": {**TINY_VSML, **LEGACY_SEMANTICS}}
    resumed = MetaTrainer(meta_config_from_dict(tiny_config(tmp_path / "r", iterations=4, learner=legacy))).run(
        resume=True
    )
    assert [r["iteration"] for r in resumed.history] == [4]
    assert load_learner(tmp_path / "r")[0].config.backward_inputs == "zeros"
    assert first.iteration == 3


def test_es_with_eval_and_init_from_run(tmp_path):
    first = MetaTrainer(meta_config_from_dict(tiny_config(tmp_path / "g", iterations=2))).run()
    cfg = tiny_config(
        tmp_path / "es",
        method="es",
        iterations=3,
        init=str(tmp_path / "g"),
        learner={"name": "vsml", "from_init": True},  # learner config read from the init run
        eval={
            "every": 3,
            "episodes": 2,
            "steps": 8,
            "first": 4,
            "last": 4,
            "datasets": [{"name": "digits", "split": "test"}],
        },
        log={"progress": True, "tensorboard": True, "every": 1},
    )
    res = MetaTrainer(meta_config_from_dict(cfg)).run()
    assert all(r["finite"] for r in res.history) and len(res.history) == 3
    assert not np.allclose(_leaves(res.params)[0], _leaves(first.params)[0])
    ev = (tmp_path / "es" / "eval.csv").read_text().splitlines()
    assert ev[1].startswith("3,digits:test,")
    if importlib.util.find_spec("tensorboardX") is not None:  # the [tensorboard] extra
        assert list((tmp_path / "es" / "tb").iterdir())
    else:  # without it the run goes on without TensorBoard files
        assert not (tmp_path / "es" / "tb").exists() or not list((tmp_path / "es" / "tb").iterdir())
    learner, _ = load_learner(tmp_path / "es")
    assert learner.config.state_size == 4


def test_keep_best_keeps_the_best_meta_test_learner_across_resume(tmp_path):
    from vsml import artifacts

    ev = {
        "every": 2,
        "episodes": 2,
        "steps": 8,
        "first": 4,
        "last": 4,
        "keep_best": True,
        "datasets": [{"name": "digits", "split": "test"}],
    }
    out = tmp_path / "kb"
    MetaTrainer(
        meta_config_from_dict(tiny_config(out, iterations=4, checkpoint={"every": 2, "keep": 5}, eval=ev))
    ).run()
    res = MetaTrainer(
        meta_config_from_dict(tiny_config(out, iterations=8, checkpoint={"every": 2, "keep": 5}, eval=ev))
    ).run(resume=True)
    rows = [ln.split(",") for ln in (out / "eval.csv").read_text().splitlines()[1:]]
    header = (out / "eval.csv").read_text().splitlines()[0].split(",")
    online = {int(r[0]): float(r[header.index("online")]) for r in rows}
    assert sorted(online) == [2, 4, 6, 8]
    best_it = max(online, key=lambda i: (online[i], -i))  # the first iteration reaching the maximum
    art = artifacts.load(out / "best.npz", kind="learner")
    assert art.meta["iteration"] == best_it and art.meta["best_eval"]["score"] == pytest.approx(online[best_it])
    _, params = load_learner(out / "best.npz")
    _, at_best = load_learner(out / "checkpoints" / f"ckpt_{best_it:08d}.npz")  # the parameters of that iteration
    for a, b in zip(_leaves(params), _leaves(at_best)):
        np.testing.assert_array_equal(a, b)
    assert res.iteration == 8
    # resuming from a checkpoint older than best.npz drops it (as eval.csv's later rows are)
    trainer = MetaTrainer(meta_config_from_dict(tiny_config(out, iterations=8, eval=ev)))
    assert trainer._best_score(out / "best.npz", True, best_it) == pytest.approx(online[best_it])
    assert trainer._best_score(out / "best.npz", True, best_it - 1) == -np.inf
    assert not (out / "best.npz").exists() and not (out / "best.json").exists()


def test_dataset_roles_and_the_keep_best_default():
    """Validation data shares no example with meta-training (other split, disjoint percentage
    slices or class subsets) and is not in the protocol's meta-test; ``keep_best: null`` is on
    exactly when every configured eval dataset is validation data."""
    from vsml.data.episodes import DatasetSpec as D
    from vsml.meta.selection import dataset_roles, keep_best_default, overlaps

    assert not overlaps(D("mnist", "train[:80%]"), D("mnist", "train[80%:]"))
    assert overlaps(D("mnist", "train[:80%]"), D("mnist", "train[70%:]"))
    assert not overlaps(D("mnist", "train"), D("mnist", "test")) and not overlaps(D("mnist"), D("omniglot"))
    assert overlaps(D("mnist", "train[:100]"), D("mnist", "train[50%:]"))  # integer bounds: not ruled out
    assert not overlaps(D("mnist", classes=(0, 1)), D("mnist", classes=(2, 3)))
    train = [D("mnist", "train[:80%]"), D("omniglot", "train")]
    roles = dataset_roles(
        [D("mnist", "train[80%:]"), D("omniglot", "test"), D("kmnist", "test"), D("omniglot", "train")], train
    )
    assert roles == {
        "mnist:train[80%:]": "validation",
        "omniglot:test": "validation",
        "kmnist:test": "meta-test",
        "omniglot:train": "meta-training",
    }
    valid = {k: r for k, r in roles.items() if r == "validation"}
    on, note = keep_best_default(None, True, valid)
    assert on and "validation data" in note
    off, note = keep_best_default(None, True, roles)
    assert not off and "kmnist:test (meta-test)" in note and "omniglot:train (meta-training)" in note
    assert keep_best_default(None, False, valid) == (False, None)  # default eval sets: nothing configured
    assert keep_best_default(False, True, valid) == (False, None)
    forced, note = keep_best_default(True, True, roles)
    assert forced and "judge the chosen learner on other datasets" in note


def test_keep_best_is_on_by_default_with_validation_data(tmp_path):
    from vsml import artifacts

    ev = {
        "every": 2,
        "episodes": 2,
        "steps": 8,
        "first": 4,
        "last": 4,
        "datasets": [{"name": "digits", "split": "test"}],
    }
    seen = []
    MetaTrainer(meta_config_from_dict(tiny_config(tmp_path / "v", iterations=2, eval=ev)), log=seen.append).run()
    art = artifacts.load(tmp_path / "v" / "best.npz", kind="learner")
    assert art.meta["best_eval"]["roles"] == {"digits:test": "validation"}
    assert any("eval.keep_best on" in m for m in seen)
    ev["datasets"] = [{"name": "digits", "split": "train"}]  # the meta-training data itself: not chosen on by default
    seen.clear()
    MetaTrainer(meta_config_from_dict(tiny_config(tmp_path / "t", iterations=2, eval=ev)), log=seen.append).run()
    assert not (tmp_path / "t" / "best.npz").exists() and any("digits:train (meta-training)" in m for m in seen)


def test_nonfinite_streak_stops(tmp_path, monkeypatch):
    cfg = meta_config_from_dict(tiny_config(tmp_path / "n", iterations=10, max_nonfinite=3))
    trainer = MetaTrainer(cfg)
    monkeypatch.setattr(
        trainer,
        "init_params",
        lambda: jax.tree_util.tree_map(
            lambda x: np.full(np.shape(x), np.nan, np.float32), trainer.learner.init_params(jax.random.PRNGKey(0))
        ),
    )
    with pytest.raises(MetaTrainingError, match="3 non-finite meta-steps in a row"):
        trainer.run()


def test_cli_register_and_errors(tmp_path, capsys):
    from vsml.meta import cli

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    cli.register(sub)
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump(tiny_config(tmp_path / "c")))
    args = parser.parse_args(["meta-train", str(cfg_path), "gradient.lrr=1", "--no-progress"])
    assert args.func(args) == 2
    assert "gradient.lrr" in capsys.readouterr().err
    args = parser.parse_args(["meta-train", str(cfg_path), "iterations=1", "--print-config"])
    assert args.func(args) == 0 and "iterations: 1" in capsys.readouterr().out
    args = parser.parse_args(["meta-train", str(tmp_path / "missing.yaml")])
    assert args.func(args) == 2


@pytest.mark.parametrize(
    "name,method",
    [(n, "gradient") for n in ("meta_rnn", "hebbian", "fwm", "delta_fwp")] + [("meta_rnn", "es"), ("fwm", "es")],
)
def test_meta_learned_baselines_meta_train(tmp_path, name, method):
    """The MetaTrainer drives every baseline that has meta-parameters, by gradient and by ES."""
    cfg = tiny_config(
        tmp_path / name,
        iterations=2,
        method=method,
        learner={"name": name, "options": {}},
        checkpoint={"every": 2, "keep": 1},
    )
    trainer = MetaTrainer(meta_config_from_dict(cfg))
    before = _leaves(trainer.init_params())
    result = trainer.run()
    assert all(np.isfinite(r["loss"]) and r["finite"] for r in result.history)
    after = _leaves(result.params)
    assert [a.shape for a in after] == [b.shape for b in before]
    assert any(not np.array_equal(a, b) for a, b in zip(after, before))
    learner, params = load_learner(tmp_path / name)
    assert type(learner).__name__ == type(trainer.learner).__name__
    for a, b in zip(_leaves(params), after):
        np.testing.assert_array_equal(a, b)


def test_init_layers_maps_sub_rnns_onto_a_deeper_network(tmp_path):
    two = {**TINY_VSML, "per_layer_rnn": True, "hidden_layers": [{"kind": "dense", "units": 3}]}
    src = MetaTrainer(
        meta_config_from_dict(tiny_config(tmp_path / "src", iterations=1, learner={"name": "vsml", "options": two}))
    ).run()
    three = {**two, "hidden_layers": [{"kind": "dense", "units": 3}, {"kind": "dense", "units": 4}]}
    cfg = tiny_config(
        tmp_path / "deep",
        iterations=1,
        init=str(tmp_path / "src"),
        init_layers=[0, 1, 1],
        learner={"name": "vsml", "options": three},
    )
    params = MetaTrainer(meta_config_from_dict({**cfg, "iterations": 0})).run().params  # writes the start learner
    assert np.array_equal(_leaves(load_learner(tmp_path / "deep")[1])[0], _leaves(params)[0])
    for k, i in enumerate([0, 1, 1]):
        for a, b in zip(_leaves(params["rnn"][k]), _leaves(src.params["rnn"][i])):
            np.testing.assert_array_equal(a, b)
    # a shared sub-RNN (per_layer_rnn off) fans out too
    shared = MetaTrainer(meta_config_from_dict(tiny_config(tmp_path / "shared", iterations=1))).run()
    cfg = tiny_config(
        tmp_path / "fan", init=str(tmp_path / "shared"), init_layers=[0, 0], learner={"name": "vsml", "options": two}
    )
    params = MetaTrainer(meta_config_from_dict(cfg)).init_params()
    assert len(params["rnn"]) == 2
    for a, b in zip(_leaves(params["rnn"][1]), _leaves(shared.params["rnn"][0])):
        np.testing.assert_array_equal(a, b)
    # errors: an index the init does not have, a count that does not fit, no init, bad values
    with pytest.raises(MetaTrainingError, match=r"has 2 sub-RNN\(s\)"):
        MetaTrainer(meta_config_from_dict({**cfg, "init": str(tmp_path / "src"), "init_layers": [0, 2]})).init_params()
    with pytest.raises(MetaTrainingError, match="do not fit"):
        MetaTrainer(
            meta_config_from_dict({**cfg, "init": str(tmp_path / "src"), "init_layers": [0, 1, 1]})
        ).init_params()
    with pytest.raises(ConfigError, match="init_layers needs `init`"):
        meta_config_from_dict({**cfg, "init": None})
    for bad in ([], [-1, 0], ["a"]):
        with pytest.raises(ConfigError, match="init_layers"):
            meta_config_from_dict({**cfg, "init_layers": bad})
