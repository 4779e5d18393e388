"""Sharding: 2 processes (jax.distributed on 127.0.0.1, gloo CPU collectives) give bit-identical
parameters, meta-losses and persistent inner state to 1 process with 2 forced host devices (the
same SPMD program), for every registered meta-optimizer, across SIGTERM of both processes and
kill -9 followed by ``--resume``. Checkpoints of multi-process runs hold every process's lifetimes.

(A 1-device run matches the meta-loss trajectory to ~1e-4 but not the parameters bit for bit: Adam
divides by sqrt(v), so gradient entries that are ~1e-9 of rounding noise become lr-sized steps.
Checked by hand, not here, to keep the suite fast.)"""

import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
import yaml
from _meta_support import child_xla_flags, tiny_config
from test_faults import _env, _free_port

# the normal CLI with every meta-step slowed by 0.25 s, so that signals land mid-run
SLOW_CLI = (
    "import sys, time; from vsml.meta import trainer; step = trainer.MetaTrainer.step; "
    "trainer.MetaTrainer.step = lambda self, *a: (time.sleep(0.25), step(self, *a))[1]; "
    "from vsml.meta.cli import main; sys.exit(main())"
)
LIFE = {"truncation": 4, "min_length": 8, "max_length": 24}
ESTIMATORS = {
    "gradient": {},
    "es": {"es": {"population": 4, "sigma": 0.05, "lr": 0.025}},
    "pes": {"pes": {"population": 4, "sigma": 0.05, "lr": 0.01, "chunk": None, "lifetime": LIFE}},
    "tbptt": {"tbptt": {"particles": 2, "lr": 0.01, "lifetime": LIFE}},
}
#: estimators with persistent inner state (lifetimes sharded over processes): they also go through
#: kill -9. For gradient and ES the checkpoint is parameters and optimizer state only, the state
#: tests/test_faults.py kills with -9 at random points (one process) and after a checkpoint (two).
PERSISTENT = ("pes", "tbptt")
needs_gloo = pytest.mark.skipif(
    not hasattr(jax.config, "jax_cpu_collectives_implementation"),
    reason="this jax has no CPU collectives option (gloo); jax.distributed on CPU unavailable",
)


def _config(tmp_path, name, method) -> str:
    over = {
        "method": method,
        **ESTIMATORS[method],
        "iterations": 6,
        "checkpoint": {"every": 2, "keep": 5},
        "distributed": {"startup_timeout": 60, "peer_timeout": 10},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tmp_path / name, **over)))
    return str(path)


