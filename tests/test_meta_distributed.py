"""Sharding: 2 processes (jax.distributed on 127.0.0.1, gloo CPU collectives) give bit-identical
parameters and meta-losses to 1 process with 2 forced host devices (the same SPMD program).

(A 1-device run matches the meta-loss trajectory to ~1e-4 but not the parameters bit for bit: Adam
divides by sqrt(v), so gradient entries that are ~1e-9 of rounding noise become lr-sized steps.
Checked by hand, not here, to keep the suite fast.)"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
import yaml

from _meta_support import child_xla_flags, tiny_config

SRC = str(Path(__file__).parents[1] / "src")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "OMPI_", "PMI", "VSML_"))}
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), **extra)
    env.pop("XLA_FLAGS", None)
    env.update(child_xla_flags())
    env.update(extra)
    return env


def _params(run: Path):
    from vsml import artifacts

    return artifacts.load(run / "learner.npz").leaves("params")


@pytest.mark.skipif(not hasattr(jax.config, "jax_cpu_collectives_implementation"),
                    reason="this jax has no CPU collectives option (gloo); jax.distributed on CPU unavailable")
def test_two_processes_match_one(tmp_path):
    def write(name, **over):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(tiny_config(tmp_path / name, iterations=2, **over)))
        return str(path)

    cmd = [sys.executable, "-m", "vsml.meta.cli", "--no-progress"]
    port = _free_port()
    two = [subprocess.Popen(cmd + [write("two")], env=_env(VSML_COORDINATOR=f"127.0.0.1:{port}", VSML_NUM_PROCESSES="2",
                                                          VSML_PROCESS_ID=str(i)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    forced = subprocess.Popen(cmd + [write("forced")], env=_env(XLA_FLAGS=" ".join(["--xla_force_host_platform_device_count=2", *child_xla_flags().values()])),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outs = [p.communicate(timeout=240) for p in (*two, forced)]
    for p, (_, err) in zip((*two, forced), outs):
        if p.returncode != 0 and "initialize failed" in err:
            pytest.skip(f"jax.distributed on CPU unavailable here: {err.strip().splitlines()[-1]}")
        assert p.returncode == 0, err[-3000:]
    for a, b in zip(_params(tmp_path / "two"), _params(tmp_path / "forced")):
        np.testing.assert_array_equal(a, b)
    losses = lambda run: np.loadtxt(tmp_path / run / "metrics.csv", delimiter=",", skiprows=1, usecols=2)  # noqa: E731
    np.testing.assert_array_equal(losses("two"), losses("forced"))
