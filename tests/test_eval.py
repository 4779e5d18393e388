"""Tests of the meta-test evaluation: metrics, reproducibility, outputs, CLI, introspection."""

from __future__ import annotations

import argparse
import csv
import json

import jax
import numpy as np
import pytest

from vsml.data import DataError, DatasetSpec, Episodes, SamplerConfig, draw_episodes
from vsml.eval import report as rep
from vsml.eval.evaluate import EvalError, episode_keys, evaluate
from vsml.eval.introspect import fast_association_from_logits, first_occurrences, shots_seen, softmax, state_norms
from vsml.eval.metrics import curve_ci, mean_ci, smooth, summarize
from vsml.learners.registry import make_learner


def _toy(e=3, t=40, seed=0, classes=3, dim=6):
    rng = np.random.default_rng(seed)
    protos = rng.normal(size=(classes, dim)).astype(np.float32)
    ys = rng.integers(0, classes, size=(e, t, 1)).astype(np.int32)
    xs = protos[ys] + 0.3 * rng.normal(size=(*ys.shape, dim)).astype(np.float32)
    return Episodes(xs, ys, classes)


def test_mean_ci_matches_t_interval():
    est = mean_ci([1.0, 2.0, 3.0, 4.0])
    # t_{0.975, 3} = 3.182446; sd = 1.290994; half = 3.182446 * 1.290994 / 2
    assert est.mean == pytest.approx(2.5)
    assert est.half_width == pytest.approx(3.182446 * 1.290994 / 2, rel=1e-5)
    one = mean_ci([0.7])  # one episode: the interval is undefined, not zero-width
    assert one.mean == 0.7 and np.isnan(one.lo) and np.isnan(one.hi) and one.n == 1
    assert np.isnan(curve_ci(np.array([[0.0, 1.0]]))[1]).all()
    m, lo, hi = curve_ci(np.array([[0.0, 1.0], [1.0, 1.0]]))
    np.testing.assert_allclose(m, [0.5, 1.0])
    assert lo[1] == hi[1] == 1.0 and lo[0] < 0.5 < hi[0]
    np.testing.assert_allclose(smooth(np.array([1.0, 0.0, 1.0, 1.0]), 2), [1.0, 0.5, 0.5, 1.0])


def test_summary_windows():
    correct = np.zeros((2, 200))
    correct[:, 100:] = 1.0
    s = summarize(correct, np.ones((2, 200)))
    assert s["first_100_acc"].mean == 0.0 and s["final_acc"].mean == 1.0
    assert s["online_acc"].mean == pytest.approx(0.5)
    assert "first_1000_acc" not in s
    short = summarize(correct[:, :10], np.ones((2, 10)))  # 10 steps: no window of 100 steps to report
    assert set(short) == {"online_acc", "online_loss"}


def test_evaluate_is_reproducible_and_uses_the_same_episodes():
    eps = _toy()
    learners = {"sgd": (make_learner("sgd", {"lr": 0.1}), None), "hebbian": (make_learner("hebbian"), None)}
    r1 = evaluate(learners, {"toy": eps}, seed=3)
    r2 = evaluate(learners, {"toy": eps}, seed=3)
    for a, b in zip(r1.results, r2.results):
        np.testing.assert_array_equal(a.correct, b.correct)
        np.testing.assert_array_equal(a.loss, b.loss)
    assert r1.get("sgd", "toy").correct.shape == (3, 40)
    # another seed gives other initial weights
    r3 = evaluate({"sgd": learners["sgd"]}, {"toy": eps}, seed=4)
    assert not np.array_equal(r3.results[0].loss, r1.get("sgd", "toy").loss)
    # chunking does not change the numbers
    r4 = evaluate({"sgd": learners["sgd"]}, {"toy": eps}, seed=3, chunk=2)
    np.testing.assert_allclose(r4.results[0].loss, r1.get("sgd", "toy").loss, rtol=1e-6)
    assert not np.array_equal(np.asarray(episode_keys(3, 2)), np.asarray(episode_keys(4, 2)))


