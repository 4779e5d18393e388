"""Meta-test evaluation: run learners on the same online episodes and collect per-step curves.

The core works on plain arrays::

    eps = Episodes(xs, ys, num_classes)          # xs [E, T, batch, *input_shape], ys [E, T, batch]
    report = evaluate({"sgd": (sgd_learner, {}), "vsml": (vsml_learner, params)}, {"digits": eps}, seed=0)
    report.results[0].correct                     # [E, T] per-step accuracy (batch-averaged)

Every learner sees the same episodes and the same per-episode PRNG keys (``episode_keys(seed, E)``),
so differences come from the learners only, and a rerun with the same seed reproduces identical
numbers. :func:`make_episodes` draws episodes from a dataset (test split by default) with the
invariance options (pixel permutation, random projection, resize, class subsets).
"""

from __future__ import annotations

import dataclasses
import zlib
from typing import Any, Callable, Mapping, NamedTuple

import jax
import numpy as np

from vsml.eval.metrics import Estimate, curve_ci, summarize
from vsml.learners.base import InputError, OnlineLearner, run_episodes

PyTree = Any


class EvalError(ValueError):
    """Bad evaluation request (unknown dataset, inconsistent shapes, bad options)."""


class Episodes(NamedTuple):
    """A batch of online episodes: ``xs [E, T, batch, *input_shape]`` float, ``ys [E, T, batch]`` int."""

    xs: np.ndarray
    ys: np.ndarray
    num_classes: int

    @property
    def n_episodes(self) -> int:
        return int(self.xs.shape[0])

    @property
    def steps(self) -> int:
        return int(self.xs.shape[1])


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

    def summary(self, confidence: float = 0.95) -> dict[str, Estimate]:
        return summarize(self.correct, self.loss, confidence)

    def curve(self, what: str = "correct", confidence: float = 0.95):
        """``(mean, lo, hi)`` each ``[T]`` of the per-step accuracy (``'correct'``) or ``'loss'``."""
        return curve_ci(getattr(self, what), confidence)


@dataclasses.dataclass
class EvalReport:
    """All :class:`Curves` of an evaluation plus its settings (``meta``)."""

    results: list[Curves]
    meta: dict = dataclasses.field(default_factory=dict)

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
    """A rich progress bar (or a no-op) as a context manager yielding ``advance(n, label)``."""
    import contextlib

    @contextlib.contextmanager
    def cm():
        if not enabled or total <= 0:
            yield lambda n, label=None: None
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=False
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
            k: {"episodes": v.n_episodes, "steps": v.steps, "batch_size": int(v.xs.shape[2]), "input_shape": list(v.xs.shape[3:]), "num_classes": int(v.num_classes)}
            for k, v in datasets.items()
        },
    }
    if tuned:
        meta["tuned_lr"] = tuned
    return EvalReport(results, meta)


