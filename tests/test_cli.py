"""The main CLI: the showcase main job and error handling."""

import json

import pytest

from vsml.cli import main


def test_run_main_job_writes_results(tmp_path, capsys, monkeypatch):
    from vsml.eval import plots

    labels, save = [], plots.save_figure
    monkeypatch.setattr(
        plots,
        "save_figure",
        lambda fig, path: labels.extend(ln.get_label() for ax in fig.axes for ln in ax.lines) or save(fig, path),
    )
    # general: the headline LA, on the native 8x8 digits (the resized-episodes path of LAs with an
    # input contract: tests/test_eval.py::test_showcase_runs)
    rc = main(["run", "--episodes", "2", "--steps", "20", "--out", str(tmp_path), "--no-progress", "--la", "general"])
    assert rc == 0
    results = json.loads((tmp_path / "results.json").read_text())
    learners = {r["learner"] for r in results["results"]}
    assert learners == {"oracle best backprop", "vsml:general"}
    assert set(results["meta"]["datasets"]) == {"digits"}
    assert {p["reference"] for p in results["paired"]} == {"oracle"}
    assert (tmp_path / "curves.png").stat().st_size > 0
    oracle = next(r for r in results["results"] if r["learner"] == "oracle best backprop")
    assert labels == [
        "vsml:general",
        f"oracle best backprop ({oracle['oracle_choice']['online_acc']})",
    ]  # the plot shows it
    out = capsys.readouterr().out
    assert (
        "online acc" in out
        and "best of these 22 configurations on these same episodes" in out
        and "paired difference" in out
    )
    general = next(r for r in results["paired"] if r["learner"] == "vsml:general")
    head = out[out.index("Headline: 'general'") :]
    assert "vsml:general on digits (2 episodes × 20 steps)" in head
    assert f"paired difference {100 * general['metrics']['online_acc']['mean']:+.1f} ± " in head


def test_run_refuses_an_unknown_la(tmp_path, capsys):
    assert main(["run", "--out", str(tmp_path), "--la", "nope"]) == 2
    assert "not a shipped LA" in capsys.readouterr().err


def test_unknown_command_and_option_exit_cleanly(capsys):
    with pytest.raises(SystemExit) as e:
        main(["no-such-command"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["run", "--no-such-option"])
    assert e.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_version(capsys):
    import tomllib
    from pathlib import Path

    import vsml

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"vsml {vsml.__version__}"
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    assert "version" in project["dynamic"]  # one version, in src/vsml/__init__.py
    assert (Path(__file__).parents[1] / "CHANGELOG.md").read_text().count(f"## {vsml.__version__}") == 1


def test_protocol_and_clone_evaluate_are_subcommands(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["protocol", "--help"])
    assert e.value.code == 0 and "usage: vsml protocol" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["clone-evaluate", "--help"])
    assert e.value.code == 0 and "usage: vsml clone-evaluate" in capsys.readouterr().out
    assert main(["protocol", "--checkpoint", "nope", "-o", str(tmp_path / "x"), "-d", "digits:2"]) == 2
    assert capsys.readouterr().err.startswith("vsml protocol: error: cannot load checkpoint nope")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "table.md").write_text("an earlier run")  # the output-folder rule of the other commands
    assert main(["clone-evaluate", "--la", "cloned_sgd_1layer", "-d", "digits", "-o", str(tmp_path / "full")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vsml clone-evaluate: error: output folder") and "--overwrite" in err
    assert (tmp_path / "full" / "table.md").read_text() == "an earlier run"


def test_commands_record_their_own_arguments_once(monkeypatch):
    """`vsml protocol ...` records `vsml protocol <its arguments>`, not the command name twice."""
    from vsml.eval import protocol

    seen = {}
    monkeypatch.setattr(protocol, "run_command", lambda args, argv=None: seen.setdefault("argv", argv) and 0)
    main(["protocol", "--checkpoint", "general", "--chunk", "3"])
    assert seen["argv"] == ["--checkpoint", "general", "--chunk", "3"]
