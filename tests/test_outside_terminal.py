"""Outside a terminal: progress as periodic plain lines; plots on the active matplotlib backend."""

import io
import os

import pytest

from vsml.progress import PlainProgress, progress_bar


def test_plain_progress_lines_are_periodic_and_end_with_the_last_state(monkeypatch):
    out = io.StringIO()
    bar = PlainProgress(every=3600, file=out)
    task = bar.add_task("episodes", total=4)
    bar.update(task, advance=1)
    assert out.getvalue() == ""  # within the period: nothing
    bar.update(task, advance=3, description="mnist")
    assert out.getvalue().startswith("mnist: 4/4 (100%), 0:00:00 elapsed")  # completion is always shown
    out2 = io.StringIO()
    every = PlainProgress(every=0, file=out2)
    t = every.add_task("meta-train", total=10)
    for i in range(1, 4):
        every.update(t, completed=i, info=f"loss {1 / i:.2f}")
    lines = out2.getvalue().splitlines()
    assert len(lines) == 3 and lines[-1].startswith("meta-train: 3/10 (30%)") and lines[-1].endswith("| loss 0.33")
    assert "left" in lines[-1]
    silent = PlainProgress(every=3600, file=out2)
    s = silent.add_task("x", total=5)
    silent.update(s, advance=2)
    silent.stop()  # a run stopped early prints where it got to
    assert out2.getvalue().splitlines()[-1].startswith("x: 2/5 (40%)")


def test_progress_bar_is_plain_off_a_terminal_and_live_on_one(monkeypatch):
    from rich.progress import Progress

    import vsml.progress

    assert not vsml.progress.is_terminal()  # pytest captures stdout
    assert isinstance(progress_bar(), PlainProgress)
    monkeypatch.setattr(vsml.progress, "is_terminal", lambda: True)
    assert isinstance(progress_bar(), Progress)


def test_run_logger_prints_plain_lines_when_piped(tmp_path, monkeypatch, capsys):
    from vsml.runlog import RunLogger

    monkeypatch.setenv("VSML_PROGRESS_EVERY", "0")
    log = RunLogger(
        tmp_path,
        "meta-train",
        ("iteration", "loss"),
        progress=True,
        every=100,
        info=lambda rec: f"loss {rec['loss']:.2f}",
    )
    log.start(0, 3)
    for i in range(1, 4):
        log.iteration({"iteration": i, "loss": 1.0 / i})
    log.close()
    err = capsys.readouterr().err.splitlines()
    assert [ln.split(",")[0] for ln in err] == [
        "meta-train: 1/3 (33%)",
        "meta-train: 2/3 (67%)",
        "meta-train: 3/3 (100%)",
    ]


@pytest.mark.parametrize("backend, kept", [("agg", False), ("module://matplotlib_inline.backend_inline", True)])
def test_figures_stay_open_only_where_the_backend_shows_them(tmp_path, monkeypatch, backend, kept):
    import matplotlib

    from vsml.eval.plots import pyplot, save_figure

    plt = pyplot()
    fig = plt.figure()
    monkeypatch.setattr(matplotlib, "get_backend", lambda: backend)
    path = save_figure(fig, tmp_path / "f.png")
    assert path.stat().st_size > 0 and (fig.number in plt.get_fignums()) == kept
    plt.close(fig)


def test_the_command_writes_files_without_a_display(monkeypatch):
    from vsml.cli import main

    monkeypatch.delenv("MPLBACKEND", raising=False)
    with pytest.raises(SystemExit):
        main(["--version"])
    assert os.environ["MPLBACKEND"] == "Agg"