def _two(config: str, *extra, slow=True):
    port = _free_port()
    head = [sys.executable, "-c", SLOW_CLI] if slow else [sys.executable, "-m", "vsml.meta.cli"]
    return [
        subprocess.Popen(
            head + [config, "--no-progress", *extra],
            env=_env(VSML_COORDINATOR=f"127.0.0.1:{port}", VSML_NUM_PROCESSES="2", VSML_PROCESS_ID=str(i)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]


def _forced(config: str):
    flags = " ".join(["--xla_force_host_platform_device_count=2", *child_xla_flags().values()])
    return subprocess.Popen(
        [sys.executable, "-m", "vsml.meta.cli", config, "--no-progress"],
        env=_env(XLA_FLAGS=flags),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(procs, timeout=240):
    out = []
    for p in procs:
        try:
            _, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("a process hung")
        if p.returncode != 0 and "initialize failed" in err:
            pytest.skip(f"jax.distributed on CPU unavailable here: {err.strip().splitlines()[-1]}")
        out.append((p.returncode, err))
    return out


def _rows(run: Path) -> int:
    try:
        return len((run / "metrics.csv").read_text().splitlines()) - 1
    except OSError:
        return 0


def _ckpt(run: Path, it: int) -> Path:
    return run / "checkpoints" / f"ckpt_{it:08d}.npz"


def _wait(procs, done, timeout=180):
    t0 = time.time()
    while not done():
        for p in procs:
            assert p.poll() is None, f"a process ended early (rc {p.returncode}): {p.stderr.read()[-2000:]}"
        assert time.time() - t0 < timeout, "no progress"
        time.sleep(0.02)


def _losses(run: Path) -> np.ndarray:
    rows = np.loadtxt(run / "metrics.csv", delimiter=",", skiprows=1, usecols=(0, 2), ndmin=2)
    return rows[np.argsort(rows[:, 0], kind="stable")]


@needs_gloo
@pytest.mark.parametrize("method", list(ESTIMATORS))
def test_two_processes_match_one_across_sigterm_and_kill9(tmp_path, method):
    """2 processes == 1 process x 2 forced devices, bit for bit (parameters, every meta-loss, the
    persistent inner state of the final checkpoint), with the 2-process run stopped by SIGTERM of
    both mid-run, resumed (PES, TBPTT: killed with kill -9 after its next checkpoint and resumed
    again) to the end.
    TBPTT also: a checkpoint holding process 0's lifetimes only (what vsml wrote before) is refused
    on both processes with exit 2, saying what differs and the way on."""
    from vsml import artifacts

    forced = _forced(_config(tmp_path, "forced", method))
    config, run = _config(tmp_path, "two", method), tmp_path / "two"
    procs = _two(config)  # 1) SIGTERM both mid-run: a checkpoint at the step they stop at
    _wait(procs, lambda: _rows(run) >= 2)
    for p in procs:
        p.send_signal(signal.SIGTERM)
    (rc0, err0), (rc1, err1) = _finish(procs)
    assert rc0 == rc1 == 143, err0[-2000:] + err1[-2000:]
    stopped = _rows(run)
    assert 2 <= stopped < 6 and _ckpt(run, stopped).exists() and f"after iteration {stopped}" in err0
    if method in PERSISTENT:  # 2) kill -9 one process after the next checkpoint, then the other
        procs = _two(config, "--resume")
        nxt = stopped + 2 - stopped % 2
        _wait(procs, lambda: _ckpt(run, nxt).exists() and _rows(run) > nxt)
        procs[1].kill()
        procs[0].kill()
        _finish(procs)
    (rc0, err0), (rc1, err1) = _finish(_two(config, "--resume", slow=False))  # 3) to the end
    assert rc0 == rc1 == 0, err0[-2000:] + err1[-2000:]
    ((rc, err),) = _finish([forced])
    assert rc == 0, err[-2000:]

    ref = tmp_path / "forced"
    for a, b in zip(
        artifacts.load(ref / "learner.npz").leaves("params"), artifacts.load(run / "learner.npz").leaves("params")
    ):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(_losses(run), _losses(ref))  # rows past a checkpoint are redone, not kept twice
    one, two = artifacts.load(_ckpt(ref, 6)), artifacts.load(_ckpt(run, 6))
    assert two.meta["processes"] == 2 and one.meta["processes"] == 1
    for group in ("params", "opt_state", "inner"):
        assert [x.shape for x in one.leaves(group)] == [x.shape for x in two.leaves(group)], group
        for a, b in zip(one.leaves(group), two.leaves(group)):
            np.testing.assert_array_equal(a, b)
    if method in ("pes", "tbptt"):  # the inner state of every process: as many lifetimes as the config asks for
        lifetimes = ESTIMATORS[method][method].get("particles") or ESTIMATORS[method][method]["population"] // 2
        assert two.leaves("inner")[0].shape[0] == lifetimes
        assert artifacts.load(_ckpt(run, stopped)).leaves("inner")[0].shape[0] == lifetimes
    if method == "tbptt":  # a checkpoint holding process 0's lifetimes only (as vsml wrote before): refused on both
        _halve_inner(_ckpt(run, 6))
        cfg = yaml.safe_load(Path(config).read_text())
        Path(config).write_text(yaml.safe_dump({**cfg, "iterations": 8}))
        for rc, err in _finish(_two(config, "--resume", slow=False), timeout=180):
            assert rc == 2 and "does not fit this run" in err and f"vsml convert --slim {_ckpt(run, 6)}" in err, err[
                -2000:
            ]
            assert (
                "1 lifetime(s) per family where this run's tbptt settings give 2" in err
                and "process 0's lifetimes" in err
            )
            assert "different learner config" not in err and "Terminating process" not in err and "Traceback" not in err


def _halve_inner(path: Path) -> None:
    """Rewrite checkpoint ``path`` the way an earlier vsml wrote a 2-process one: process 0's half
    of every lifetime array only."""
    from vsml import artifacts

    art = artifacts.load(path)
    groups = {g: [a[: a.shape[0] // 2] if g == "inner" else a for a in art.leaves(g)] for g in art.groups}
    artifacts.save(path, "checkpoint", groups, {**art.meta, "processes": 2, "devices": 2})


# --------------------------------------------------------------------------------------------
# The fused kernel under sharding (tests/_sharded_kernel.py is the child)

SHARDED_CHILD = str(Path(__file__).parent / "_sharded_kernel.py")


@pytest.fixture(scope="module")
def one_device_reference():
    """The child's two programs on one device: fused (unsharded) and XLA."""
    import _sharded_kernel as child

    from vsml.meta.distributed import make_mesh

    mesh = make_mesh()
    assert mesh.devices.size == 1
    return {k: child.run(k, mesh) for k in ("fused", "xla")}


def _check_sharded(out: str, processes: int, ref) -> None:
    import json

    for i in range(processes):
        info = json.loads(Path(f"{out}.{i}.json").read_text())
        assert (info["devices"], info["processes"], info["auto"]) == (2, processes, "fused"), info
        # every fused call of the partitioned programs runs on this device's share of the mapped axis:
        # 2 of the 4 episodes; 1 member at a time (chunk 1) of the 2 each device holds
        calls = {name: sorted((t, tuple(s)) for t, s in p["calls"]) for name, p in info["programs"].items()}
        assert calls["episodes"] == [("vsml_dense_bwd", (2, 4, 16)), ("vsml_dense_fwd", (2, 1, 192, 4))], calls
        assert calls["members"] == [
            ("vsml_dense_bwd_cellnorm", (1, 1, 4, 16)),
            ("vsml_dense_fwd_cellnorm", (1, 1, 1, 192, 4)),
        ], calls
        assert not any(p["all_gather"] for p in info["programs"].values())
        # while one device runs them whole (no sharding): 4 episodes, 2 member groups
        one = {name: sorted(c[0] for c in p["calls"]) for name, p in ref["fused"][1].items()}
        assert one == {
            "episodes": ["vsml_dense_bwd", "vsml_dense_fwd"],
            "members": ["vsml_dense_bwd_cellnorm", "vsml_dense_fwd_cellnorm"],
        }
        got = dict(np.load(f"{out}.{i}.npz"))
        for kind in ("fused", "xla"):  # values and gradients: the one-device fused and XLA paths
            want = ref[kind][0]
            assert sorted(got) == sorted(want)
            for k in (
                want
            ):  # relative to the program's largest entry: shift-invariant parameters' gradients are rounding noise
                scale = max(float(np.abs(v).max()) for name, v in want.items() if name.split("/")[0] == k.split("/")[0])
                # 5e-6: the summation order differs between a sharded and a one-device program, and
                # by host (an AVX-512 Xeon reaches 2.4e-6 where a Zen 4 EPYC stays under 2e-6)
                np.testing.assert_allclose(got[k] / scale, want[k] / scale, atol=5e-6, err_msg=f"{kind} {k}")


@pytest.mark.skipif(not __import__("vsml.kernels").kernels.available(), reason="fused kernel not built")
def test_fused_kernel_runs_per_device_on_two_forced_devices(tmp_path, one_device_reference):
    """1 process x 2 forced host devices: the meta-objective's value and gradient (episodes mapped as
    the gradient / TBPTT steps map them; members through chunked_map as ES / PES do, cell-norm
    kernel) on the fused kernel equal the one-device fused and XLA results to float32 tolerance,
    and the compiled programs call the kernel on each device's share only (no all-gather)."""
    flags = " ".join(["--xla_force_host_platform_device_count=2", *child_xla_flags().values()])
    proc = subprocess.Popen(
        [sys.executable, SHARDED_CHILD, str(tmp_path / "forced")],
        env=_env(XLA_FLAGS=flags),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ref = one_device_reference
    ((rc, err),) = _finish([proc], timeout=120)
    assert rc == 0, err[-3000:]
    _check_sharded(str(tmp_path / "forced"), 1, ref)


@needs_gloo
@pytest.mark.skipif(not __import__("vsml.kernels").kernels.available(), reason="fused kernel not built")
def test_fused_kernel_runs_per_device_in_two_processes(tmp_path, one_device_reference):
    """2 processes x 1 device each (jax.distributed, gloo): the same as on 2 forced devices, and both
    processes end with the same results."""
    port = _free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, SHARDED_CHILD, str(tmp_path / "two")],
            env=_env(VSML_COORDINATOR=f"127.0.0.1:{port}", VSML_NUM_PROCESSES="2", VSML_PROCESS_ID=str(i)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    ref = one_device_reference
    for rc, err in _finish(procs, timeout=120):
        assert rc == 0, err[-3000:]
    _check_sharded(str(tmp_path / "two"), 2, ref)
    a, b = np.load(tmp_path / "two.0.npz"), np.load(tmp_path / "two.1.npz")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