def test_draw_episodes_is_deterministic_with_invariance_options():
    cfg = SamplerConfig(datasets=(DatasetSpec("digits", "test"),), steps=30, num_classes=3, permutation="episode")
    a = draw_episodes(cfg, 1, 2)
    b = draw_episodes(cfg, 1, 2)
    np.testing.assert_array_equal(a.xs, b.xs)
    np.testing.assert_array_equal(a.ys, b.ys)
    assert a.xs.shape == (2, 30, 1, 8, 8, 1) and a.num_classes == 3 and a.ys.max() < 3
    c = draw_episodes(SamplerConfig(datasets=(DatasetSpec("digits", "test"),), steps=30, num_classes=3), 1, 2)
    np.testing.assert_array_equal(c.ys, a.ys)  # same examples, only the pixels are permuted
    np.testing.assert_allclose(np.sort(c.xs[0, 0].ravel()), np.sort(a.xs[0, 0].ravel()))
    r = draw_episodes(
        SamplerConfig(datasets=(DatasetSpec("digits", "test"),), steps=5, image_size=(14, 14), projection="episode"),
        0,
        1,
    )
    assert r.xs.shape == (1, 5, 1, 196) and r.num_classes == 10
    with pytest.raises(DataError, match="unknown dataset"):
        draw_episodes(SamplerConfig(datasets=("no_such_set",)), 0, 1)
    with pytest.raises(DataError, match="classes"):
        draw_episodes(SamplerConfig(datasets=("digits",), num_classes=11), 0, 1)


def test_cli_options_map_onto_the_sampler_and_training_meta_test_is_the_same_experiment(tmp_path):
    """``vsml evaluate`` and the meta-test inside training draw identical episodes for identical settings."""
    from _meta_support import tiny_config

    from vsml.eval import commands
    from vsml.meta.trainer import MetaTrainer, meta_config_from_dict

    args = _parser().parse_args(
        [
            "evaluate",
            "-d",
            "digits",
            "-n",
            "3",
            "-T",
            "12",
            "--classes",
            "3",
            "--seed",
            "7",
            "--resize",
            "6",
            "--project",
            "--sampler",
            "balanced=true",
        ]
    )
    scfg = commands.sampler_config(args, "digits")
    assert (scfg.num_classes, scfg.image_size, scfg.projection, scfg.permutation, scfg.balanced) == (
        3,
        (6, 6),
        "episode",
        "none",
        True,
    )
    cli_eps = commands.episodes_for(args, "digits")
    trainer = MetaTrainer(
        meta_config_from_dict(
            tiny_config(
                tmp_path / "t",
                data={
                    "datasets": [{"name": "digits"}],
                    "steps": 5,
                    "num_classes": 3,
                    "image_size": [6, 6],
                    "projection": "episode",
                    "balanced": True,
                },
                eval={
                    "every": 1,
                    "episodes": 3,
                    "steps": 12,
                    "seed": 7,
                    "datasets": [{"name": "digits", "split": "test"}],
                },
            )
        )
    )
    ((label, tcfg),) = trainer.eval_configs().items()
    train_eps = draw_episodes(tcfg, 7, 3)
    np.testing.assert_array_equal(train_eps.xs.reshape(cli_eps.xs.shape), cli_eps.xs)
    np.testing.assert_array_equal(train_eps.ys, cli_eps.ys)
    with pytest.raises(SystemExit):
        _parser().parse_args(["evaluate", "--permutation", "sometimes"])


def test_report_outputs(tmp_path):
    eps = _toy(t=120)
    report = evaluate({"sgd": (make_learner("sgd", {"lr": 0.1}), None)}, {"toy": eps}, seed=0)
    paths = rep.write_all(report, tmp_path, json_path=tmp_path / "r.json")
    rows = list(csv.DictReader(open(paths["csv"])))
    assert len(rows) == 120 and rows[0]["step"] == "1" and rows[0]["learner"] == "sgd"
    table = paths["table"].read_text()
    assert "| toy | sgd |" in table and "acc first 100" in table
    data = json.loads(paths["json"].read_text())
    m = data["results"][0]["metrics"]
    assert set(m) >= {"online_acc", "first_100_acc", "final_acc", "online_loss"}
    s = report.results[0].summary()
    assert m["online_acc"]["mean"] == pytest.approx(s["online_acc"].mean)
    assert paths["plot"].stat().st_size > 1000


