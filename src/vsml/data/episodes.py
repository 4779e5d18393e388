"""Episode sampling: a key -> a meta-batch of online-learning episodes, inside ``jit``.

    sampler = EpisodeSampler(SamplerConfig(datasets=("mnist",), steps=500, projection="episode"))
    xs, ys = sampler.sample(key, 128)   # xs [128, 500, 1, 784] float32, ys [128, 500, 1] int32

Construction loads each dataset split once (see :mod:`vsml.data.registry`), applies the static
preprocessing (grayscale, resize, normalisation, padding, fixed class subsets) and keeps the whole
split on device. ``sample`` is a pure function of ``(key, num_episodes)``: per episode it draws a
dataset of the mixture, a class subset and label order, the examples, and the per-episode input
permutation/projection, all from the key. It works under ``jit``/``vmap``; inside your own ``jit``
pass the sampler as an argument (it is a pytree whose leaves are the device arrays), so the data
are not baked into the compiled program as constants.

Members of a mixture must share one input shape after preprocessing: give ``image_size`` (and/or
``pad_to``) when their native sizes differ, and keep ``grayscale=True`` to mix RGB with grayscale.
Feature vectors ``[N, F]`` (tables, see :mod:`vsml.data.userdata`) skip the image steps and are
normalised per feature; ``image_size``/``pad_to`` are refused for them.

A stream episode is two draws: ``sample_task(key)`` (member, classes and their labels,
permutation, projection: an :class:`EpisodeTask`) and ``sample_steps(task, key, T)`` (T independent
examples of that task). Lifetimes longer than one array can hold are streamed piece by piece from
the same task; ``sample_episode`` is both draws at once.

Episode layouts:

- stream (default): ``steps`` examples, each an independent draw from the episode's classes
  (uniform over examples, or over classes with ``balanced=True``);
- few-shot (``fewshot=FewShotConfig(ways, shots, queries)``): ``ways * shots`` labelled examples
  (``shots`` distinct examples of each of ``ways`` random classes, in random order) followed by
  ``queries`` held-back examples of those classes; labels are a random assignment of 0..ways-1.
  The last ``queries`` steps are the queries (score them with a "last step(s) only" objective).
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from functools import partial
from typing import Annotated, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from vsml.config import Range, check_ranges
from vsml.data import registry, transforms
from vsml.data.integrity import DataError


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """One member of a dataset mixture. ``split`` may be sliced (``"test[:80%]"``); ``classes`` keeps
    only those classes, relabelled to 0..k-1 in the given order; ``weight`` is its sampling weight."""

    name: str
    split: str = "train"
    weight: Annotated[float, Range(">0")] = 1.0
    classes: Annotated[tuple[int, ...] | None, Range(">=0")] = None

    def __post_init__(self):
        check_ranges(self, f"dataset '{self.name}'")
        if self.classes is not None:
            object.__setattr__(self, "classes", tuple(int(c) for c in self.classes))
            if len(self.classes) < 2:
                raise DataError(f"dataset '{self.name}': a class subset needs at least 2 classes, got {self.classes}")


@dataclasses.dataclass(frozen=True)
class FewShotConfig:
    """N-way K-shot episodes: ``ways * shots`` labelled examples, then ``queries`` query examples."""

    ways: Annotated[int, Range(">=2")] = 5
    shots: Annotated[int, Range(">=1")] = 1
    queries: Annotated[int, Range(">=0")] = 1

    def __post_init__(self):
        check_ranges(self, "fewshot")

    @property
    def steps(self) -> int:
        return self.ways * self.shots + self.queries


Mode = Literal["none", "episode", "fixed"]


@dataclasses.dataclass(frozen=True)
class SamplerConfig:
    """What episodes look like. Shapes: ``xs [episodes, steps, batch_size, *input_shape]``.

    - ``datasets``: names or :class:`DatasetSpec` s (a weighted mixture when several).
    - ``steps``: episode length T (default 500; few-shot: ``ways*shots+queries``, may be omitted).
    - ``image_size`` ``(h, w)``: resize every image (bilinear, antialiased); ``pad_to`` ``(h, w)``:
      centre-pad afterwards with the value of a black (0) pixel.
    - ``grayscale``: RGB -> luma; ``normalize``: ``(x - mean) / std`` with the dataset's statistics.
    - ``flatten``: inputs ``[h*w*c]`` instead of ``[h, w, c]`` (projection always flattens).
    - ``num_classes``: classes per episode, a random subset relabelled 0..k-1 (``None``: all of the
      member's classes, labels unchanged unless ``permute_classes``); ``permute_classes``: random
      label order per episode; ``balanced``: draw classes uniformly instead of examples uniformly.
    - ``output_classes``: pad the class count reported to learners (>= any episode's classes).
    - ``projection``: ``"episode"`` draws a Glorot-uniform ``[D, projection_dim]`` matrix per episode,
      ``"fixed"`` one for all (NumPy, from ``seed``); ``permutation``: the same for a pixel permutation.
    - ``input_scale`` ``(lo, hi)``: multiply an episode's inputs (after normalisation, before the
      projection) by a factor drawn log-uniformly in ``[lo, hi]`` (robustness to the input scale).
    """

    datasets: tuple[DatasetSpec | str, ...] = (DatasetSpec("mnist"),)
    steps: Annotated[int | None, Range(">=1")] = None
    batch_size: Annotated[int, Range(">=1")] = 1
    image_size: Annotated[tuple[int, int] | None, Range(">=1")] = None
    pad_to: Annotated[tuple[int, int] | None, Range(">=1")] = None
    grayscale: bool = True
    normalize: bool = True
    flatten: bool = False
    num_classes: Annotated[int | None, Range(">=2")] = None
    output_classes: Annotated[int | None, Range(">=2")] = None
    permute_classes: bool = False
    balanced: bool = False
    projection: Mode = "none"
    projection_dim: Annotated[int | None, Range(">=1")] = None
    permutation: Mode = "none"
    input_scale: Annotated[tuple[float, float] | None, Range(">0")] = (
        None  # per episode, inputs times a factor log-uniform in [lo, hi]
    )
    seed: Annotated[int, Range(">=0")] = 0
    fewshot: FewShotConfig | None = None
    data_dir: str | None = None
    verify: bool = True

    def __post_init__(self):
        specs = self.datasets if isinstance(self.datasets, (tuple, list)) else (self.datasets,)
        specs = tuple(DatasetSpec(s) if isinstance(s, str) else s for s in specs)
        if not specs:
            raise DataError("a sampler needs at least one dataset")
        object.__setattr__(self, "datasets", specs)
        for name in ("image_size", "pad_to"):
            v = getattr(self, name)
            if v is not None:
                v = tuple(int(d) for d in v)
                if len(v) != 2 or min(v) < 1:
                    raise DataError(f"{name} must be (height, width) with positive sizes, got {v}")
                object.__setattr__(self, name, v)
        if self.fewshot is not None:
            if self.steps is not None and self.steps != self.fewshot.steps:
                raise DataError(
                    f"few-shot episodes have ways*shots+queries = {self.fewshot.steps} steps, but steps={self.steps}"
                )
            if self.num_classes is not None and self.num_classes != self.fewshot.ways:
                raise DataError(
                    f"few-shot episodes have {self.fewshot.ways} classes (ways), but num_classes={self.num_classes}"
                )
        if self.episode_steps < 1 or self.batch_size < 1:
            raise DataError(f"steps and batch_size must be >= 1, got {self.episode_steps} and {self.batch_size}")
        if self.num_classes is not None and self.num_classes < 2:
            raise DataError(f"num_classes must be >= 2, got {self.num_classes}")
        for name in ("projection", "permutation"):
            if getattr(self, name) not in ("none", "episode", "fixed"):
                raise DataError(f"{name} must be 'none', 'episode' or 'fixed', got {getattr(self, name)!r}")
        if self.projection_dim is not None and (self.projection == "none" or self.projection_dim < 1):
            raise DataError("projection_dim needs projection='episode' or 'fixed' and a positive size")
        if self.input_scale is not None:
            lo, hi = (float(v) for v in self.input_scale)
            if not (0 < lo <= hi and math.isfinite(hi)):
                raise DataError(f"input_scale must be (lo, hi) with 0 < lo <= hi, got {self.input_scale}")
            object.__setattr__(self, "input_scale", (lo, hi))

    @property
    def episode_steps(self) -> int:
        if self.fewshot is not None:
            return self.fewshot.steps
        return 500 if self.steps is None else self.steps


class _Tables(NamedTuple):
    """Device arrays (pytree leaves). ``N`` examples of all members, ``M`` members, ``C`` max classes."""

    data: jax.Array  # [N, *stored_shape] uint8 or float32
    scale: jax.Array  # [M] float32: x = data * scale + shift
    shift: jax.Array  # [M]
    order: jax.Array  # [N] int32: example indices grouped by (member, class)
    start: jax.Array  # [M, C] int32: first position of each class in ``order``
    count: jax.Array  # [M, C] int32: examples per class (0 for absent / ineligible classes)
    num_classes: jax.Array  # [M] int32
    logits: jax.Array  # [M] float32 log mixture weights
    projection: jax.Array | None  # [D, D'] for projection="fixed"
    permutation: jax.Array | None  # [D] for permutation="fixed"


@dataclasses.dataclass(frozen=True)
class _Static:
    steps: int
    batch: int
    members: int
    max_classes: int
    slots: int  # classes per episode (labels are slot indices)
    all_classes: bool  # num_classes=None in stream mode
    permute_classes: bool
    balanced: bool
    stored_shape: tuple[int, ...]
    flatten: bool
    projection: str
    projection_dim: int
    permutation: str
    fewshot: tuple[int, int, int] | None
    max_count: int
    input_scale: tuple[float, float] | None = None


def _prepare_member(spec: DatasetSpec, cfg: SamplerConfig):
    """Load one member and apply the static preprocessing. Returns (data, labels, classes, scale, shift)."""
    split = registry.load(spec.name, spec.split, data_dir=cfg.data_dir, verify=cfg.verify)
    images, labels, num_classes = split.images, split.labels, split.num_classes
    if spec.classes is not None:
        bad = [c for c in spec.classes if not 0 <= c < num_classes]
        if bad:
            raise DataError(f"dataset '{spec.name}': classes {bad} out of range [0, {num_classes})")
        images, labels = transforms.select_classes(images, labels, spec.classes)
        num_classes = len(spec.classes)
    x = images
    if x.ndim == 2:  # feature vectors [N, F] (a table): no image preprocessing
        return _prepare_features(spec, cfg, split, x, labels, num_classes)
    if cfg.grayscale and x.shape[-1] == 3:
        x = transforms.grayscale(x)
    if cfg.image_size is not None and tuple(x.shape[1:3]) != cfg.image_size:
        x = transforms.resize(x, cfg.image_size)
    scale, shift = (1 / 255.0 if x.dtype == np.uint8 else 1.0), 0.0
    pad_value = 0.0  # a black pixel, in the units stored
    if cfg.normalize:
        mean, std = split.mean, split.std
        if mean is None or std is None or x.shape[-1] != 1:  # statistics computed from this split
            unit = transforms.to_unit(x)
            mean, std = float(unit.mean()), float(unit.std())
            if not std > 0:
                raise DataError(
                    f"dataset '{spec.name}' split '{spec.split}': every pixel has the same value, "
                    "so it cannot be normalised (std 0); set normalize=False"
                )
        if x.dtype == np.uint8:  # keep uint8 on device; normalise after the gather
            scale, shift = 1.0 / (255.0 * std), -mean / std
        else:
            x = transforms.normalize(x, mean, std)
            pad_value = -mean / std
    if cfg.pad_to is not None:
        x = transforms.pad_to(x, cfg.pad_to, value=pad_value)
    return x, np.asarray(labels, np.int32), num_classes, scale, shift


def feature_statistics(
    name: str, split: str, *, data_dir=None, verify: bool = True
) -> tuple[np.ndarray, np.ndarray, str]:
    """Per-feature ``(mean, std, source split)`` for standardising split ``split`` of the table
    ``name``: always from its training split, so a test split is scaled like the data a learner
    was fitted on and nothing of the test split leaks into its own preprocessing. The training
    split is ``train`` (for a file without splits: its fixed 80 % ``train`` partition); a split
    named ``train...`` (e.g. ``train[:80%]``) uses its own rows; a table with no ``train`` split uses
    the split itself."""
    base = registry.parse_split(split)[0]
    source = split if base == "train" else "train"
    try:
        ref = registry.load(name, source, data_dir=data_dir, verify=verify)
    except DataError:
        if source == split:
            raise
        source, ref = split, registry.load(name, split, data_dir=data_dir, verify=verify)
    unit = transforms.to_unit(ref.images).reshape(len(ref.images), -1)
    return unit.mean(axis=0, dtype=np.float64), unit.std(axis=0, dtype=np.float64), source


def _prepare_features(spec: DatasetSpec, cfg: SamplerConfig, split, x, labels, num_classes):
    """Feature vectors ``[N, F]``: standardised per feature, ``(x - mean_f) / std_f`` with the
    statistics of the table's training split (:func:`feature_statistics`; a constant feature gives
    0), or with the split's published scalar ``mean``/``std`` when its registration gives them."""
    for option in ("image_size", "pad_to"):
        if getattr(cfg, option) is not None:
            raise DataError(
                f"dataset '{spec.name}' holds feature vectors [N, {x.shape[1]}] (a table), not images: "
                f"{option} does not apply; remove it (projection_dim changes the input size)"
            )
    x = transforms.to_unit(x)
    if cfg.normalize:
        if split.mean is not None and split.std is not None:
            x = transforms.normalize(x, split.mean, split.std)
        else:
            mean, std, _ = feature_statistics(spec.name, spec.split, data_dir=cfg.data_dir, verify=cfg.verify)
            x = np.where(std > 0, (x - mean) / np.where(std > 0, std, 1.0), 0.0).astype(np.float32)
    return x, np.asarray(labels, np.int32), num_classes, 1.0, 0.0


