"""Meta-test evaluation: run learners on the same online episodes and collect per-step curves.

The core works on plain arrays::

    eps = Episodes(xs, ys, num_classes)          # xs [E, T, batch, *input_shape], ys [E, T, batch]
    report = evaluate({"sgd": (sgd_learner, {}), "vsml": (vsml_learner, params)}, {"digits": eps}, seed=0)
    report.results[0].correct                     # [E, T] per-step accuracy (batch-averaged)

Every learner sees the same episodes and the same per-episode PRNG keys (``episode_keys(seed, E)``),
so differences come from the learners only, and a rerun with the same seed reproduces identical
numbers. Episodes from datasets come from the one episode pipeline of :mod:`vsml.data.episodes`
(``draw_episodes(SamplerConfig(...), seed, n)``), the same as meta-training and its meta-test use.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import jax
import numpy as np

from vsml.data.episodes import Episodes
from vsml.errors import VSMLError
from vsml.eval.metrics import Estimate, curve_ci, summarize
from vsml.learners.base import InputError, OnlineLearner, run_episodes
from vsml.pytree import PyTree


class EvalError(VSMLError, ValueError):
    """Bad evaluation request (unknown dataset, inconsistent shapes, bad options)."""


def check_episodes(eps: Episodes, what: str = "episodes") -> None:
    xs, ys = np.shape(eps.xs), np.shape(eps.ys)
    if len(xs) < 4:
        raise EvalError(f"{what}: xs must have shape [episodes, T, batch, *input_shape], got {list(xs)}")
    if ys != xs[:3]:
        raise EvalError(f"{what}: ys must have shape {list(xs[:3])} to match xs, got {list(ys)}")
    if int(eps.num_classes) < 2:
        raise EvalError(f"{what}: num_classes must be >= 2, got {eps.num_classes}")


def episode_keys(seed: int, n: int) -> jax.Array:
    """The per-episode learner keys ``[n]`` used for every learner under ``seed``."""
    return jax.random.split(jax.random.fold_in(jax.random.PRNGKey(seed), 0x5EED), n)


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield start, min(start + size, n)


def run_learner(
    learner: OnlineLearner,
    params: PyTree,
    eps: Episodes,
    keys: jax.Array,
    *,
    chunk: int | None = None,
    with_logits: bool = False,
    on_chunk: Callable[[int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Run ``learner`` on all episodes, ``chunk`` episodes at a time (vmapped, jitted once).

    Returns ``{'correct': [E, T], 'loss': [E, T]}`` (batch-averaged) and, with ``with_logits``,
    ``'logits': [E, T, batch, C]``. ``on_chunk(n_done)`` is called after each chunk (progress).
    """
    check_episodes(eps)
    e = eps.n_episodes
    chunk = max(1, min(chunk or e, e))
    out: dict[str, list] = {"correct": [], "loss": []}
    if with_logits:
        out["logits"] = []
    for start, stop in _chunks(e, chunk):
        idx = np.arange(start, stop)
        if len(idx) < chunk:  # pad the last chunk so that every chunk has the same (compiled) shape
            idx = np.concatenate([idx, np.full(chunk - len(idx), idx[-1])])
        res = run_episodes(learner, params, keys[idx], eps.xs[idx], eps.ys[idx], int(eps.num_classes))
        n = stop - start
        out["correct"].append(np.asarray(res.correct).mean(-1)[:n])
        out["loss"].append(np.asarray(res.losses).mean(-1)[:n])
        if with_logits:
            out["logits"].append(np.asarray(res.logits)[:n])
        if on_chunk is not None:
            on_chunk(n)
    return {k: np.concatenate(v) for k, v in out.items()}


@dataclasses.dataclass
class Curves:
    """Per-step results of one learner on one dataset: ``correct, loss [E, T]``."""

    learner: str
    dataset: str
    correct: np.ndarray
    loss: np.ndarray
    info: dict = dataclasses.field(default_factory=dict)

    def summary(self, confidence: float = 0.95, windows=()) -> dict[str, Estimate]:
        return summarize(self.correct, self.loss, confidence, windows)

    def curve(self, what: str = "correct", confidence: float = 0.95):
        """``(mean, lo, hi)`` each ``[T]`` of the per-step accuracy (``'correct'``) or ``'loss'``."""
        return curve_ci(getattr(self, what), confidence)


@dataclasses.dataclass
class EvalReport:
    """All :class:`Curves` of an evaluation plus its settings (``meta``); optionally the oracle
    best backprop per dataset and the reference of paired differences (:mod:`vsml.eval.compare`)."""

    results: list[Curves]
    meta: dict = dataclasses.field(default_factory=dict)
    oracles: dict = dataclasses.field(default_factory=dict)  # dataset -> compare.Oracle
    reference: str | None = None  # learner name or "oracle": report paired differences against it
    windows: tuple = ()  # extra figures: accuracy over steps [start, stop) per (start, stop)

    def get(self, learner: str, dataset: str) -> Curves:
        for r in self.results:
            if r.learner == learner and r.dataset == dataset:
                return r
        raise KeyError((learner, dataset))

    @property
    def learners(self) -> list[str]:
        return list(dict.fromkeys(r.learner for r in self.results))

    @property
    def datasets(self) -> list[str]:
        return list(dict.fromkeys(r.dataset for r in self.results))