def test_evaluate_tunes_backprop_learning_rate_on_separate_episodes():
    eps, tune = _toy(seed=0), _toy(seed=1)
    report = evaluate(
        {"sgd": (make_learner("sgd"), None)}, {"toy": eps}, seed=0, tune={"toy": tune}, tune_lrs={"sgd": (1e-4, 0.3)}
    )
    assert report.learners == ["sgd", "sgd (tuned lr)"]
    assert "tuned_lr" not in report.results[0].info
    assert report.get("sgd (tuned lr)", "toy").info["tuned_lr"] == 0.3
    assert report.meta["tuned_lr"] == {"sgd (tuned lr)": {"toy": 0.3}}
    assert "| toy | sgd (tuned lr) = 0.3 |" in rep.markdown_table(report)


def test_evaluate_errors():
    with pytest.raises(EvalError, match="no learners"):
        evaluate({}, {"toy": _toy()})
    bad = Episodes(np.zeros((2, 5, 1, 3)), np.zeros((2, 4, 1), np.int32), 3)
    with pytest.raises(EvalError, match="ys must have shape"):
        evaluate({"sgd": (make_learner("sgd"), None)}, {"bad": bad})
    big = Episodes(np.zeros((1, 2, 1, 30, 30)), np.zeros((1, 2, 1), np.int32), 3)
    with pytest.raises(EvalError, match="cannot run dataset 'big'.*input_size"):
        evaluate({"hebbian": (make_learner("hebbian"), None)}, {"big": big})


def test_shots_and_fast_association():
    ys = np.array([[[0], [1], [0], [0], [1]]])
    np.testing.assert_array_equal(shots_seen(ys, 2)[0, :, 0], [0, 0, 1, 2, 1])
    logits = np.zeros((1, 5, 1, 2))
    logits[0, 2, 0] = [np.log(3.0), 0.0]  # p(class 0) = 0.75 after one example of class 0
    logits[0, 4, 0] = [0.0, np.log(3.0)]  # p(class 1) = 0.75 after one example of class 1
    r = fast_association_from_logits(logits, ys, 2)
    assert r["shots"] == [0, 1, 2]
    assert r["one_shot_prob"] == pytest.approx(0.75)
    assert r["prob_mean"][0] == pytest.approx(0.5)


def test_first_occurrences_and_softmax():
    np.testing.assert_array_equal(first_occurrences(np.array([2, 0, 2, 1, 0, 1])), [1, 1, 0, 1, 0, 0])
    p = softmax(np.array([[0.0, np.log(3.0)], [1000.0, 0.0]]))
    np.testing.assert_allclose(p, [[0.25, 0.75], [1.0, 0.0]])


def test_state_norms_work_for_any_learner():
    eps = _toy(e=1, t=10)
    learner = make_learner("adam", {"lr": 0.1})
    names, norms = state_norms(learner, {}, jax.random.PRNGKey(0), eps.xs[0], eps.ys[0], 3)
    assert norms.shape == (11, len(names)) and any("net" in n for n in names)
    assert np.all(np.isfinite(norms))
    w = names.index(next(n for n in names if "net" in n and "'w'" in n))
    assert norms[-1, w] != norms[0, w]


