"""The main CLI: the showcase main job and error handling."""

import json

import pytest

from vsml.cli import main


def test_run_main_job_writes_results(tmp_path, capsys):
    rc = main(["run", "--episodes", "2", "--steps", "20", "--out", str(tmp_path), "--no-progress"])
    assert rc == 0
    results = json.loads((tmp_path / "results.json").read_text())
    learners = {r["learner"] for r in results["results"]}
    assert "oracle best backprop" in learners and any(name.startswith("vsml:") for name in learners)
    assert {p["reference"] for p in results["paired"]} == {"oracle"}
    assert (tmp_path / "curves.png").stat().st_size > 0
    out = capsys.readouterr().out
    assert "online acc" in out and "best of these 22 configurations on these same episodes" in out and "paired difference" in out


def test_unknown_command_and_option_exit_cleanly(capsys):
    with pytest.raises(SystemExit) as e:
        main(["no-such-command"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["run", "--no-such-option"])
    assert e.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err