# ---------------------------------------------------------------------------------------------
# Episodes from datasets (with invariance transforms)
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EpisodeOptions:
    """How episodes are drawn from a dataset.

    Pixels are scaled to [0, 1], optionally converted to grayscale, normalised with the dataset's
    statistics (``vsml.data`` registry; computed from the split when it has none) and resized.
    ``classes``: a random subset of this many classes per episode (relabelled 0..K-1);
    ``resize``: resize images to ``resize x resize`` (bilinear); ``permute``: a random pixel
    permutation per episode; ``project``: a random Glorot-uniform ``D x D`` projection of the
    flattened input per episode. Examples are drawn uniformly with replacement.
    """

    episodes: int = 10
    steps: int = 1000
    batch_size: int = 1
    split: str = "test"
    classes: int | None = None
    resize: int | None = None
    grayscale: bool = False
    permute: bool = False
    project: bool = False

    def __post_init__(self):
        for name in ("episodes", "steps", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise EvalError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.classes is not None and self.classes < 2:
            raise EvalError(f"classes must be >= 2, got {self.classes}")
        if self.resize is not None and self.resize < 1:
            raise EvalError(f"resize must be >= 1, got {self.resize}")


def load_pool(dataset: str, split: str = "test", *, grayscale: bool = False, resize: int | None = None, data_dir=None) -> tuple[np.ndarray, np.ndarray, int]:
    """All examples of a dataset split, preprocessed: ``(images [N, H, W, C] float32, labels [N], num_classes)``.

    Loaded through :func:`vsml.data.registry.load` (``VSML_DATA_DIR``); any
    :class:`~vsml.data.integrity.DataError` becomes an :class:`EvalError` with the same message.
    """
    from vsml.data import registry as data_registry
    from vsml.data import transforms
    from vsml.data.integrity import DataError

    try:
        s = data_registry.load(dataset, split, data_dir=data_dir)
        images = transforms.to_unit(s.images)
        if grayscale:
            images = transforms.grayscale(images)
        mean, std = s.mean, s.std
        if mean is None or std is None or (grayscale and images.shape[-1] != np.shape(s.images)[-1]):
            mean, std = float(images.mean()), float(images.std()) or 1.0
        images = transforms.normalize(images, mean, std)
        if resize is not None:
            images = transforms.resize(images, (resize, resize))
    except DataError as e:
        raise EvalError(str(e)) from None
    return np.asarray(images, np.float32), np.asarray(s.labels, np.int64), int(s.num_classes)


def stable_seed(*parts) -> int:
    """A seed from ints/strings that does not depend on Python's hash randomisation."""
    acc = 0
    for p in parts:
        acc = (acc * 1_000_003 + (zlib.crc32(p.encode()) if isinstance(p, str) else int(p))) % (2**63)
    return acc


def sample_episodes(images: np.ndarray, labels: np.ndarray, num_classes: int, opts: EpisodeOptions, seed: int) -> Episodes:
    """Draw ``opts.episodes`` episodes of ``opts.steps`` x ``opts.batch_size`` examples from a pool
    (``images [N, H, W, C]``, ``labels [N]``), with the per-episode class subset / permutation /
    projection of ``opts`` (``opts.resize``/``grayscale`` are applied by :func:`load_pool`).
    """
    from vsml.data import transforms

    classes = np.unique(labels)
    k = num_classes if opts.classes is None else opts.classes
    if opts.classes is not None and k > len(classes):
        raise EvalError(f"asked for {k} classes but the split has only {len(classes)}")
    by_class = {int(c): np.flatnonzero(labels == c) for c in classes}
    shape = images.shape[1:]
    dim = int(np.prod(shape))
    n = opts.steps * opts.batch_size
    xs = np.empty((opts.episodes, n, *shape), np.float32)
    ys = np.empty((opts.episodes, n), np.int64)
    root = jax.random.PRNGKey(seed % (2**32))
    for e, child in enumerate(np.random.SeedSequence(seed).spawn(opts.episodes)):
        rng = np.random.default_rng(child)
        key_perm, key_proj = jax.random.split(jax.random.fold_in(root, e))
        if opts.classes is None:
            idx = rng.integers(0, len(labels), n)
            xs[e], ys[e] = images[idx], labels[idx]
        else:
            chosen = rng.choice(classes, size=k, replace=False)
            pool = np.concatenate([by_class[int(c)] for c in chosen])
            idx = pool[rng.integers(0, len(pool), n)]
            lut = np.zeros(int(classes.max()) + 1, np.int64)
            lut[chosen] = np.arange(k)
            xs[e], ys[e] = images[idx], lut[labels[idx]]
        if opts.permute:
            perm = np.asarray(transforms.pixel_permutation(key_perm, dim))
            xs[e] = xs[e].reshape(n, dim)[:, perm].reshape(n, *shape)
        if opts.project:
            proj = np.asarray(transforms.glorot_uniform(key_proj, dim, dim))
            xs[e] = (xs[e].reshape(n, dim) @ proj).reshape(n, *shape)
    xs = xs.reshape(opts.episodes, opts.steps, opts.batch_size, *shape)
    ys = ys.reshape(opts.episodes, opts.steps, opts.batch_size).astype(np.int32)
    return Episodes(xs, ys, k)


def make_episodes(dataset: str, opts: EpisodeOptions, seed: int = 0, *, data_dir=None) -> Episodes:
    """Episodes of ``dataset`` (split ``opts.split``) for ``seed``; identical for identical arguments.

    The data seed mixes ``seed``, the dataset name and the split, so adding a dataset changes no
    other dataset's episodes.
    """
    images, labels, num_classes = load_pool(dataset, opts.split, grayscale=opts.grayscale, resize=opts.resize, data_dir=data_dir)
    if images.ndim != 4:
        raise EvalError(f"dataset '{dataset}' images must be [N, H, W, C], got shape {images.shape}")
    return sample_episodes(images, labels, num_classes, opts, stable_seed(seed, dataset, opts.split))
