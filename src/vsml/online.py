"""Use a learning algorithm on a stream: one example (or mini-batch) at a time.

    import vsml
    model = vsml.online("meta_mnist", input_shape=(14, 14), num_classes=10)
    logits = model.learn(x, y)        # predicts x (before seeing y), then learns from y
    probs = model.predict(x_new)      # a prediction only; the model's state is unchanged
    model.save("model.npz")           # parameters + the learner's current state
    model = vsml.OnlineModel.load("model.npz")

Any learner works the same way: a shipped LA name or saved learner (run folder, ``.npz``), or a
registered learner name with options (``vsml.online("adam", input_shape=(784,), num_classes=10,
lr=1e-3)``). ``x`` is one example ``[*input_shape]`` or a batch ``[batch_size, *input_shape]``;
``y`` an int or ``[batch_size]`` ints. Both steps are compiled once, at the first call.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from vsml import artifacts
from vsml.learners.base import InputError, OnlineLearner, TaskSpec


@partial(jax.jit, static_argnums=0)
def _learn(learner, params, state, x, y):
    state, logits = learner.predict(params, state, x)
    return learner.update(params, state, x, logits, y), logits


@partial(jax.jit, static_argnums=0)
def _predict(learner, params, state, x):
    return learner.predict(params, state, x)[1]


class OnlineModel:
    """A learner, its meta-parameters and its current state for one task (see module docstring)."""

    def __init__(self, learner: OnlineLearner, params, task: TaskSpec, *, seed: int = 0, record: dict | None = None):
        learner.check_task(task)
        self.learner, self.params, self.task, self.record = learner, params, task, record
        self.reset(seed)

    def reset(self, seed: int = 0) -> None:
        """Forget everything learned: a fresh state (new random initial "weights" from ``seed``)."""
        self.state = self.learner.init_state(self.params, jax.random.PRNGKey(seed), self.task)
        self.steps = 0

    def _batch(self, x, y=None):
        x = np.asarray(x, np.float32)
        shape = self.task.input_shape
        single = x.shape == shape
        if single:
            x = x[None]
        if x.shape != (self.task.batch_size, *shape):
            raise InputError(f"x must have shape {list(shape)} or [{self.task.batch_size}, {', '.join(map(str, shape))}], "
                             f"got {list(np.shape(x))}")
        if not np.all(np.isfinite(x)):
            raise InputError("x contains NaN or infinite values")
        if y is None:
            return jnp.asarray(x), None, single
        y = np.atleast_1d(np.asarray(y))
        if not np.issubdtype(y.dtype, np.integer) or y.shape != (self.task.batch_size,):
            raise InputError(f"y must be {self.task.batch_size} integer label(s), got {y!r}")
        if y.min() < 0 or y.max() >= self.task.num_classes:
            raise InputError(f"labels must be in [0, {self.task.num_classes}), got {y.tolist()}")
        return jnp.asarray(x), jnp.asarray(y, jnp.int32), single

    def predict(self, x) -> np.ndarray:
        """Logits ``[num_classes]`` (or ``[batch, num_classes]``) for ``x``; the state is unchanged."""
        x, _, single = self._batch(x)
        logits = np.asarray(_predict(self.learner, self.params, self.state, x))
        return logits[0] if single else logits

    def learn(self, x, y) -> np.ndarray:
        """One online step: predict ``x`` (returned: the logits made before seeing ``y``), then learn from ``y``."""
        x, y, single = self._batch(x, y)
        self.state, logits = _learn(self.learner, self.params, self.state, x, y)
        self.steps += 1
        logits = np.asarray(logits)
        return logits[0] if single else logits

    def save(self, path) -> Path:
        """Parameters, current state and task as one artifact (kind ``online``)."""
        if self.record is None:
            raise InputError("this model's learner has no stored record (built from a learner object); save its "
                             "params with vsml.artifacts yourself")
        meta = {"learner": self.record, "steps": self.steps,
                "task": {"input_shape": list(self.task.input_shape), "num_classes": self.task.num_classes,
                         "batch_size": self.task.batch_size}}
        return artifacts.save(path, "online", {"params": self.params, "state": self.state}, meta)

    @classmethod
    def load(cls, path) -> "OnlineModel":
        from vsml.learners.registry import learner_from_record

        art = artifacts.load(path, kind="online")
        t = art.meta["task"]
        learner = learner_from_record(art.meta["learner"])
        task = TaskSpec(tuple(t["input_shape"]), int(t["num_classes"]), int(t["batch_size"]))
        model = cls(learner, art.restore("params", learner.param_shapes()), task,
                    record=art.meta["learner"])
        model.state = jax.tree_util.tree_map(jnp.asarray, art.restore("state", model.state))
        model.steps = int(art.meta.get("steps", 0))
        return model


def online(learner: str, input_shape, num_classes: int, *, batch_size: int = 1, seed: int = 0,
           ignore_contract: bool = False, **options) -> OnlineModel:
    """An :class:`OnlineModel` of ``learner``: a shipped LA name, a saved learner (run folder or
    ``.npz``), or a registered learner name (``options`` are its options).

    A saved LA's input contract (:mod:`vsml.contract`, e.g. ``meta_mnist``: 14×14 grayscale,
    standardised, 196 values) is checked against ``input_shape``: a different number of input
    values raises :class:`InputError` naming the shape to use (``ignore_contract=True`` skips it).
    Preprocessing the stream itself (resize, standardise) is up to the caller."""
    from vsml.checkpoint import CheckpointError, learner_artifact, load_learner, stored_learner_record
    from vsml.learners.registry import make_learner, names

    task = TaskSpec(tuple(np.atleast_1d(input_shape).tolist()), int(num_classes), int(batch_size))
    if learner in names() and not Path(learner).exists():
        obj = make_learner(learner, options)
        record = {"name": learner, "options": dict(options)}
        return OnlineModel(obj, obj.init_params(jax.random.PRNGKey(seed)), task, seed=seed, record=record)
    if options:
        raise InputError(f"options {sorted(options)} only apply to registered learner names, not to {learner!r}")
    from vsml import contract

    try:
        art = learner_artifact(learner)
        record = stored_learner_record(art)
        obj, params = load_learner(learner)
    except CheckpointError as e:
        raise InputError(f"{learner!r} is neither a registered learner ({', '.join(names())}) nor a loadable LA: {e}") from None
    if not ignore_contract:
        try:
            contract.check_shape(contract.of_meta(art.meta, owner=str(learner)), task.input_shape)
        except contract.ContractError as e:
            raise InputError(str(e)) from None
    return OnlineModel(obj, params, task, seed=seed, record=record)
