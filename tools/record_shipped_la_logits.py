"""Record the logits of every shipped LA on a fixed episode (tests/fixtures/shipped_la_logits.npz).

The fixture was written at commit 234ff3b, before the VSML semantics got options (the authors'
semantics became the defaults, the older ones stayed as named options). ``tests/test_pretrained.py``
checks that loading each shipped LA still reproduces these logits bit for bit, i.e. that a stored
LA keeps the semantics it was made with. Rerunning the script with a later version must write the
same numbers (that is what the test asserts), so there is normally no reason to rerun it.

    PYTHONPATH=src python tools/record_shipped_la_logits.py [tests/fixtures/shipped_la_logits.npz]

Episode: 30 steps, batch 2, 10 classes, inputs N(0, 1) of shape 8×8 (14×14 for an LA whose
sidecar names an ``input_size``), labels uniform; fixed seeds; state key PRNGKey(0).
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import numpy as np

from vsml import pretrained
from vsml.learners.base import run_episode
from vsml.learners.vsml import VSML

STEPS, BATCH, CLASSES = 30, 2, 10


def episode_for(name: str):
    size = pretrained.info(name)["meta"].get("input_size") or [8, 8]
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((STEPS, BATCH, *size)).astype(np.float32)
    ys = rng.integers(0, CLASSES, (STEPS, BATCH)).astype(np.int32)
    return xs, ys


def logits_of(name: str, xs, ys) -> np.ndarray:
    config, params = pretrained.load(name)
    res = run_episode(VSML(config), params, jax.random.PRNGKey(0), xs, ys, CLASSES)
    return np.asarray(res.logits)


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
    main(*sys.argv[1:])
