"""vsml.runs: run-folder locks, output folders that never mix, graceful stops (in-process, fast)."""

import errno
import json
import os
import signal
import subprocess
import sys

import pytest

from vsml import runs
from vsml.checkpoint import CheckpointError
from vsml.config import ConfigError


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_second_writer_is_refused_naming_the_holder(tmp_path):
    first = runs.RunLock(tmp_path / "run", "vsml meta-train a.yaml").acquire()
    with pytest.raises(runs.RunLockError) as e:
        runs.RunLock(tmp_path / "run", "vsml meta-train b.yaml").acquire()
    msg = str(e.value)
    assert f"PID {os.getpid()}" in msg and "started" in msg and "host" in msg and "vsml meta-train a.yaml" in msg
    first.release()
    assert (tmp_path / "run" / runs.LOCK_NAME).read_text() == ""  # emptied, not deleted
    with runs.RunLock(tmp_path / "run").acquire():  # free again
        pass


def test_lock_of_a_dead_process_is_taken_over_with_a_message(tmp_path):
    (tmp_path / runs.LOCK_NAME).write_text(json.dumps({"host": "somewhere", "pid": _dead_pid(), "started": "earlier"}))
    notes = []
    lock = runs.RunLock(tmp_path, "new").acquire(log=notes.append)
    assert notes and "taking over" in notes[0] and "somewhere" in notes[0]
    assert json.loads((tmp_path / runs.LOCK_NAME).read_text())["pid"] == os.getpid()
    lock.release()


def test_lock_without_flock_decides_by_the_record(tmp_path, monkeypatch):
    import fcntl
    import socket

    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    me = socket.gethostname()
    (tmp_path / runs.LOCK_NAME).write_text(
        json.dumps({"host": me, "pid": os.getpid(), "proc_start": runs._proc_start(os.getpid())})
    )
    with pytest.raises(runs.RunLockError, match=f"PID {os.getpid()}"):  # a live holder on this host
        runs.RunLock(tmp_path).acquire()
    (tmp_path / runs.LOCK_NAME).write_text(json.dumps({"host": "other-node", "pid": 1}))
    with pytest.raises(runs.RunLockError, match="other-node"):  # another host: cannot tell, refuse
        runs.RunLock(tmp_path).acquire()
    (tmp_path / runs.LOCK_NAME).write_text(json.dumps({"host": me, "pid": _dead_pid()}))
    notes = []
    runs.RunLock(tmp_path).acquire(log=notes.append).release()  # dead on this host: taken over
    assert "taking over" in notes[0]


def test_prepare_output_refuses_used_folders_and_overwrite_removes_only_owned_files(tmp_path):
    owned = ("curves.csv", "table.md", "curves.png")
    out = runs.prepare_output(tmp_path / "ev", default="unused", owned=owned)
    (out / "curves.csv").write_text("old")
    (out / "curves.png").write_text("old plot")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(runs.OutputError, match="not empty.*--overwrite"):
        runs.prepare_output(out, default="unused", owned=owned)
    runs.prepare_output(out, default="unused", owned=owned, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    # no folder given: a fresh numbered sibling of the default
    notes = []
    fresh = runs.prepare_output(None, default=str(out), owned=owned, log=notes.append)
    assert fresh.name == "ev-2" and "earlier run" in notes[0]


def test_unwritable_folders_fail_before_anything_runs(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(runs.OutputError, match="cannot write to output folder .*nothing was computed"):
        runs.prepare_output(blocker / "out", default="x", owned=())
    with pytest.raises(runs.OutputError):
        runs.RunLock(blocker / "run").acquire()
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            with pytest.raises(runs.OutputError, match="ermission denied"):
                runs.check_writable(ro)
        finally:
            ro.chmod(0o700)
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(runs.OutputError, match="already exists"):
        runs.check_output_file(tmp_path / "x.json")


def test_graceful_stop_sets_a_flag_then_resets_the_handlers():
    notes = []
    before = signal.getsignal(signal.SIGINT)
    with runs.GracefulStop(notes.append, "the test") as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.signal == signal.SIGTERM and "SIGTERM received" in notes[0]
        # a second signal would now end the process at once
        assert signal.getsignal(signal.SIGINT) == signal.SIG_DFL == signal.getsignal(signal.SIGTERM)
    assert signal.getsignal(signal.SIGINT) is before
    err = runs.StopRequested(signal.SIGINT, 7, None)
    assert err.exit_code == 130 and "SIGINT after iteration 7" in str(err)
    assert runs.StopRequested(signal.SIGTERM, 1, None).exit_code == 143


def test_stale_temp_files_are_removed(tmp_path):
    (tmp_path / ".ckpt_00000003.npz.abc.tmp").write_bytes(b"half")
    (tmp_path / "ckpt_00000003.npz").write_bytes(b"kept")
    assert [p.name for p in runs.remove_stale_temps(tmp_path)] == [".ckpt_00000003.npz.abc.tmp"]
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt_00000003.npz"]


def test_fresh_meta_training_and_cloning_refuse_used_or_locked_folders(tmp_path):
    from _meta_support import tiny_config

    from vsml.cloning.clone import CloneConfig, run_clone
    from vsml.meta.trainer import MetaTrainer, meta_config_from_dict

    (tmp_path / "ev").mkdir()
    (tmp_path / "ev" / "table.md").write_text("an evaluation")
    trainer = MetaTrainer(meta_config_from_dict(tiny_config(tmp_path / "ev", iterations=2)), log=lambda m: None)
    with pytest.raises(runs.OutputError, match="holds other files \\(table.md\\).*mix.*--overwrite"):
        trainer.run()
    with pytest.raises(ConfigError, match="pass one"):
        trainer.run(resume=True, overwrite=True)
    trainer.run(overwrite=True)  # --overwrite: the other files are kept
    with pytest.raises(CheckpointError, match="already holds checkpoints.*--resume.*--overwrite"):
        trainer.run()
    (tmp_path / "ev" / "checkpoints" / "ckpt_00000001.npz").write_bytes(b"stale")  # removed by --overwrite too
    trainer.run(overwrite=True)  # removes the earlier run's files, keeps the others
    assert sorted(p.name for p in (tmp_path / "ev").iterdir() if not p.name.startswith(".")) == [
        "checkpoints",
        "config.yaml",
        "learner.json",
        "learner.npz",
        "metrics.csv",
        "table.md",
    ]
    assert [p.name for p in (tmp_path / "ev" / "checkpoints").iterdir()] == ["ckpt_00000002.npz"]
    with runs.RunLock(tmp_path / "clone").acquire():
        with pytest.raises(runs.RunLockError, match=f"PID {os.getpid()}"):
            run_clone(CloneConfig(name="tiny", batch=4), tmp_path / "clone", progress=False, log=lambda m: None)