def _parser():
    from vsml.eval import cli

    parser = argparse.ArgumentParser(prog="vsml")
    cli.register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_cli_evaluate_and_introspect(tmp_path, capsys):
    parser = _parser()
    args = parser.parse_args(
        [
            "evaluate",
            "-l",
            "sgd:lr=0.1",
            "-d",
            "digits",
            "-n",
            "2",
            "-T",
            "20",
            "--classes",
            "5",
            "--no-progress",
            "-o",
            str(tmp_path / "ev"),
            "--json",
            str(tmp_path / "ev.json"),
            "--no-plot",
        ]
    )
    assert args.func(args) == 0
    data = json.loads((tmp_path / "ev.json").read_text())
    assert data["results"][0]["learner"] == "sgd:lr=0.1" and data["results"][0]["episodes"] == 2
    first = data["results"][0]["metrics"]["online_acc"]["mean"]
    assert args.func(args) == 2  # the folder holds that run now: refused before computing
    assert "not empty" in capsys.readouterr().err
    args.overwrite = True
    assert args.func(args) == 0  # rerun: identical numbers
    assert json.loads((tmp_path / "ev.json").read_text())["results"][0]["metrics"]["online_acc"]["mean"] == first
    args = parser.parse_args(
        [
            "introspect",
            "-l",
            "sgd",
            "-n",
            "2",
            "-T",
            "15",
            "--classes",
            "3",
            "--norm-steps",
            "5",
            "-o",
            str(tmp_path / "in"),
        ]
    )
    assert args.func(args) == 0
    out = json.loads((tmp_path / "in" / "introspect.json").read_text())
    assert "sgd" in out["fast_association"] and len(out["state_norms"]["sgd"]["norms"]) == 6
    assert (tmp_path / "in" / "fast_association.png").exists() and (tmp_path / "in" / "episode_outputs.png").exists()
    ep0 = out["episode0"]
    probs = np.asarray(ep0["probs"]["sgd"])
    assert len(ep0["labels"]) == 15 and probs.shape == (15, 3)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-4)
    args = parser.parse_args(["evaluate", "-l", "sgdd", "-n", "1", "-T", "5", "-o", str(tmp_path / "x")])
    assert args.func(args) == 2
    assert "unknown learner 'sgdd'" in capsys.readouterr().err
    # step windows: a column per window (learners, oracle and paired differences); clear errors
    args = parser.parse_args(
        [
            "evaluate",
            "-l",
            "sgd",
            "-n",
            "2",
            "-T",
            "20",
            "--classes",
            "3",
            "--no-progress",
            "--no-plot",
            "--window",
            "5:20",
            "--window",
            "0:5",
            "--reference",
            "oracle",
            "-o",
            str(tmp_path / "w"),
            "--json",
            str(tmp_path / "w.json"),
        ]
    )
    assert args.func(args) == 0
    data = json.loads((tmp_path / "w.json").read_text())
    metrics = data["results"][0]["metrics"]
    assert list(metrics)[-3:] == ["steps_0_5_acc", "steps_5_20_acc", "online_loss"]
    assert {"steps_0_5_acc", "steps_5_20_acc"} <= set(data["paired"][0]["metrics"])
    assert "acc steps 5:20" in (tmp_path / "w" / "table.md").read_text()
    args = parser.parse_args(
        ["evaluate", "-l", "sgd", "-n", "2", "-T", "20", "--window", "10:30", "-o", str(tmp_path / "y")]
    )
    assert args.func(args) == 2
    assert "--window 10:30: longer than the episodes (-T 20 steps)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["evaluate", "--window", "20:10"])
    assert "expected START:STOP with 0 <= START < STOP" in capsys.readouterr().err


def test_showcase_runs(tmp_path):
    from vsml import contract, pretrained
    from vsml.eval.showcase import run_showcase
    from vsml.learners.vsml import VSML

    # the oracle reference is covered by tests/test_cli.py's main-job test; here an LA with an input
    # contract (meta_mnist: 14x14) runs on the same episodes resized, beside the baseline at 8x8
    config, params = pretrained.load("meta_mnist")
    report = run_showcase(
        tmp_path,
        {"vsml:meta_mnist": (VSML(config), params)},
        episodes=2,
        steps=20,
        baselines=("sgd",),
        oracle=False,
        progress=False,
        contracts={"vsml:meta_mnist": contract.of_learner("meta_mnist")},
    )
    assert report.reference is None and report.datasets == ["digits", "digits 14x14"]
    assert {(r.learner, r.dataset) for r in report.results} == {
        ("sgd", "digits"),
        ("sgd", "digits 14x14"),
        ("vsml:meta_mnist", "digits 14x14"),
    }
    assert (tmp_path / "curves.png").exists() and (tmp_path / "results.json").exists()