def _progress(enabled: bool, total: int):
    """A progress display (:mod:`vsml.progress`; or a no-op) as a context manager yielding ``advance(n, label)``."""
    import contextlib

    @contextlib.contextmanager
    def cm():
        if not enabled or total <= 0:
            yield lambda n, label=None: None
            return
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

        from vsml.progress import progress_bar  # plain periodic lines when not on a terminal

        with progress_bar(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
        ) as prog:
            task = prog.add_task("episodes", total=total)

            def advance(n, label=None):
                prog.update(task, advance=n, description=label or "episodes")

            yield advance

    return cm()


def evaluate(
    learners: Mapping[str, tuple[OnlineLearner, PyTree]],
    datasets: Mapping[str, Episodes],
    *,
    seed: int = 0,
    tune: Mapping[str, Episodes] | None = None,
    tune_lrs: Mapping[str, tuple[float, ...]] | None = None,
    chunk: int | None = None,
    progress: bool = False,
    keep_untuned: bool = True,
) -> EvalReport:
    """Run every learner on every dataset's episodes (the same episodes and keys for all).

    ``learners``: name -> ``(learner, params)`` (``params=None`` means ``learner.init_params`` of a
    key derived from ``seed``). ``datasets``: name -> :class:`Episodes`. With ``tune`` (name ->
    tuning :class:`Episodes`, which must differ from the reported ones) every backprop learner's
    learning rate is also picked per dataset by :func:`~vsml.learners.backprop.lr_sweep` over
    ``tune_lrs`` (per optimizer; defaults in ``backprop.DEFAULT_LRS``) and the tuned copy is
    reported as ``'<name> (tuned lr)'`` (with ``keep_untuned=False`` it replaces the original).
    """
    from vsml.learners.backprop import Backprop, lr_sweep, with_traced_lr

    if not learners:
        raise EvalError("no learners to evaluate")
    if not datasets:
        raise EvalError("no datasets to evaluate on")
    for name, eps in datasets.items():
        check_episodes(eps, f"dataset '{name}'")
    runs: list[tuple[str, OnlineLearner, PyTree, bool]] = []  # (label, learner, params, tune it?)
    for lname, (learner, params) in learners.items():
        if tune is not None and isinstance(learner, Backprop):
            if keep_untuned:
                runs.append((lname, learner, params, False))
            runs.append((f"{lname} (tuned lr)" if keep_untuned else lname, learner, params, True))
        else:
            runs.append((lname, learner, params, False))
    total = sum(eps.n_episodes for eps in datasets.values()) * len(runs)
    results: list[Curves] = []
    tuned: dict[str, dict[str, Any]] = {}
    with _progress(progress, total) as advance:
        for dname, eps in datasets.items():
            keys = episode_keys(seed, eps.n_episodes)
            for lname, learner, params, do_tune in runs:
                info: dict[str, Any] = {}
                if params is None:
                    params = learner.init_params(jax.random.PRNGKey(seed))
                if do_tune:
                    if dname not in tune:
                        raise EvalError(f"no tuning episodes for dataset '{dname}'")
                    t_eps = tune[dname]
                    t_keys = episode_keys(seed + 1, t_eps.n_episodes)
                    lrs = (tune_lrs or {}).get(learner.optimizer)
                    sweep = lr_sweep(learner, t_eps.xs, t_eps.ys, int(t_eps.num_classes), t_keys, lrs=lrs)
                    learner = dataclasses.replace(learner, lr=sweep.best_lr)
                    info["tuned_lr"] = sweep.best_lr
                    info["lr_sweep"] = dict(zip(map(str, sweep.lrs), sweep.scores))
                    tuned.setdefault(lname, {})[dname] = sweep.best_lr
                if isinstance(learner, Backprop):  # one compilation for every learning rate
                    learner, params = with_traced_lr(learner, params)
                label = f"{lname} on {dname}"
                try:
                    out = run_learner(learner, params, eps, keys, chunk=chunk, on_chunk=lambda n: advance(n, label))
                except InputError as e:
                    raise EvalError(f"learner '{lname}' cannot run dataset '{dname}': {e}") from None
                results.append(Curves(lname, dname, out["correct"], out["loss"], info))
    meta = {
        "seed": seed,
        "learners": [r[0] for r in runs],
        "datasets": {
            k: {
                "episodes": v.n_episodes,
                "steps": v.steps,
                "batch_size": int(v.xs.shape[2]),
                "input_shape": list(v.xs.shape[3:]),
                "num_classes": int(v.num_classes),
            }
            for k, v in datasets.items()
        },
    }
    if tuned:
        meta["tuned_lr"] = tuned
    return EvalReport(results, meta)