@jax.tree_util.register_pytree_node_class
class EpisodeSampler:
    """Builds device tables from a :class:`SamplerConfig`; ``sample(key, n)`` -> ``(xs, ys)``.

    Attributes: ``config``, ``input_shape`` (one example), ``num_classes`` (label range for learners),
    ``steps``, ``batch_size``, ``query_steps`` (few-shot: trailing query steps, else 0).
    """

    def __init__(self, config: SamplerConfig):
        cfg = config
        parts = [_prepare_member(spec, cfg) for spec in cfg.datasets]
        shapes = {tuple(p[0].shape[1:]) for p in parts}
        if len(shapes) > 1:
            detail = ", ".join(f"{s.name}: {list(p[0].shape[1:])}" for s, p in zip(cfg.datasets, parts))
            raise DataError(
                f"mixture members must share one input shape after preprocessing ({detail}); "
                "set image_size (and/or pad_to), and grayscale=True to mix RGB with grayscale"
            )
        if any(p[0].dtype != np.uint8 for p in parts):  # mixed storage: materialise floats
            parts = [
                (p[0].astype(np.float32) * np.float32(p[3]) + np.float32(p[4]), p[1], p[2], 1.0, 0.0)
                if p[0].dtype == np.uint8
                else p
                for p in parts
            ]
        need = cfg.fewshot.shots + cfg.fewshot.queries if cfg.fewshot else 1
        max_c = max(p[2] for p in parts)
        M = len(parts)
        start = np.zeros((M, max_c), np.int32)
        count = np.zeros((M, max_c), np.int32)
        orders, offset = [], 0
        for m, ((x, labels, C, _, _), spec) in enumerate(zip(parts, cfg.datasets)):
            orders.append(np.argsort(labels, kind="stable").astype(np.int32) + offset)
            cnt = np.bincount(labels, minlength=C)
            start[m, :C] = offset + np.concatenate([[0], np.cumsum(cnt)[:-1]])
            count[m, :C] = np.where(cnt >= need, cnt, 0)
            eligible = int((count[m] > 0).sum())
            want = cfg.fewshot.ways if cfg.fewshot else (cfg.num_classes or 1)
            if eligible < want:
                what = f"with at least {need} examples " if cfg.fewshot else ""
                raise DataError(
                    f"dataset '{spec.name}' split '{spec.split}' has {eligible} classes {what}but episodes need {want}"
                )
            offset += len(labels)
        slots = cfg.fewshot.ways if cfg.fewshot else (cfg.num_classes or max_c)
        out_classes = slots
        if cfg.output_classes is not None:
            if cfg.output_classes < slots:
                raise DataError(
                    f"output_classes={cfg.output_classes} is smaller than the {slots} classes of an episode"
                )
            out_classes = cfg.output_classes
        stored = tuple(parts[0][0].shape[1:])
        d = int(np.prod(stored))
        proj_dim = cfg.projection_dim or d
        rng = np.random.default_rng(cfg.seed)  # "fixed" transforms: NumPy, the same everywhere
        limit = math.sqrt(6.0 / (d + proj_dim))  # Glorot-uniform
        fixed_w = rng.uniform(-limit, limit, (d, proj_dim)).astype(np.float32) if cfg.projection == "fixed" else None
        fixed_perm = rng.permutation(d).astype(np.int32) if cfg.permutation == "fixed" else None
        weights = np.asarray([s.weight for s in cfg.datasets], np.float64)
        self.tables = _Tables(
            data=jnp.asarray(np.concatenate([p[0] for p in parts])),
            scale=jnp.asarray([p[3] for p in parts], jnp.float32),
            shift=jnp.asarray([p[4] for p in parts], jnp.float32),
            order=jnp.asarray(np.concatenate(orders)),
            start=jnp.asarray(start),
            count=jnp.asarray(count),
            num_classes=jnp.asarray([p[2] for p in parts], jnp.int32),
            logits=jnp.asarray(np.log(weights / weights.sum()), jnp.float32),
            projection=None if fixed_w is None else jnp.asarray(fixed_w),
            permutation=None if fixed_perm is None else jnp.asarray(fixed_perm),
        )
        self.static = _Static(
            steps=cfg.episode_steps,
            batch=cfg.batch_size,
            members=M,
            max_classes=max_c,
            slots=slots,
            all_classes=cfg.fewshot is None and cfg.num_classes is None,
            permute_classes=cfg.permute_classes,
            balanced=cfg.balanced,
            stored_shape=stored,
            flatten=cfg.flatten,
            projection=cfg.projection,
            projection_dim=proj_dim,
            permutation=cfg.permutation,
            fewshot=(cfg.fewshot.ways, cfg.fewshot.shots, cfg.fewshot.queries) if cfg.fewshot else None,
            max_count=int(count.max()),
            input_scale=cfg.input_scale,
        )
        self.config = cfg
        self.num_classes = out_classes

    # pytree protocol: leaves are the device tables; everything else is static
    def tree_flatten(self):
        return (self.tables,), (self.config, self.static, self.num_classes)

    @classmethod
    def tree_unflatten(cls, aux, children):
        obj = cls.__new__(cls)
        obj.config, obj.static, obj.num_classes = aux
        (obj.tables,) = children
        return obj

    @property
    def input_shape(self) -> tuple[int, ...]:
        s = self.static
        if s.projection != "none":
            return (s.projection_dim,)
        return (int(np.prod(s.stored_shape)),) if s.flatten else s.stored_shape

    @property
    def steps(self) -> int:
        return self.static.steps

    @property
    def batch_size(self) -> int:
        return self.static.batch

    @property
    def query_steps(self) -> int:
        return self.static.fewshot[2] if self.static.fewshot else 0

    def sample(self, key: jax.Array, num_episodes: int) -> tuple[jax.Array, jax.Array]:
        """``xs [num_episodes, steps, batch, *input_shape]`` float32, ``ys [num_episodes, steps, batch]`` int32.

        Episode ``i`` is ``sample_episode(jax.random.split(key, num_episodes)[i])``."""
        return _sample(self.tables, key, int(num_episodes), self.static)

    def sample_episode(self, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """One episode: ``xs [steps, batch, *input_shape]``, ``ys [steps, batch]``.

        Stream episodes are ``sample_steps(sample_task(k_task), k_steps, steps)`` with
        ``k_task, k_steps = jax.random.split(key)``."""
        return _sample_one_jit(self.tables, key, self.static)

    def sample_task(self, key: jax.Array) -> "EpisodeTask":
        """The per-episode draws of a stream episode (mixture member, classes and their labels,
        permutation, projection) as an :class:`EpisodeTask` pytree; steps come from :meth:`sample_steps`."""
        if self.static.fewshot is not None:
            raise DataError("few-shot episodes are not streams: sample_task/sample_steps need stream episodes")
        return _task_jit(self.tables, key, self.static)

    def sample_steps(self, task: "EpisodeTask", key: jax.Array, steps: int) -> tuple[jax.Array, jax.Array]:
        """``steps`` more examples of ``task``'s stream: ``xs [steps, batch, *input_shape]``, ``ys [steps, batch]``.

        Every step is an independent draw given the task, so a long lifetime can be produced in
        pieces (e.g. ``key = fold_in(lifetime_key, t)`` for the piece starting at step ``t``)."""
        if self.static.fewshot is not None:
            raise DataError("few-shot episodes are not streams: sample_task/sample_steps need stream episodes")
        return _steps_jit(self.tables, task, key, int(steps), self.static)

    def __repr__(self) -> str:
        names = "+".join(f"{d.name}:{d.split}" for d in self.config.datasets)
        return (
            f"EpisodeSampler({names}, steps={self.steps}, batch={self.batch_size}, "
            f"input_shape={self.input_shape}, num_classes={self.num_classes})"
        )


class Episodes(NamedTuple):
    """A batch of online episodes as arrays: ``xs [E, T, batch, *input_shape]`` float32,
    ``ys [E, T, batch]`` int32, labels in ``[0, num_classes)``."""

    xs: np.ndarray
    ys: np.ndarray
    num_classes: int

    @property
    def n_episodes(self) -> int:
        return int(self.xs.shape[0])

    @property
    def steps(self) -> int:
        return int(self.xs.shape[1])


def episodes_key(seed: int, config: SamplerConfig) -> jax.Array:
    """The data key of ``seed`` for ``config``'s datasets: the seed mixed with their names and
    splits, so adding a dataset to an evaluation changes no other dataset's episodes."""
    tag = "+".join(f"{d.name}:{d.split}" for d in config.datasets)
    return jax.random.fold_in(jax.random.PRNGKey(seed), zlib.crc32(tag.encode()) & 0x7FFFFFFF)


def draw_episodes(config: SamplerConfig, seed: int, n: int, sampler: "EpisodeSampler | None" = None) -> Episodes:
    """``n`` episodes of ``config`` for ``seed`` as host arrays: ``sampler.sample(episodes_key(seed, config), n)``.

    The one way evaluation, meta-testing during training, introspection and the main job draw
    their episodes: identical settings and seed give identical episodes everywhere."""
    if int(n) < 1:
        raise DataError(f"need at least one episode, got {n}")
    sampler = sampler if sampler is not None else EpisodeSampler(config)
    xs, ys = sampler.sample(episodes_key(seed, config), int(n))
    return Episodes(np.asarray(xs), np.asarray(ys), int(sampler.num_classes))


class EpisodeTask(NamedTuple):
    """Per-episode draws of a stream episode (a pytree; ``None`` fields are absent in this mode)."""

    member: jax.Array  # [] int32: mixture member
    slots: jax.Array  # [slots] int32: the member's class shown with label i
    permutation: jax.Array | None  # [D] int32 (permutation="episode")
    projection: jax.Array | None  # [D, D'] float32 (projection="episode")
    scale: jax.Array | None = None  # [] float32 input factor (input_scale)


@partial(jax.jit, static_argnums=(2, 3))
def _sample(tables: _Tables, key, num_episodes: int, static: _Static):
    return jax.vmap(lambda k: _sample_one(tables, k, static))(jax.random.split(key, num_episodes))


def _sample_one(t: _Tables, key, s: _Static):
    if s.fewshot is not None:
        return _fewshot_episode(t, key, s)
    k_task, k_steps = jax.random.split(key)
    return _steps(t, _task(t, k_task, s), k_steps, s.steps, s)


def _draw_member(t: _Tables, key, s: _Static):
    if s.members == 1:
        return jnp.int32(0)
    cdf = jnp.cumsum(jnp.exp(t.logits))  # inverse-CDF draw of the mixture member
    return jnp.minimum(jnp.searchsorted(cdf, jax.random.uniform(key) * cdf[-1], side="right"), s.members - 1).astype(
        jnp.int32
    )


def _draw_slots(t: _Tables, m, key, s: _Static):
    """The episode's classes: slot i holds the member's class shown with label i."""
    ids = jnp.arange(s.max_classes)
    u = jax.random.uniform(key, (s.max_classes,))
    if s.all_classes:
        if s.permute_classes:  # random order of the member's own classes; absent classes last
            return jnp.argsort(jnp.where(ids < t.num_classes[m], u, 2.0)).astype(jnp.int32)
        return ids.astype(jnp.int32)
    slots = jnp.argsort(jnp.where(t.count[m] > 0, u, 2.0))[: s.slots]  # random subset of eligible classes
    if not (s.permute_classes or s.fewshot):
        slots = jnp.sort(slots)
    return slots.astype(jnp.int32)


def _task(t: _Tables, key, s: _Static) -> EpisodeTask:
    k_member, k_classes, k_perm, k_proj = jax.random.split(key, 4)
    scale = None
    if s.input_scale is not None:
        lo, hi = s.input_scale
        scale = jnp.exp(jax.random.uniform(jax.random.fold_in(key, 7), minval=math.log(lo), maxval=math.log(hi)))
    m = _draw_member(t, k_member, s)
    d = int(np.prod(s.stored_shape))
    perm = proj = None
    if s.permutation == "episode":
        perm = jnp.argsort(jax.random.uniform(k_perm, (d,))).astype(jnp.int32)
    if s.projection == "episode":
        limit = math.sqrt(6.0 / (d + s.projection_dim))  # Glorot-uniform
        proj = jax.random.uniform(k_proj, (d, s.projection_dim), minval=-limit, maxval=limit)
    return EpisodeTask(m, _draw_slots(t, m, k_classes, s), perm, proj, scale)


def _steps(t: _Tables, task: EpisodeTask, key, T: int, s: _Static):
    """``T`` independent steps of ``task``: labels by class frequency (or uniform if balanced)."""
    B = s.batch
    k_labels, k_examples = jax.random.split(key)
    slot_count = t.count[task.member][task.slots]
    w = (slot_count > 0).astype(jnp.float32) if s.balanced else slot_count.astype(jnp.float32)
    cdf = jnp.cumsum(w)
    u = jax.random.uniform(k_labels, (T, B))
    labels = jnp.minimum(jnp.searchsorted(cdf, u * cdf[-1], side="right"), s.slots - 1)
    n = slot_count[labels]
    offsets = jnp.minimum(jnp.floor(jax.random.uniform(k_examples, (T, B)) * n).astype(jnp.int32), n - 1)
    return _gather(t, task, t.start[task.member][task.slots[labels]] + offsets, labels, s)


def _gather(t: _Tables, task: EpisodeTask, positions, labels, s: _Static):
    """Examples at ``positions`` (into ``t.order``) -> normalised, permuted, projected ``xs``."""
    T, B = labels.shape
    x = t.data[t.order[positions]].astype(jnp.float32) * t.scale[task.member] + t.shift[task.member]  # [T, B, *stored]
    if task.scale is not None:
        x = x * task.scale
    d = int(np.prod(s.stored_shape))
    if s.permutation != "none" or s.projection != "none" or s.flatten:
        x = x.reshape(T, B, d)
        if s.permutation != "none":
            x = x[..., t.permutation if s.permutation == "fixed" else task.permutation]
            if s.projection == "none" and not s.flatten:
                x = x.reshape(T, B, *s.stored_shape)
        if s.projection != "none":
            x = x @ (t.projection if s.projection == "fixed" else task.projection)
    return x, labels.astype(jnp.int32)


def _fewshot_episode(t: _Tables, key, s: _Static):
    """N-way K-shot: ``shots`` distinct examples per class in random order, then the queries."""
    k_task, k_examples, k_order, k_queries = jax.random.split(key, 4)
    task = _task(t, k_task, s)
    B = s.batch
    ways, shots, queries = s.fewshot
    slot_count = t.count[task.member][task.slots]
    u = jax.random.uniform(k_examples, (B, ways, s.max_count))
    r = jnp.where(jnp.arange(s.max_count) < slot_count[None, :, None], u, -1.0)
    _, picks = jax.lax.top_k(r, shots + queries)  # [B, ways, shots+queries] distinct offsets per class
    shuffle = jnp.argsort(
        jax.random.uniform(k_order, (B, ways * shots)), axis=1
    )  # random order of the labelled examples
    sup_labels = jnp.take_along_axis(
        jnp.broadcast_to(jnp.repeat(jnp.arange(ways), shots), (B, ways * shots)), shuffle, 1
    )
    sup_offsets = jnp.take_along_axis(picks[:, :, :shots].reshape(B, ways * shots), shuffle, 1)
    q_labels = jnp.minimum(jnp.floor(jax.random.uniform(k_queries, (B, queries)) * ways).astype(jnp.int32), ways - 1)
    held_back = picks[:, :, shots:].transpose(0, 2, 1)  # [B, queries, ways]
    q_offsets = jnp.take_along_axis(held_back, q_labels[:, :, None], 2)[..., 0]  # query j: j-th held-back example
    labels = jnp.concatenate([sup_labels, q_labels], 1).T  # [T, B]
    offsets = jnp.concatenate([sup_offsets, q_offsets], 1).T
    return _gather(t, task, t.start[task.member][task.slots[labels]] + offsets, labels, s)


_sample_one_jit = jax.jit(_sample_one, static_argnums=2)
_task_jit = jax.jit(_task, static_argnums=2)
_steps_jit = jax.jit(_steps, static_argnums=(3, 4))
