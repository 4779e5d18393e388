"""Built-in data that needs no download: scikit-learn's 8x8 digits and two synthetic tasks.

All are generated from fixed seeds with NumPy's PCG64, so they are identical everywhere.

- ``digits``: 1,797 images ``[8, 8, 1]`` (pixel values 0..16, returned as float32 in [0, 1]),
  10 classes. A fixed permutation (seed 0) puts the first 1,347 in ``train`` and the last 450 in
  ``test`` (sklearn's default 75/25 proportion).
- ``random``: 20 Gaussian ``[28, 28, 1]`` images with random labels, each of the 10 classes
  twice in a random order (pure memorisation; every class present, so 10-way episodes work).
  ``train`` and ``test`` are two independent draws (seeds 1 and 2).
- ``sum``: ``[28, 28, 1]`` images ``m + z`` with ``m ~ U[-1, 1]`` per image and ``z`` standard normal
  truncated to [-2, 2]; label ``1[sum(x) >= 0]``. ``train`` 10,000 images (seed 3), ``test``
  2,000 (seed 4).
"""

from __future__ import annotations

import functools

import numpy as np

DIGITS_TRAIN = 1347
RANDOM_SIZE = 20
SUM_SIZES = {"train": 10_000, "test": 2_000}
_SEEDS = {("random", "train"): 1, ("random", "test"): 2, ("sum", "train"): 3, ("sum", "test"): 4}


@functools.lru_cache(maxsize=None)
def digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    """``[N, 8, 8, 1]`` float32 in [0, 1] and int64 labels."""
    raw, target = _digits_table()
    images = (raw.reshape(-1, 8, 8).astype(np.float32) / 16.0)[..., None]
    perm = np.random.default_rng(0).permutation(len(images))
    idx = perm[:DIGITS_TRAIN] if split == "train" else perm[DIGITS_TRAIN:]
    return images[idx], target[idx].astype(np.int64)


@functools.lru_cache(maxsize=None)
def _digits_table() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's ``datasets/data/digits.csv.gz`` (64 pixel columns, then the label), read
    directly: importing scikit-learn costs ~2 s per process, more than everything else a small run
    does before its first step. Falls back to ``sklearn.datasets.load_digits`` if the file moved."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("sklearn")  # locates the package without importing it
    roots = list(spec.submodule_search_locations or []) if spec else []
    for root in roots:
        path = Path(root) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            table = np.loadtxt(path, delimiter=",")
            return table[:, :-1], table[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.data, d.target


@functools.lru_cache(maxsize=None)
def random_task(split: str) -> tuple[np.ndarray, np.ndarray]:
    """20 standard-normal ``[28, 28, 1]`` float32 images; labels: each of 0..9 twice, randomly placed."""
    rng = np.random.default_rng(_SEEDS[("random", split)])
    images = rng.standard_normal((RANDOM_SIZE, 28, 28, 1)).astype(np.float32)
    labels = rng.permutation(np.arange(RANDOM_SIZE) % 10).astype(np.int64)
    return images, labels


def _truncated_normal(rng: np.random.Generator, shape, bound: float = 2.0) -> np.ndarray:
    z = rng.standard_normal(shape)
    bad = np.abs(z) > bound
    while bad.any():  # resample the rejected entries (deterministic given the seed)
        z[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(z) > bound
    return z


@functools.lru_cache(maxsize=None)
def sum_task(split: str) -> tuple[np.ndarray, np.ndarray]:
    """``[N, 28, 28, 1]`` float32 images with a random mean in [-1, 1]; label = [sum(x) >= 0]."""
    rng = np.random.default_rng(_SEEDS[("sum", split)])
    n = SUM_SIZES[split]
    means = rng.uniform(-1.0, 1.0, (n, 1, 1, 1))
    images = (means + _truncated_normal(rng, (n, 28, 28, 1))).astype(np.float32)
    labels = (images.sum(axis=(1, 2, 3)) >= 0).astype(np.int64)
    return images, labels
