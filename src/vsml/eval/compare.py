"""Paired comparisons on identical episodes, and the "oracle best backprop" reference.

Every learner of an :class:`~vsml.eval.evaluate.EvalReport` ran on the same episodes with the same
per-episode keys, so differences can be paired episode by episode: the interval of a paired
difference is far narrower than the overlap of two unpaired intervals.

    oracle = oracle_backprop(episodes, seed=0)           # 22 SGD/Adam configurations, best per figure
    rows = paired_differences(report, "oracle", oracle)   # learner − reference, 95 % t-interval

**Oracle best backprop.** Online SGD and Adam, each with a linear model and with one 160-unit tanh
hidden layer, over a learning-rate grid (:data:`ORACLE_LRS`): 22 configurations run on the
*reported* episodes, and for every summary figure (online accuracy, first 100 / 1000 steps, last
100 steps, ...) the configuration best on that figure is taken, so a row may mix configurations.
Choosing on the reported episodes themselves favours backprop: it is an upper bound on what a
tuned backprop learner would score, not a fair competitor, which makes it a demanding reference.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import zipfile
from pathlib import Path

import numpy as np

from vsml.data.episodes import Episodes
from vsml.eval.metrics import Estimate, episode_summaries, mean_ci

#: Learning-rate grid of the oracle per optimizer.
ORACLE_LRS = {"sgd": (0.001, 0.003, 0.01, 0.03, 0.1, 0.3), "adam": (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)}
#: Architectures of the oracle: hidden layers (0 = linear, 1 = one tanh layer of ``ORACLE_HIDDEN`` units).
ORACLE_LAYERS = (1, 2)
ORACLE_HIDDEN = 160
#: Figures where lower is better.
LOWER_IS_BETTER = ("online_loss",)


@dataclasses.dataclass
class Oracle:
    """The oracle of one dataset: per figure, the best configuration and its per-episode values."""

    dataset: str
    best: dict[str, tuple[str, np.ndarray]]  # figure -> (configuration label, values [E])
    scores: dict[str, dict[str, float]]  # configuration label -> figure -> mean
    online_curves: tuple | None = None  # (correct, loss) [E, T] of the configuration best on online accuracy

    def summary(self, confidence: float = 0.95) -> dict[str, Estimate]:
        return {m: mean_ci(v, confidence) for m, (_, v) in self.best.items()}

    def values(self) -> dict[str, np.ndarray]:
        return {m: v for m, (_, v) in self.best.items()}


def oracle_configs(lrs=None, layers=ORACLE_LAYERS, hidden: int = ORACLE_HIDDEN) -> dict:
    """``label -> (learner, params)`` for every (optimizer, architecture, learning rate) of the grid.

    The learning rate is a parameter (``Backprop(meta_lr=True)``, ``params = {"log_lr": log lr}``),
    so one compiled program per (optimizer, architecture) serves its whole learning-rate grid."""
    import jax.numpy as jnp

    from vsml.learners.backprop import Backprop

    lrs = lrs or ORACLE_LRS
    out = {}
    for opt, grid in lrs.items():
        for n in layers:
            arch = "linear" if n == 1 else f"{hidden}-tanh"
            learner = Backprop(optimizer=opt, layers=n, hidden=hidden, meta_lr=True)
            for lr in grid:
                out[f"{opt} {arch} lr={lr:g}"] = (learner, {"log_lr": jnp.asarray(math.log(lr), jnp.float32)})
    return out


def oracle_from_curves(dataset: str, runs: dict[str, tuple[np.ndarray, np.ndarray]], windows=()) -> Oracle:
    """``runs``: configuration label -> ``(correct [E, T], loss [E, T])`` on one dataset's episodes;
    ``windows``: extra ``(start, stop)`` step windows to pick a best configuration for."""
    per = {label: episode_summaries(c, l, windows) for label, (c, l) in runs.items()}
    figures = next(iter(per.values())).keys()
    best, scores = {}, {label: {m: float(np.mean(v)) for m, v in s.items()} for label, s in per.items()}
    for m in figures:
        sign = -1.0 if m in LOWER_IS_BETTER else 1.0
        label = max(per, key=lambda k: sign * scores[k][m] if math.isfinite(scores[k][m]) else -math.inf)
        best[m] = (label, per[label][m])
    return Oracle(dataset, best, scores, runs[best["online_acc"][0]])


def oracle_backprop(
    datasets: dict[str, Episodes],
    seed: int = 0,
    lrs=None,
    chunk: int | None = None,
    progress: bool = False,
    windows=(),
    cache: str | os.PathLike | None = None,
) -> dict[str, Oracle]:
    """Run the oracle grid on every dataset's episodes (same episodes and keys as :func:`evaluate`).

    ``cache``: a folder of the grid's per-episode curves, one file per set of episodes
    (:func:`oracle_cache_key`: the episodes' bytes, the seed, the grid and the code that runs it), so
    judging another learner on the same episodes runs only that learner. A damaged cache file is
    ignored and rewritten."""
    from vsml.eval.evaluate import evaluate

    configs = oracle_configs(lrs)
    runs, todo = {}, {}
    for d, eps in datasets.items():
        hit = _cache_read(cache, oracle_cache_key(eps, seed, configs)) if cache is not None else None
        if hit is not None and set(hit) == set(configs):
            runs[d] = hit
        else:
            todo[d] = eps
    if todo:
        report = evaluate(configs, todo, seed=seed, chunk=chunk, progress=progress)
        for d in report.datasets:
            runs[d] = {r.learner: (r.correct, r.loss) for r in report.results if r.dataset == d}
            if cache is not None:
                _cache_write(cache, oracle_cache_key(todo[d], seed, configs), runs[d])
    return {d: oracle_from_curves(d, runs[d], windows) for d in datasets}


def oracle_cache_key(episodes: Episodes, seed: int, configs: dict) -> str:
    """Digest of what the oracle's curves depend on: the episodes (inputs, labels, class count), the
    learners' key seed, the grid's labels and learning rates, and the sources of the code that runs
    them (backprop learners, the episode scan, evaluation), with the JAX version."""
    import jax

    h = hashlib.sha256()
    for a in (episodes.xs, episodes.ys):
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    grid = sorted((label, float(np.asarray(p["log_lr"]))) for label, (_, p) in configs.items())
    h.update(json.dumps([episodes.num_classes, int(seed), grid, ORACLE_HIDDEN, jax.__version__]).encode())
    root = Path(__file__).resolve().parents[1]
    for rel in ("learners/backprop.py", "learners/base.py", "eval/evaluate.py", "eval/compare.py"):
        h.update((root / rel).read_bytes())
    return h.hexdigest()[:32]


def _cache_read(folder, key: str) -> dict | None:
    path = Path(folder) / f"oracle_{key}.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            labels = json.loads(str(z["labels"]))
            return {label: (z[f"c{i}"], z[f"l{i}"]) for i, label in enumerate(labels)}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def _cache_write(folder, key: str, runs: dict) -> None:
    """Atomic; a cache that cannot be written is skipped (the result does not depend on it)."""
    from vsml.artifacts import atomic_write_bytes

    labels = list(runs)
    arrays = {"labels": np.asarray(json.dumps(labels))}
    for i, label in enumerate(labels):
        arrays[f"c{i}"], arrays[f"l{i}"] = (np.asarray(a) for a in runs[label])
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(Path(folder) / f"oracle_{key}.npz", buf.getvalue())
    except OSError:
        pass


def paired_differences(
    report, reference: str, oracles: dict[str, Oracle] | None = None, confidence: float = 0.95
) -> list[dict]:
    """``learner − reference`` per dataset and figure, paired over episodes.

    ``reference`` is a learner of ``report`` or ``"oracle"`` (then ``oracles`` is needed). Returns
    rows ``{"learner", "reference", "dataset", "episodes", <figure>: Estimate}``; with one episode
    the interval is undefined (NaN bounds).
    """
    rows = []
    for dataset in report.datasets:
        if reference == "oracle":
            if not oracles or dataset not in oracles:
                raise ValueError(f"no oracle for dataset {dataset!r}")
            ref = oracles[dataset].values()
        else:
            r = report.get(reference, dataset)
            ref = episode_summaries(r.correct, r.loss, report.windows)
        for r in report.results:
            if r.dataset != dataset or r.learner == reference:
                continue
            mine = episode_summaries(r.correct, r.loss, report.windows)
            row = {"learner": r.learner, "reference": reference, "dataset": dataset, "episodes": r.correct.shape[0]}
            for m in mine:
                if m in ref:
                    d = np.asarray(mine[m]) - np.asarray(ref[m])
                    est = mean_ci(d, confidence)
                    row[m] = est if len(d) > 1 else Estimate(est.mean, math.nan, math.nan, 1)
            rows.append(row)
    return rows
