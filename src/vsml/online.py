"""Use a learning algorithm on a stream: any number of examples at a time.

    import vsml
    model = vsml.online("general", input_shape=(4,), classes=["iris", "lily", "rose"])
    logits = model.learn(X, y)        # predicts each row (before seeing its label), then learns from it
    model.predict_label(X_new)        # labels; model.predict_proba(X_new) probabilities, model.predict logits
    model.save("model.npz")           # parameters + the learner's current state (+ running statistics)
    model = vsml.OnlineModel.load("model.npz")

Any learner works the same way: a shipped LA name or saved learner (run folder, ``.npz``), or a
registered learner name with options (``vsml.online("adam", input_shape=(784,), num_classes=10,
lr=1e-3)``). ``x`` is one example ``[*input_shape]`` or any number of rows ``[n, *input_shape]``;
``y`` one label or ``[n]`` labels: class indices ``0..num_classes-1``, or any values when the model
was built with ``classes=[...]`` (label ``classes[i]`` is the learner's class ``i``).

**Rows and batches.** The learner steps on mini-batches of its ``batch_size`` (1 by default, one
row per step). ``learn`` splits the rows it gets into such batches and runs them in one compiled
scan; rows that do not fill a batch wait (their logits are returned now, made with the current
state) and are learned once later rows complete the batch. The scan is compiled once per
power-of-two number of batches (padded steps change nothing), so streams of any length reuse a
few compilations.

**Standardisation.** With ``standardize=True`` every input value (feature) is standardised with
its running mean and standard deviation (Welford's online algorithm; Chan, Golub & LeVeque 1979
for merging) over all the rows ``learn`` has seen, the current row included: ``(x - mean) / std``,
a feature with std 0 gives 0. ``predict`` uses the statistics as they are and never changes them.
``vsml.online`` switches it on by default for LAs whose input contract says they were
meta-trained on standardised inputs (``general``, ``meta_mnist``: :mod:`vsml.contract`), since a
stream has no dataset statistics to standardise with beforehand.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from vsml import artifacts
from vsml.learners.base import InputError, OnlineLearner, TaskSpec

# ---- running per-feature statistics (pure functions over an immutable record) ---------------


@dataclasses.dataclass(frozen=True)
class RunningStats:
    """Count, mean and sum of squared deviations (``m2``) of every input value over the rows seen."""

    count: int
    mean: np.ndarray  # float64 [*input_shape]
    m2: np.ndarray  # float64 [*input_shape]

    @classmethod
    def empty(cls, shape) -> "RunningStats":
        return cls(0, np.zeros(shape, np.float64), np.zeros(shape, np.float64))

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / max(self.count, 1))


def _scaled(x: np.ndarray, mean: np.ndarray, m2: np.ndarray, count) -> np.ndarray:
    std = np.sqrt(np.maximum(m2, 0.0) / np.maximum(count, 1))
    ok = std > 1e-12 * np.maximum(1.0, np.abs(mean))
    return np.where(ok, (x - mean) / np.where(ok, std, 1.0), 0.0).astype(np.float32)


def running_standardize(stats: RunningStats, x: np.ndarray) -> tuple[RunningStats, np.ndarray]:
    """``x`` ``[n, *shape]`` standardised row by row with the statistics of all rows so far (row
    ``i`` included), and the statistics after all ``n`` rows. Sums are taken relative to the old
    mean (or the first row) in float64, so long streams keep their precision."""
    x64 = np.asarray(x, np.float64)
    n = len(x64)
    if n == 0:
        return stats, np.asarray(x, np.float32)
    shift = stats.mean if stats.count else x64[0]
    d = x64 - shift
    counts = stats.count + np.arange(1, n + 1, dtype=np.float64).reshape((n,) + (1,) * (x64.ndim - 1))
    s1, s2 = np.cumsum(d, axis=0), np.cumsum(d * d, axis=0)
    means = shift + s1 / counts
    m2s = stats.m2 + s2 - s1 * s1 / counts  # (zero m2 when nothing was seen before)
    out = _scaled(x64, means, m2s, counts)
    return RunningStats(stats.count + n, means[-1], np.maximum(m2s[-1], 0.0)), out


def standardize_with(stats: RunningStats, x: np.ndarray) -> np.ndarray:
    """``x`` ``[n, *shape]`` standardised with fixed statistics (what ``predict`` uses)."""
    if not stats.count:
        return np.zeros(np.shape(x), np.float32)
    return _scaled(np.asarray(x, np.float64), stats.mean, stats.m2, stats.count)


# ---- compiled steps ---------------------------------------------------------------------------


def _bucket(k: int) -> int:
    """The padded number of steps: the next power of two (one compilation per size class)."""
    return 1 << max(0, int(k) - 1).bit_length()


@partial(jax.jit, static_argnums=0)
def _learn_steps(learner, params, state, xs, ys, live):
    """``xs`` ``[K, batch, *shape]``: K online steps (predict, then update) in one scan; steps with
    ``live`` False leave the state as it was (padding)."""

    def step(state, inp):
        x, y, keep = inp
        new, logits = learner.predict(params, state, x)
        new = learner.update(params, new, x, logits, y)
        state = jax.tree_util.tree_map(lambda a, b: jnp.where(keep, a, b), new, state)
        return state, logits

    return jax.lax.scan(step, state, (xs, ys, live))


@partial(jax.jit, static_argnums=0)
def _predict_steps(learner, params, state, xs):
    """``xs`` ``[K, batch, *shape]``: logits of every batch with the same state."""
    return jax.lax.map(lambda x: learner.predict(params, state, x)[1], xs)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _plain(value):
    """A JSON-able Python scalar for a label (numpy scalars -> Python)."""
    return value.item() if isinstance(value, np.generic) else value


class OnlineModel:
    """A learner, its meta-parameters and its current state for one task (see module docstring).

    ``classes``: the labels ``learn`` takes and ``predict_label`` returns (``classes[i]`` is the
    learner's class ``i``); None: class indices. ``standardize``: running per-feature
    standardisation of the inputs (module docstring)."""

    def __init__(
        self,
        learner: OnlineLearner,
        params,
        task: TaskSpec,
        *,
        seed: int = 0,
        record: dict | None = None,
        classes=None,
        standardize: bool = False,
    ):
        learner.check_task(task)
        if classes is not None:
            classes = tuple(
                _plain(c) for c in (classes if isinstance(classes, (list, tuple)) else np.asarray(classes).tolist())
            )
            if len(classes) != task.num_classes:
                raise InputError(f"{len(classes)} classes given for a task of {task.num_classes} classes")
            if len(set(classes)) != len(classes):
                raise InputError(f"classes must be distinct, got {list(classes)}")
        self.learner, self.params, self.task, self.record = learner, params, task, record
        self.classes, self.standardize = classes, bool(standardize)
        self._index = {c: i for i, c in enumerate(classes)} if classes is not None else None
        self.reset(seed)

    def reset(self, seed: int = 0) -> None:
        """Forget everything learned: a fresh state (new random initial "weights" from ``seed``),
        fresh running statistics, no waiting rows."""
        self.state = self.learner.init_state(self.params, jax.random.PRNGKey(seed), self.task)
        self.steps = 0
        self.stats = RunningStats.empty(self.task.input_shape)
        shape = self.task.input_shape
        self._pending = (np.zeros((0, *shape), np.float32), np.zeros((0,), np.int32))

    @property
    def pending(self) -> int:
        """Rows received but not yet learned (they wait for a full batch)."""
        return len(self._pending[0])

    # ---- input checks

    def _rows(self, x) -> tuple[np.ndarray, bool]:
        try:
            x = np.asarray(x, np.float32)
        except (TypeError, ValueError) as e:
            raise InputError(
                f"x must be numbers of shape {list(self.task.input_shape)} or [n, "
                f"{', '.join(map(str, self.task.input_shape))}] ({e})"
            ) from None
        shape = self.task.input_shape
        single = x.shape == shape
        if single:
            x = x[None]
        if x.shape[1:] != shape or x.ndim != len(shape) + 1:
            raise InputError(
                f"x must have shape {list(shape)} or [n, {', '.join(map(str, shape))}], got {list(np.shape(x))}"
            )
        if not np.all(np.isfinite(x)):
            raise InputError("x contains NaN or infinite values")
        return x, single

    def _labels(self, y, n: int) -> np.ndarray:
        y = np.asarray(y)
        y = y.reshape(1) if y.ndim == 0 else y
        if y.shape != (n,):
            raise InputError(f"y must hold {n} label(s), one per row of x, got shape {list(y.shape)}")
        if self._index is not None:
            out = np.empty(n, np.int32)
            for i, v in enumerate(y.tolist()):
                j = self._index.get(v)
                if j is None:
                    raise InputError(f"label {v!r} is not one of this model's classes {list(self.classes)}")
                out[i] = j
            return out
        if not np.issubdtype(y.dtype, np.integer):
            raise InputError(f"y must be integer class indices (or build the model with classes=[...]), got {y!r}")
        if n and (y.min() < 0 or y.max() >= self.task.num_classes):
            raise InputError(f"labels must be in [0, {self.task.num_classes}), got {y.tolist()}")
        return y.astype(np.int32)

    def _logits_of(self, x: np.ndarray) -> np.ndarray:
        """Logits of prepared rows ``x`` ``[n, *shape]`` with the current state (state unchanged)."""
        b, n = self.task.batch_size, len(x)
        if n == 0:
            return np.zeros((0, self.task.num_classes), np.float32)
        k = -(-n // b)
        padded = np.zeros((_bucket(k) * b, *x.shape[1:]), np.float32)
        padded[:n] = x
        logits = _predict_steps(self.learner, self.params, self.state, jnp.asarray(padded.reshape(-1, b, *x.shape[1:])))
        return np.asarray(logits).reshape(-1, self.task.num_classes)[:n]

    # ---- the API

    def predict(self, x) -> np.ndarray:
        """Logits ``[num_classes]`` (or ``[n, num_classes]``) for ``x``; the state is unchanged."""
        x, single = self._rows(x)
        if self.standardize:
            x = standardize_with(self.stats, x)
        logits = self._logits_of(x)
        return logits[0] if single else logits

    def predict_proba(self, x) -> np.ndarray:
        """Class probabilities (softmax of the logits), ``[num_classes]`` or ``[n, num_classes]``."""
        return _softmax(self.predict(x).astype(np.float64))

    def predict_label(self, x):
        """The most probable label of each row (one of ``classes``, or a class index)."""
        index = np.argmax(self.predict(x), axis=-1)
        if self.classes is None:
            return index
        return np.asarray(self.classes, dtype=object if any(isinstance(c, str) for c in self.classes) else None)[index]

    def learn(self, x, y) -> np.ndarray:
        """Online steps on the rows of ``x``: each row is predicted (returned: logits made before
        its label is seen), then learned from its label ``y``."""
        x, single = self._rows(x)
        labels = self._labels(y, len(x))
        if self.standardize:
            self.stats, x = running_standardize(self.stats, x)
        b, shape = self.task.batch_size, self.task.input_shape
        px, py = self._pending
        allx, ally = np.concatenate([px, x]), np.concatenate([py, labels])
        k = len(allx) // b
        logits = np.zeros((len(allx), self.task.num_classes), np.float32)
        if k:
            kk = _bucket(k)
            xs = np.zeros((kk * b, *shape), np.float32)
            ys = np.zeros((kk * b,), np.int32)
            xs[: k * b], ys[: k * b] = allx[: k * b], ally[: k * b]
            live = np.arange(kk) < k
            self.state, out = _learn_steps(
                self.learner,
                self.params,
                self.state,
                jnp.asarray(xs.reshape(kk, b, *shape)),
                jnp.asarray(ys.reshape(kk, b)),
                jnp.asarray(live),
            )
            logits[: k * b] = np.asarray(out).reshape(-1, self.task.num_classes)[: k * b]
            self.steps += k
        rest = allx[k * b :]
        logits[k * b :] = self._logits_of(rest)
        self._pending = (rest, ally[k * b :])
        logits = logits[len(px) :]
        return logits[0] if single else logits

    # ---- persistence

    def save(self, path) -> Path:
        """Parameters, current state, running statistics, waiting rows and task as one artifact (kind ``online``)."""
        if self.record is None:
            raise InputError(
                "this model's learner has no stored record (built from a learner object); save its "
                "params with vsml.artifacts yourself"
            )
        meta = {
            "learner": self.record,
            "steps": self.steps,
            "task": {
                "input_shape": list(self.task.input_shape),
                "num_classes": self.task.num_classes,
                "batch_size": self.task.batch_size,
            },
            "classes": list(self.classes) if self.classes is not None else None,
            "standardize": self.standardize,
            "stats_count": self.stats.count,
        }
        groups = {
            "params": self.params,
            "state": self.state,
            "stats": {"mean": self.stats.mean, "m2": self.stats.m2},
            "pending": {"x": self._pending[0], "y": self._pending[1]},
        }
        return artifacts.save(path, "online", groups, meta)

    @classmethod
    def load(cls, path) -> "OnlineModel":
        from vsml.learners.registry import learner_from_record

        art = artifacts.load(path, kind="online")
        t = art.meta["task"]
        learner = learner_from_record(art.meta["learner"])
        task = TaskSpec(tuple(t["input_shape"]), int(t["num_classes"]), int(t["batch_size"]))
        model = cls(
            learner,
            art.restore("params", learner.param_shapes()),
            task,
            record=art.meta["learner"],
            classes=art.meta.get("classes"),
            standardize=bool(art.meta.get("standardize", False)),
        )
        model.state = jax.tree_util.tree_map(jnp.asarray, art.restore("state", model.state))
        model.steps = int(art.meta.get("steps", 0))
        if "stats" in art.groups:  # written by versions with standardisation
            s = art.restore("stats", {"mean": model.stats.mean, "m2": model.stats.m2})
            model.stats = RunningStats(
                int(art.meta.get("stats_count", 0)), np.asarray(s["mean"], np.float64), np.asarray(s["m2"], np.float64)
            )
        if "pending" in art.groups:
            px, py = art.leaves("pending")  # the rows waiting for a full batch: {"x", "y"} in key order
            model._pending = (np.asarray(px, np.float32).reshape(-1, *task.input_shape), np.asarray(py, np.int32))
        return model


def online(
    learner: str,
    input_shape,
    num_classes: int | None = None,
    *,
    classes=None,
    batch_size: int = 1,
    seed: int = 0,
    standardize: bool | None = None,
    ignore_contract: bool = False,
    **options,
) -> OnlineModel:
    """An :class:`OnlineModel` of ``learner``: a shipped LA name, a saved learner (run folder or
    ``.npz``), or a registered learner name (``options`` are its options).

    ``classes``: the labels of the stream (any hashable values; ``num_classes`` is then their number),
    else labels are ``0..num_classes-1``. ``standardize``: running per-feature standardisation of the
    inputs (module docstring); None (default) applies the LA's input contract: on when it says the
    LA was meta-trained on standardised inputs, off for learners without a contract.

    A saved LA's input contract (:mod:`vsml.contract`, e.g. ``meta_mnist``: 14×14 grayscale,
    standardised, 196 values) is checked against ``input_shape``: a different number of input
    values raises :class:`InputError` naming the shape to use (``ignore_contract=True`` skips it,
    and the contract's standardisation default with it). Resizing images is up to the caller."""
    from vsml.checkpoint import CheckpointError, learner_artifact, load_learner, stored_learner_record
    from vsml.learners.registry import make_learner, names

    if classes is not None:
        ncls = len(np.asarray(classes, dtype=object).reshape(-1))
        if num_classes is not None and int(num_classes) != ncls:
            raise InputError(f"num_classes={num_classes} but {ncls} classes given; pass one of them")
        num_classes = ncls
    if num_classes is None:
        raise InputError("pass num_classes (labels 0..num_classes-1) or classes=[...] (any labels)")
    task = TaskSpec(tuple(np.atleast_1d(input_shape).tolist()), int(num_classes), int(batch_size))
    if learner in names() and not Path(learner).exists():
        obj = make_learner(learner, options)
        record = {"name": learner, "options": dict(options)}
        return OnlineModel(
            obj,
            obj.init_params(jax.random.PRNGKey(seed)),
            task,
            seed=seed,
            record=record,
            classes=classes,
            standardize=bool(standardize),
        )
    if options:
        raise InputError(f"options {sorted(options)} only apply to registered learner names, not to {learner!r}")
    from vsml import contract

    try:
        art = learner_artifact(learner)
        record = stored_learner_record(art)
        obj, params = load_learner(learner)
    except CheckpointError as e:
        raise InputError(
            f"{learner!r} is neither a registered learner ({', '.join(names())}) nor a loadable LA: {e}"
        ) from None
    wanted = None
    if not ignore_contract:
        rule = contract.of_meta(art.meta, owner=str(learner))
        try:
            contract.check_shape(rule, task.input_shape)
        except contract.ContractError as e:
            raise InputError(str(e)) from None
        wanted = rule.normalize if rule is not None else None
    if standardize is None:
        standardize = bool(wanted)
    return OnlineModel(obj, params, task, seed=seed, record=record, classes=classes, standardize=standardize)
