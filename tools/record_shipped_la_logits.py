"""Record the logits of every shipped LA on a fixed episode (tests/fixtures/shipped_la_logits.npz).

The fixture was written at commit 234ff3b, before the VSML semantics got options (the authors'
semantics became the defaults, the older ones stayed as named options). ``tests/test_pretrained.py``
checks that loading each shipped LA still reproduces these logits, i.e. that a stored LA keeps the
semantics it was made with: to float32 rounding on any host, and bit for bit on a host whose SIMD
features (``vsml.kernels.host_isa()``) match a recording. XLA picks vector widths from those
features, so a host with other ones (AVX2 only against AVX-512, say) rounds differently.

    PYTHONPATH=src python tools/record_shipped_la_logits.py --add-host [tests/fixtures/shipped_la_logits.npz]

adds ``<name>.logits@<host_isa>`` recordings for this host to the fixture, after checking that they
agree with the original ``<name>.logits`` to float32 rounding (it refuses otherwise: then the
semantics changed, which is what the test exists to catch). A shipped LA the fixture does not hold
yet (a newly shipped one) gets its first recording, made now. Without ``--add-host`` it rewrites the
fixture from scratch, which there is normally no reason to do.

Episode: 30 steps, batch 2, 10 classes, inputs N(0, 1) of shape 8×8 (14×14 for an LA whose
sidecar names an ``input_size``), labels uniform; fixed seeds; state key PRNGKey(0).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import jax
import numpy as np

from vsml import kernels, pretrained
from vsml.learners.base import run_episode
from vsml.learners.vsml import VSML

STEPS, BATCH, CLASSES = 30, 2, 10
ACROSS_HOSTS_ATOL = 1e-4  # relative to the largest logit: float32 rounding of 30 steps, other SIMD widths


def episode_for(name: str):
    size = pretrained.info(name)["meta"].get("input_size") or [8, 8]
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((STEPS, BATCH, *size)).astype(np.float32)
    ys = rng.integers(0, CLASSES, (STEPS, BATCH)).astype(np.int32)
    return xs, ys


def logits_of(name: str, xs, ys) -> np.ndarray:
    """On the XLA kernels, jitted at XLA's default optimisation level (as tests/test_pretrained.py does)."""
    config, params = pretrained.load(name)
    learner = VSML(dataclasses.replace(config, kernel="xla"))
    fn = jax.jit(lambda p: run_episode(learner, p, jax.random.PRNGKey(0), xs, ys, CLASSES).logits)
    compiled = fn.lower(params).compile(
        {"xla_backend_optimization_level": 2, "xla_llvm_disable_expensive_passes": False}
    )
    return np.asarray(compiled(params))


def add_host(path: str) -> None:
    with np.load(path) as z:
        arrays = dict(z)
    for name in pretrained.names():
        if f"{name}.logits" not in arrays:  # newly shipped: its first recording
            xs, ys = episode_for(name)
            arrays[f"{name}.xs"], arrays[f"{name}.ys"] = xs, ys
            arrays[f"{name}.logits"] = arrays[f"{name}.logits@{kernels.host_isa()}"] = logits_of(name, xs, ys)
            print(name, "first recording")
            continue
        want = arrays[f"{name}.logits"]
        got = logits_of(name, arrays[f"{name}.xs"], arrays[f"{name}.ys"])
        err = float(np.abs(got - want).max() / np.abs(want).max())
        if err > ACROSS_HOSTS_ATOL:
            raise SystemExit(f"{name}: logits differ from the recording by {err:.2e} of their scale: not rounding")
        arrays[f"{name}.logits@{kernels.host_isa()}"] = got
        print(name, kernels.host_isa(), f"max difference {err:.2e} of scale")
    np.savez_compressed(path, **arrays)


def main(out: str = "tests/fixtures/shipped_la_logits.npz") -> None:
    arrays = {}
    for name in pretrained.names():
        xs, ys = episode_for(name)
        arrays[f"{name}.xs"], arrays[f"{name}.ys"] = xs, ys
        arrays[f"{name}.logits"] = logits_of(name, xs, ys)
        print(name, arrays[f"{name}.logits"].shape, float(np.abs(arrays[f"{name}.logits"]).max()))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--add-host"]:
        add_host(*(args[1:] or ["tests/fixtures/shipped_la_logits.npz"]))
    else:
        main(*args)
