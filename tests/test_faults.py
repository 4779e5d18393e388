"""Fault suite: kill -9 and signals at random points, two writers, processes that disagree, lost and
missing peers, unwritable and full locations, truncated and bit-flipped checkpoints and data.
Each test asserts that nothing earlier is lost and that the outcome is a clear message.
docs/reliability.md lists every fault with its test.

Subprocesses only where a real process is the point (kill -9, signals, multi-process); they run
the normal CLI with each meta-step slowed by 30 ms (a wrapper in this file, not a hook in the
code) so that signals land mid-run rather than after it."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
import pytest
import yaml
from _meta_support import child_xla_flags, tiny_config

from vsml import artifacts, runs
from vsml.checkpoint import CheckpointError
from vsml.meta.trainer import MetaTrainer, meta_config_from_dict

SRC = str(Path(__file__).parents[1] / "src")
SLOW_CLI = (
    "import sys, time; from vsml.meta import trainer; step = trainer.MetaTrainer.step; "
    "trainer.MetaTrainer.step = lambda self, *a: (time.sleep(0.03), step(self, *a))[1]; "
    "from vsml.meta.cli import main; sys.exit(main())"
)


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "OMPI_", "PMI", "VSML_"))}
    env.pop("XLA_FLAGS", None)
    env.update(child_xla_flags())
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), **extra)
    return env


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def _rows(run: Path) -> list[int]:
    try:
        lines = (run / "metrics.csv").read_text().splitlines()[1:]
    except OSError:
        return []
    return [int(ln.split(",", 1)[0]) for ln in lines if ln.split(",", 1)[0].isdigit()]


def _ckpts(run: Path) -> list[str]:
    folder = run / "checkpoints"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def _wait_rows(proc, run: Path, n: int, timeout: float = 150):
    t0 = time.time()
    while len(_rows(run)) < n:
        assert proc.poll() is None, (
            f"the run ended (rc {proc.returncode}) before {n} rows: {proc.stderr.read()[-2000:]}"
        )
        assert time.time() - t0 < timeout, "no progress"
        time.sleep(0.02)


# --------------------------------------------------------------------------------------------
# One process: kill -9 and signals at random points, a second writer, a stale lock


def test_kill9_and_signals_at_random_points_lose_nothing(tmp_path):
    """Four interruptions of one run at random points (seeds 0-3): SIGTERM, kill -9, SIGINT, kill -9;
    a second writer while it runs; the final in-process resume takes over the dead writer's lock.
    The result is bit-identical to an uninterrupted run and metrics.csv holds every iteration once."""
    over = {"iterations": 60, "checkpoint": {"every": 4, "keep": 2}}
    straight = MetaTrainer(meta_config_from_dict(tiny_config(tmp_path / "a", **over)), log=lambda m: None).run()
    run = tmp_path / "b"
    cfg_path = tmp_path / "b.yaml"
    cfg_path.write_text(yaml.safe_dump(tiny_config(run, **over)))
    cfg_b = meta_config_from_dict(yaml.safe_load(cfg_path.read_text()))
    for seed, sig in enumerate((signal.SIGTERM, signal.SIGKILL, signal.SIGINT, signal.SIGKILL)):
        rng = np.random.default_rng(seed)
        resume = ["--resume"] if _ckpts(run) else []
        proc = subprocess.Popen(
            [sys.executable, "-c", SLOW_CLI, str(cfg_path), "--no-progress", *resume],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        _wait_rows(proc, run, len(_rows(run)) + int(rng.integers(1, 4)))
        if seed == 0:  # a second writer on the same folder fails at once, naming the holder
            with pytest.raises(runs.RunLockError, match=f"PID {proc.pid}, started .*vsml meta-train"):
                MetaTrainer(cfg_b, log=lambda m: None).run(resume=True)
        time.sleep(float(rng.uniform(0, 0.1)))
        before = set(_ckpts(run))
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
        if sig == signal.SIGKILL:
            assert proc.returncode == -signal.SIGKILL
        else:
            assert proc.returncode == 128 + sig, err[-2000:]
            stopped = _rows(run)[-1]
            assert f"stopped by {signal.Signals(sig).name} after iteration {stopped}" in err
            assert f"ckpt_{stopped:08d}.npz" in _ckpts(run) and "continue with: vsml meta-train" in err
            assert "--resume" in err.rsplit("continue with:", 1)[1]
        assert max(before, default="") <= max(_ckpts(run))  # the newest checkpoint never goes back
        for c in _ckpts(run):
            artifacts.load(run / "checkpoints" / c, kind="checkpoint")  # every checkpoint left is whole
    notes = []
    resumed = MetaTrainer(cfg_b, log=notes.append).run(resume=True)
    assert any("taking over the lock" in n for n in notes), notes
    for a, b in zip(_leaves(straight.params), _leaves(resumed.params)):
        np.testing.assert_array_equal(a, b)
    assert _rows(run) == list(range(1, 61))
    assert not list(run.glob("**/.*.tmp"))


# --------------------------------------------------------------------------------------------
# Full and unwritable locations


def _dev_full(match: str, monkeypatch, after: int = 0):
    """Atomic writes of files whose name contains ``match`` go to /dev/full (a real ENOSPC) from the
    ``after``-th one on."""
    real = tempfile.mkstemp
    seen = {"n": 0}

    def mkstemp(prefix="", suffix="", dir=None, **kw):
        if match in prefix:
            seen["n"] += 1
            if seen["n"] > after:
                return os.open("/dev/full", os.O_WRONLY), os.path.join(dir, f"{prefix}enospc{suffix}")
        return real(prefix=prefix, suffix=suffix, dir=dir, **kw)

    monkeypatch.setattr(artifacts.tempfile, "mkstemp", mkstemp)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full to simulate a full disk")
def test_disk_full_while_checkpointing_loses_nothing_and_says_how_to_continue(tmp_path, monkeypatch, capsys):
    from vsml.meta import cli

    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(tmp_path / "run", iterations=9, checkpoint={"every": 3, "keep": 3})))
    _dev_full("ckpt_", monkeypatch, after=1)  # the first checkpoint is written, the second hits a full disk
    assert cli.main([str(cfg), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "iteration 6" in err and "Nothing earlier is lost" in err
    assert "ckpt_00000003.npz" in err and f"continue with: vsml meta-train {cfg} --no-progress --resume" in err
    assert _ckpts(tmp_path / "run") == ["ckpt_00000003.npz"]
    artifacts.load(tmp_path / "run" / "checkpoints" / "ckpt_00000003.npz")
    monkeypatch.undo()
    assert cli.main([str(cfg), "--no-progress", "--resume"]) == 0  # space freed: continues
    assert _rows(tmp_path / "run") == list(range(1, 10))


def test_unwritable_out_folder_fails_before_any_compute(tmp_path, monkeypatch, capsys):
    from vsml.meta import cli

    blocker = tmp_path / "file"
    blocker.write_text("x")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(blocker / "run")))
    monkeypatch.setattr(MetaTrainer, "init_state", lambda *a: pytest.fail("computed before checking the out folder"))
    assert cli.main([str(cfg)]) == 2
    assert "cannot write to output folder" in capsys.readouterr().err


def test_evaluate_outputs_never_mix_or_die_late(tmp_path, monkeypatch, capsys):
    import importlib

    from vsml.eval import cli as ev_cli

    ev_mod = importlib.import_module("vsml.eval.evaluate")

    def run(*argv):
        parser = __import__("argparse").ArgumentParser()
        ev_cli.register(parser.add_subparsers(dest="command"))
        args = parser.parse_args(
            ["evaluate", "-l", "sgd", "-d", "digits", "-n", "2", "-T", "10", "--no-progress", *argv]
        )
        return args.func(args)

    calls = []
    real = ev_mod.evaluate
    monkeypatch.setattr(ev_mod, "evaluate", lambda *a, **k: calls.append(1) or real(*a, **k))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert run("-o", str(blocker / "out")) == 2 and not calls  # unwritable: refused before computing
    assert "cannot write to output folder" in capsys.readouterr().err
    out = tmp_path / "ev"
    assert run("-o", str(out)) == 0 and len(calls) == 1
    (out / "results.json").write_text("{}")  # an earlier run's file
    (out / "mine.txt").write_text("keep")
    assert run("-o", str(out), "--no-plot") == 2 and len(calls) == 1  # used folder: refused before computing
    assert "not empty" in capsys.readouterr().err
    assert run("-o", str(out), "--no-plot", "--overwrite") == 0
    assert sorted(p.name for p in out.iterdir()) == ["curves.csv", "mine.txt", "table.md"]  # nothing stale
    table = (out / "table.md").read_bytes()
    _dev_full("table.md", monkeypatch)  # disk full while writing a report: no partial file
    assert run("-o", str(out), "--no-plot", "--overwrite") == 2
    assert "No space left on device" in capsys.readouterr().err
    assert not (out / "table.md").exists() or (out / "table.md").read_bytes() == table
    assert not list(out.glob(".*.tmp"))


# --------------------------------------------------------------------------------------------
# Corrupt checkpoints and data


def test_corrupt_checkpoints_name_the_newest_good_one(tmp_path):
    cfg = meta_config_from_dict(tiny_config(tmp_path / "run", iterations=6, checkpoint={"every": 2, "keep": 3}))
    first = MetaTrainer(cfg, log=lambda m: None).run()
    folder = tmp_path / "run" / "checkpoints"
    newest, middle = folder / "ckpt_00000006.npz", folder / "ckpt_00000004.npz"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # truncated
    data = bytearray(middle.read_bytes())
    npy = data.index(b"\x93NUMPY")  # one flipped bit in the first stored array's values (a bit in a
    # zip local header, which the reader takes from the central directory, would corrupt nothing)
    data[npy + 10 + int.from_bytes(data[npy + 8 : npy + 10], "little") + 1] ^= 0x10
    middle.write_bytes(bytes(data))
    with pytest.raises(CheckpointError) as e:
        MetaTrainer(cfg, log=lambda m: None, command="vsml meta-train c.yaml").run(resume=True)
    msg = str(e.value)
    assert (
        "ckpt_00000006.npz is corrupt" in msg
        and "newest good checkpoint is" in msg
        and "ckpt_00000002.npz (iteration 2)" in msg
    )
    assert f"mv {newest} {newest}.corrupt && mv {middle} {middle}.corrupt && vsml meta-train c.yaml --resume" in msg
    for p in (newest, middle):  # follow the hint
        p.rename(p.with_name(p.name + ".corrupt"))
    again = MetaTrainer(cfg, log=lambda m: None).run(resume=True)
    for a, b in zip(_leaves(first.params), _leaves(again.params)):
        np.testing.assert_array_equal(a, b)


def test_data_changed_in_place_with_its_mtime_kept_is_caught(tmp_path, monkeypatch):
    from vsml.data.integrity import DataError, FileSpec, check_file
    from vsml.data.registry import load

    monkeypatch.setenv("VSML_CACHE_DIR", str(tmp_path / "cache"))
    f = tmp_path / "file.bin"
    f.write_bytes(b"canonical content")
    spec = FileSpec("file.bin", f.stat().st_size, hashlib.sha256(f.read_bytes()).hexdigest(), source="a test")
    check_file(spec, f)  # verified and cached
    st = f.stat()
    with open(f, "r+b") as h:  # one bit flipped in place; size and mtime restored
        h.seek(3)
        h.write(bytes([f.read_bytes()[3] ^ 1]))
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (f.stat().st_size, f.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    with pytest.raises(DataError, match="sha256 mismatch"):
        check_file(spec, f)
    f.write_bytes(b"canonical")  # truncated
    with pytest.raises(DataError, match="size mismatch"):
        check_file(spec, f)
    # a file of your own: its fingerprint catches the change, and the message offers real options
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 255, (40, 4, 4), dtype=np.uint8), np.arange(40) % 4
    np.savez("mine.npz", images=images, labels=labels)
    load("mine.npz", "train")
    st = os.stat("mine.npz")
    np.savez("mine.npz", images=255 - images, labels=labels)
    os.utime("mine.npz", ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(DataError, match=r"changed since vsml first read it[\s\S]*--no-verify"):
        load("mine.npz", "train")


# --------------------------------------------------------------------------------------------
# Two processes (jax.distributed on 127.0.0.1, gloo)

needs_gloo = pytest.mark.skipif(
    not hasattr(jax.config, "jax_cpu_collectives_implementation"),
    reason="this jax has no CPU collectives option (gloo)",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(tmp_path, name, per_process, *extra, ids=(0, 1), port=None, envs=({}, {})):
    port = port or _free_port()
    procs = []
    for i in ids:
        cfg = tiny_config(
            tmp_path / name, **{"distributed": {"startup_timeout": 8, "peer_timeout": 10}, **per_process[i]}
        )
        path = tmp_path / f"{name}_{i}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", SLOW_CLI, str(path), "--no-progress", *extra],
                env=_env(
                    VSML_COORDINATOR=f"127.0.0.1:{port}", VSML_NUM_PROCESSES="2", VSML_PROCESS_ID=str(i), **envs[i]
                ),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    return procs


def _finish(procs, timeout=120):
    out = []
    for p in procs:
        try:
            _, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            pytest.fail("a process hung")
        out.append((p.returncode, err))
    return out


@needs_gloo
def test_processes_that_disagree_or_never_start_fail_fast(tmp_path):
    from vsml import kernels

    t0 = time.time()
    # process 1 also on the other kernel path (they would run different SPMD programs)
    results = _finish(
        _launch(tmp_path, "dis", [{"seed": 0}, {"seed": 1, "iterations": 7}], envs=({}, {"VSML_KERNEL": "xla"}))
    )
    for rc, err in results:
        assert rc == 2, err[-2000:]
        assert "disagree" in err and "config.seed: process 0 has 0, process 1 has 1" in err
        assert "config.iterations: process 0 has 6, process 1 has 7" in err
        assert not kernels.available() or 'kernel: process 0 has "fused", process 1 has "xla"' in err, err[-2000:]
    assert not (tmp_path / "dis" / "checkpoints").exists()
    alone = {"distributed": {"startup_timeout": 4, "peer_timeout": 10}}  # nobody joins: no need to wait longer
    ((rc, err),) = _finish(_launch(tmp_path, "alone", [alone, alone], ids=(0,)))  # process 1 never starts
    assert rc == 75 and "not every process of this run joined within distributed.startup_timeout = 4 s" in err
    assert "Process 1 has not joined" in err and "Terminating process" not in err
    assert time.time() - t0 < 90


@needs_gloo
def test_sigterm_stops_every_process_at_one_step_and_a_lost_peer_ends_the_others(tmp_path):
    over = [{"iterations": 400, "checkpoint": {"every": 50, "keep": 2}}] * 2
    run = tmp_path / "mp"
    procs = _launch(tmp_path, "mp", over)
    _wait_rows(procs[0], run, 3)
    procs[1].send_signal(signal.SIGTERM)  # the scheduler signals one process: both stop at the same step
    (rc0, err0), (rc1, err1) = _finish(procs)
    assert rc0 == rc1 == 143, err0[-1500:] + err1[-1500:]
    stopped = _rows(run)[-1]
    assert f"stopped by SIGTERM after iteration {stopped}" in err0 and f"after iteration {stopped}" in err1
    assert f"ckpt_{stopped:08d}.npz" in _ckpts(run)
    hang = [{**o, "distributed": {"startup_timeout": 8, "peer_timeout": 5}} for o in over]
    procs = _launch(tmp_path, "mp", hang, "--resume")  # resume, then lose process 1 for good
    _wait_rows(procs[0], run, stopped + 3)
    procs[1].kill()
    t0 = time.time()
    (rc0, err0), _ = _finish(procs, timeout=60)
    assert rc0 == 75 and "process 0 lost contact with process 1" in err0 and "restart all 2 with --resume" in err0
    assert time.time() - t0 < 30 and "Terminating process" not in err0
    artifacts.load(run / "checkpoints" / f"ckpt_{stopped:08d}.npz")  # nothing earlier is lost
    procs = _launch(tmp_path, "mp", hang, "--resume")  # resume again, then process 1 hangs (SIGSTOP)
    while len(_rows(run)) > stopped:  # the killed run's rows after the checkpoint are dropped first
        assert procs[0].poll() is None, procs[0].stderr.read()[-2000:]
        time.sleep(0.005)
    _wait_rows(procs[0], run, stopped + 2)
    procs[1].send_signal(signal.SIGSTOP)
    t0 = time.time()
    try:
        rc0, err0 = procs[0].wait(timeout=60), procs[0].stderr.read()
    finally:
        procs[1].kill()
        procs[1].communicate()
    assert rc0 == 75 and "lost contact with process 1: no sign of life for 5 s" in err0, err0[-2000:]
    assert time.time() - t0 < 20 and "Terminating process" not in err0


def test_campaign_continue_script_runs_a_budget_and_its_checkpoint_continues_here(tmp_path):
    """tools/campaign_continue.sh (the accelerator command of docs/results/campaign.md) at tiny
    size: a fresh folder seeded from a slim checkpoint, stopped by its time budget (`vsml meta-train
    --time-limit`: a graceful stop, exit 143, which the script reports as 0) with a checkpoint,
    which a CPU run then continues with --resume."""
    cfg = tiny_config(tmp_path / "seed_run", iterations=3, checkpoint={"every": 3, "keep": 2})
    MetaTrainer(meta_config_from_dict(cfg)).run()
    seed = tmp_path / "seed"
    seed.mkdir()
    from vsml.cli import main as vsml_main

    assert (
        vsml_main(
            [
                "convert",
                "--slim",
                str(tmp_path / "seed_run" / "checkpoints" / "ckpt_00000003.npz"),
                "-o",
                str(seed / "ckpt_00000003.npz"),
            ]
        )
        == 0
    )
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**cfg, "iterations": 400, "checkpoint": {"every": 50, "keep": 2}}))
    wrapper = tmp_path / "vsml"
    wrapper.write_text(
        f"#!/bin/sh\nexec {sys.executable} -c '{SLOW_CLI}' \"$@\"\n".replace(
            "meta.cli import main; sys.exit(main())", "cli import main; sys.exit(main())"
        )
    )
    wrapper.chmod(0o755)
    script = Path(__file__).parents[1] / "tools" / "campaign_continue.sh"
    out = tmp_path / "campaign"
    proc = subprocess.run(
        ["bash", str(script), str(path), str(out), "6"],
        capture_output=True,
        text=True,
        timeout=240,
        env=_env(VSML=str(wrapper), CAMPAIGN_SEED_DIR=str(seed)),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "time budget of 6 s used" in proc.stderr and "resumed from" in proc.stderr
    stopped = _rows(out)[-1]
    assert 3 < stopped < 400 and f"ckpt_{stopped:08d}.npz" in _ckpts(out)
    resumed = MetaTrainer(
        meta_config_from_dict(
            {**cfg, "out": str(out), "iterations": stopped + 1, "checkpoint": {"every": 50, "keep": 2}}
        )
    ).run(resume=True)
    assert [r["iteration"] for r in resumed.history] == [stopped + 1]