def test_cli_evaluates_your_own_file(tmp_path, monkeypatch):
    monkeypatch.setenv("VSML_CACHE_DIR", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    path = tmp_path / "mine.npz"
    np.savez(path, images=rng.normal(size=(60, 5)).astype(np.float32), labels=rng.integers(0, 3, 60))
    args = _parser().parse_args(
        [
            "evaluate",
            "-l",
            "sgd",
            "-d",
            str(path),
            "-n",
            "2",
            "-T",
            "10",
            "--no-progress",
            "--no-plot",
            "-o",
            str(tmp_path / "ev"),
            "--json",
            str(tmp_path / "ev.json"),
        ]
    )
    assert args.func(args) == 0
    res = json.loads((tmp_path / "ev.json").read_text())["results"][0]
    assert res["dataset"] == str(path) and res["steps"] == 10


def test_oracle_and_paired_differences():
    from vsml.eval.compare import oracle_backprop, oracle_from_curves, paired_differences

    # the oracle takes, per figure, the configuration best on that figure
    a, b = np.zeros((2, 200)), np.zeros((2, 200))
    a[:, :100], b[:, 100:] = 1.0, 1.0  # a is better early, b late
    o = oracle_from_curves(
        "toy", {"a": (a, np.ones_like(a)), "b": (b, np.zeros_like(b))}, windows=((50, 150), (90, 100), (0, 300))
    )
    assert o.best["first_100_acc"][0] == "a" and o.best["final_acc"][0] == "b" and o.best["online_loss"][0] == "b"
    assert o.best["steps_90_100_acc"][0] == "a" and o.best["steps_90_100_acc"][1].tolist() == [1.0, 1.0]
    assert o.best["steps_50_150_acc"][1].tolist() == [0.5, 0.5] and "steps_0_300_acc" not in o.best  # longer than T
    eps = _toy(e=3, t=30)
    oracles = oracle_backprop({"toy": eps}, seed=0, lrs={"sgd": (0.01, 0.3), "adam": (1e-3,)})
    assert len(oracles["toy"].scores) == 6  # 3 rates x {linear, 160-tanh}
    report = evaluate(
        {"sgd": (make_learner("sgd", {"lr": 0.3}), None), "adam": (make_learner("adam"), None)}, {"toy": eps}, seed=0
    )
    report.oracles, report.reference = oracles, "oracle"
    rows = paired_differences(report, "oracle", oracles)
    sgd = report.get("sgd", "toy").summary()["online_acc"].mean
    row = next(r for r in rows if r["learner"] == "sgd")
    assert row["online_acc"].mean == pytest.approx(sgd - oracles["toy"].summary()["online_acc"].mean)
    assert row["online_acc"].mean <= 1e-9  # nothing beats the oracle that contains it
    vs_adam = paired_differences(report, "adam")
    assert [r["learner"] for r in vs_adam] == ["sgd"]
    table = rep.markdown_table(report)
    assert "oracle best backprop" in table and "Paired differences: learner − oracle best backprop" in table
    one = evaluate({"sgd": (make_learner("sgd"), None), "adam": (make_learner("adam"), None)}, {"t": _toy(e=1)}, seed=0)
    r1 = paired_differences(one, "adam")[0]["online_acc"]
    assert np.isnan(r1.lo) and r1.n == 1  # undefined with one episode


def test_general_la_protocol_table(tmp_path):
    """The protocol's machinery on tiny settings: a paired row per learner, dataset and size with
    every target, the long-lifetime check, the markdown table and the CLI's clear errors."""
    from vsml.eval import protocol
    from vsml.learners.registry import make_learner

    config = protocol.ProtocolConfig(
        datasets=("digits:5",), sizes=(8,), episodes=2, steps=100, long_steps=2000, long_episodes=2, long_size=8
    )
    parts = []
    result = protocol.run(
        {"sgd": (make_learner("sgd", {"lr": 0.1}), None)}, config, log=lambda m: None, on_part=parts.append
    )
    assert len(parts) == 1 and parts[0]["partial"] and "Partial" in protocol.table_markdown(parts[0])
    (row,) = result["rows"]
    assert (row["learner"], row["dataset"], row["size"], row["episodes"]) == ("sgd", "digits:5", 8, 2)
    assert set(row["targets"]) == {"online_acc", "final_acc"}  # no first-1,000 window in 100-step episodes
    final = row["targets"]["final_acc"]
    assert final["ci_low"] <= final["mean"] <= final["ci_high"] and final["met"] == (final["mean"] >= -1.0)
    assert (
        final["mean"] <= 0.0
    )  # the oracle picks the best backprop per figure on these episodes; sgd lr 0.1 is in its grid
    (long,) = result["long"]
    assert long["met"] == (long["gain"]["mean"] >= 0) and 0 <= long["early"] <= 100
    table = protocol.table_markdown(result)
    assert "| sgd | digits:5 | 8×8 |" in table and "2000-step lifetimes" in table
    curves = result["_curves"]  # the panels of curves.png: the LA and the oracle's best-online configuration
    assert curves.datasets == ["digits:5 8x8", "digits:5 8x8, 2000 steps"]
    oracle = next(r for r in curves.results if r.learner.startswith("oracle ("))
    assert (
        oracle.learner == f"oracle ({result['rows'][0]['targets']['online_acc']['oracle']})"
        and oracle.correct.shape == (2, 100)
    )
    from vsml.eval.plots import plot_learning_curves

    assert plot_learning_curves(curves, tmp_path / "curves.png").stat().st_size > 0
    assert protocol.main(["--checkpoint", "nope", "-o", str(tmp_path / "x"), "-d", "digits:1"]) == 2
    with pytest.raises(ValueError, match="NAME:CLASSES"):
        protocol.parse_dataset("digits:five")


def test_sweep_plot(tmp_path, capsys):
    """``vsml plot sweep``: one figure of several ``vsml evaluate --json`` files against the option they sweep."""
    import json

    from vsml.cli import main
    from vsml.eval import figures as tool
    from vsml.eval.figures import FigureError

    fig = lambda m, n=8: {
        "mean": m,
        "ci_low": m - 0.1 if n > 1 else float("nan"),
        "ci_high": m + 0.1 if n > 1 else float("nan"),
        "n": n,
    }  # noqa: E731
    paths = []
    for k in (3, 1):  # few-shot: the query window of each file, against the shots
        a = 5 * k
        report = {
            "meta": {"options": {"sampler": [f"fewshot={{ways: 5, shots: {k}, queries: 5}}"], "window": [[a, a + 5]]}},
            "results": [
                {"learner": "vsml", "dataset": "omniglot", "metrics": {f"steps_{a}_{a + 5}_acc": fig(0.2 * k)}},
                {
                    "learner": "oracle best backprop",
                    "dataset": "omniglot",
                    "metrics": {f"steps_{a}_{a + 5}_acc": fig(0.1 * k)},
                },
                {"learner": "other window", "dataset": "omniglot", "metrics": {"steps_0_5_acc": fig(0.5)}},
            ],
        }
        paths.append(tmp_path / f"shots_{k}.json")
        paths[-1].write_text(json.dumps(report))
    shots, rows = tool.sweep_point(paths[0], "shots", "window")
    assert shots == 3 and sorted(rows) == ["oracle best backprop", "vsml"]  # only rows with the query window
    assert rows["vsml"] == pytest.approx((0.6, 0.5, 0.7)) and rows["oracle best backprop"] == pytest.approx(
        (0.3, 0.2, 0.4)
    )
    assert (
        main(
            ["plot", "sweep"]
            + [str(p) for p in paths]
            + ["--x", "shots", "--metric", "window", "-o", str(tmp_path / "fs.png")]
        )
        == 0
    )
    assert (tmp_path / "fs.png").stat().st_size > 1000
    assert (
        main(["plot", "sweep", str(paths[0]), "--x", "shots", "-o", str(tmp_path / "fs.png")]) == 2
    )  # exists: --overwrite
    assert "-o " in capsys.readouterr().err
    with pytest.raises(FigureError, match="not a few-shot evaluation"):
        tool.sweep_value({"sampler": []}, "shots", paths[0])
    # input sizes: two datasets per file, one picked; one episode (undefined interval) draws no band
    sizes = []
    for s in (14, 28):
        report = {
            "meta": {"options": {"image_size": s}},
            "results": [
                {"learner": "vsml", "dataset": "fashion_mnist", "metrics": {"online_acc": fig(s / 100, 1)}},
                {"learner": "vsml", "dataset": "kmnist", "metrics": {"online_acc": fig(0.1, 1)}},
            ],
        }
        sizes.append(tmp_path / f"size_{s}.json")
        sizes[-1].write_text(json.dumps(report))
    with pytest.raises(FigureError, match="several datasets.*--dataset"):
        tool.sweep_point(sizes[0], "image_size", "online_acc")
    assert tool.sweep_point(sizes[1], "image_size", "online_acc", "fashion_mnist")[0] == 28
    assert (
        main(
            ["plot", "sweep"]
            + [str(p) for p in sizes]
            + ["--x", "image_size", "--dataset", "kmnist", "-o", str(tmp_path / "s.png")]
        )
        == 0
    )
    assert (tmp_path / "s.png").stat().st_size > 1000
    with pytest.raises(FigureError, match="option 'num_classes' was not set"):
        tool.sweep_point(sizes[0], "num_classes", "online_acc", "kmnist")


def test_bar_plot(tmp_path, capsys):
    """``vsml plot bars``: one figure of a ``vsml evaluate --json`` file as grouped bars."""
    import json

    from vsml.cli import main
    from vsml.eval import figures as tool
    from vsml.eval.figures import FigureError

    fig = lambda m, n=8: {
        "mean": m,
        "ci_low": m - 0.1 if n > 1 else float("nan"),
        "ci_high": m + 0.1 if n > 1 else float("nan"),
        "n": n,
    }  # noqa: E731
    rows = [
        {"learner": "vsml", "dataset": "kmnist", "metrics": {"online_acc": fig(0.4)}},
        {"learner": "oracle best backprop", "dataset": "kmnist", "metrics": {"online_acc": fig(0.3)}},
        {"learner": "vsml", "dataset": "emnist", "metrics": {"online_acc": fig(0.6, 1)}},
        {"learner": "sgd", "dataset": "emnist", "metrics": {"final_acc": fig(0.5)}},
    ]
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"results": rows}))
    datasets, learners, values = tool.figure_rows(path, "online_acc")
    assert datasets == ["kmnist", "emnist"] and learners == ["vsml", "oracle best backprop"]  # sgd has no online_acc
    assert values[("kmnist", "oracle best backprop")] == pytest.approx((0.3, 0.2, 0.4))
    assert (
        main(["plot", "bars", str(path), "-o", str(tmp_path / "bars.png")]) == 0
    )  # an undefined interval: no error bar
    assert (tmp_path / "bars.png").stat().st_size > 1000
    with pytest.raises(FigureError, match="no learner has figure 'last_acc'.*final_acc, online_acc"):
        tool.figure_rows(path, "last_acc")
    assert main(["plot", "bars", str(path), "--metric", "last_acc", "-o", str(tmp_path / "b2.png")]) == 2
    assert capsys.readouterr().err.startswith("vsml plot bars: error: ") and not (tmp_path / "b2.png").exists()


def test_oracle_cache_runs_the_grid_once_per_set_of_episodes(tmp_path, monkeypatch):
    """With a cache folder the oracle grid runs once per set of episodes: a second learner judged on
    the same episodes gets the same oracle without running it; other episodes miss; a damaged
    cache file is ignored and rewritten."""
    import importlib

    from vsml.data.episodes import Episodes
    from vsml.eval import compare

    ev = importlib.import_module("vsml.eval.evaluate")

    rng = np.random.default_rng(0)
    eps = Episodes(
        rng.normal(size=(2, 30, 1, 8)).astype(np.float32), rng.integers(0, 3, (2, 30, 1)).astype(np.int32), 3
    )
    lrs = {"sgd": (0.01, 0.1)}
    first = compare.oracle_backprop({"a": eps}, lrs=lrs, cache=tmp_path)
    (entry,) = list(tmp_path.glob("oracle_*.npz"))
    calls = []
    real = ev.evaluate
    monkeypatch.setattr(ev, "evaluate", lambda *a, **k: calls.append(a) or real(*a, **k))
    again = compare.oracle_backprop({"a": eps}, lrs=lrs, cache=tmp_path)
    assert not calls
    for m, (label, v) in first["a"].best.items():
        assert again["a"].best[m][0] == label and np.array_equal(again["a"].best[m][1], v)
    other = eps._replace(ys=(eps.ys + 1) % 3)
    compare.oracle_backprop({"a": eps, "b": other}, lrs=lrs, cache=tmp_path)
    assert len(calls) == 1 and list(calls[0][1]) == ["b"]  # only the episodes not cached yet
    entry.write_bytes(b"not a zip")
    compare.oracle_backprop({"a": eps}, lrs=lrs, cache=tmp_path)
    assert len(calls) == 2 and compare._cache_read(tmp_path, entry.stem.removeprefix("oracle_")) is not None
