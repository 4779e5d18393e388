"""The one interface every inner-loop learner implements, and the episode runner.

A learner is a hashable, immutable object (its static configuration) plus pure functions over
pytrees:

    params = learner.init_params(key)                  # meta-parameters (may be an empty dict)
    state  = learner.init_state(params, key, task)     # per-episode state ("fast weights")
    state, logits = learner.predict(params, state, x)  # x: [batch, *input_shape] -> [batch, C]
    state  = learner.update(params, state, x, logits, y)   # y: [batch] int labels in [0, C)

``predict`` never sees the label of the example it predicts, so online accuracy is an honest
test accuracy. ``update`` receives that label (and the learner's own logits) afterwards; learners
that feed the error back "next step" (VSML) only store it there.

``run_episode`` scans a whole episode (``xs: [T, batch, *input_shape]``, ``ys: [T, batch]``);
``run_episodes`` vmaps it over a leading episode axis. Both return an :class:`EpisodeResult`.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from vsml.errors import VSMLError
from vsml.kernels.dense import remat_policy
from vsml.pytree import PyTree


class InputError(VSMLError, ValueError):
    """User-supplied arrays have the wrong shape, dtype or values."""


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """Shape of an online task: one example ``x`` has ``input_shape``; labels are in [0, num_classes)."""

    input_shape: tuple[int, ...]
    num_classes: int
    batch_size: int = 1

    def __post_init__(self):
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        if not self.input_shape or any(d <= 0 for d in self.input_shape):
            raise InputError(f"input_shape must be non-empty and positive, got {self.input_shape}")
        if self.num_classes < 2:
            raise InputError(f"num_classes must be >= 2, got {self.num_classes}")
        if self.batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {self.batch_size}")


class EpisodeResult(NamedTuple):
    """Per-step outputs of an episode. Shapes: ``[..., T, batch, C]`` / ``[..., T, batch]``."""

    logits: jax.Array
    losses: jax.Array  # cross-entropy of each prediction
    correct: jax.Array  # 1.0 where argmax(logits) == y

    @property
    def online_accuracy(self) -> jax.Array:
        """Mean accuracy over steps and batch: ``[...]``."""
        return self.correct.mean(axis=(-2, -1))

    @property
    def mean_loss(self) -> jax.Array:
        return self.losses.mean(axis=(-2, -1))


class OnlineLearner:
    """Base class of inner-loop learners. Subclasses are frozen dataclasses (hashable, static)."""

    def init_params(self, key: jax.Array) -> PyTree:
        """Meta-parameters shared by all episodes (``{}`` for learners without any)."""
        return {}

    def param_shapes(self) -> PyTree:
        """The structure, shapes and dtypes of :meth:`init_params` (``jax.ShapeDtypeStruct`` leaves;
        nothing is computed): the template to restore stored parameters into."""
        return jax.eval_shape(self.init_params, jax.random.PRNGKey(0))

    def init_state(self, params: PyTree, key: jax.Array, task: TaskSpec) -> PyTree:
        """Fresh per-episode state for ``task``; randomness only from ``key``."""
        raise NotImplementedError

    def predict(self, params: PyTree, state: PyTree, x: jax.Array) -> tuple[PyTree, jax.Array]:
        """``x: [batch, *input_shape]`` -> ``(state, logits [batch, num_classes])``."""
        raise NotImplementedError

    def update(self, params, state, x, logits, y) -> PyTree:
        """Learn from the label ``y: [batch]`` of the example just predicted."""
        raise NotImplementedError

    def check_task(self, task: TaskSpec) -> None:
        """Raise :class:`InputError` when this learner cannot run ``task``."""


def cross_entropy(logits: jax.Array, y: jax.Array) -> jax.Array:
    """``logits [..., C]``, integer ``y [...]`` -> ``[...]``."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.take_along_axis(logp, y[..., None].astype(jnp.int32), axis=-1)[..., 0]


def _is_concrete(*arrays) -> bool:
    return not any(isinstance(a, jax.core.Tracer) for a in arrays)


def validate_episode(task: TaskSpec, xs, ys) -> None:
    """Check an episode's arrays against ``task`` (host side; skipped for traced arrays).

    Non-finite inputs raise :class:`InputError`. Inside a user's own ``jit`` the check cannot run:
    a NaN input then propagates to that step's logits and loss (and counts as a wrong prediction).
    """
    xs_shape, ys_shape = tuple(np.shape(xs)), tuple(np.shape(ys))
    want = (task.batch_size, *task.input_shape)
    if len(xs_shape) != len(want) + 1 or xs_shape[1:] != want:
        raise InputError(
            f"xs must have shape [T, batch, *input_shape] = [T, {', '.join(map(str, want))}], got {list(xs_shape)}"
        )
    if ys_shape != xs_shape[:2]:
        raise InputError(f"ys must have shape [T, batch] = {list(xs_shape[:2])} to match xs, got {list(ys_shape)}")
    if xs_shape[0] < 1:
        raise InputError("an episode needs at least one step")
    if _is_concrete(xs, ys):
        if not np.issubdtype(np.asarray(ys).dtype, np.integer):
            raise InputError(f"ys must hold integer class labels, got dtype {np.asarray(ys).dtype}")
        ys_np = np.asarray(ys)
        if ys_np.size and (ys_np.min() < 0 or ys_np.max() >= task.num_classes):
            raise InputError(f"labels must be in [0, {task.num_classes}), got range [{ys_np.min()}, {ys_np.max()}]")
        if not np.all(np.isfinite(np.asarray(xs))):
            raise InputError("xs contains NaN or infinite values")


def run_steps(learner: OnlineLearner, params, state, xs, ys, *, remat: bool = False, truncation: int | None = None):
    """Scan ``learner`` over steps ``xs [T, batch, ...]``, ``ys [T, batch]`` from ``state``.

    Returns ``(state, EpisodeResult)``. ``remat=True`` rematerialises each step in the backward pass
    (memory ~ one state per step). ``truncation=k`` stops gradients through the state every ``k``
    steps (truncated backprop through time: biased, but its cost does not grow with the
    dependency length); values are unchanged. This is the one episode scan of the package.
    """
    predict, update = learner.predict, learner.update
    if remat:  # the fused kernel's messages are kept (vsml.kernels.remat_policy): no second forward call
        predict = jax.checkpoint(predict, policy=remat_policy())
        update = jax.checkpoint(update, policy=remat_policy())

    def step(state, xy):
        x, y = xy
        state, logits = predict(params, state, x)
        state = update(params, state, x, logits, y)
        return state, (logits, cross_entropy(logits, y), (jnp.argmax(logits, axis=-1) == y).astype(jnp.float32))

    T = xs.shape[0]
    if truncation is None or truncation >= T:
        state, out = jax.lax.scan(step, state, (xs, ys))
        return state, EpisodeResult(*out)

    def chunk(state, xy):
        return jax.lax.scan(step, jax.lax.stop_gradient(state), xy)

    n_full, rest = divmod(T, truncation)
    outs = []
    if n_full:
        split = lambda a: a[: n_full * truncation].reshape(n_full, truncation, *a.shape[1:])  # noqa: E731
        state, out = jax.lax.scan(chunk, state, (split(xs), split(ys)))
        outs.append(jax.tree_util.tree_map(lambda a: a.reshape(n_full * truncation, *a.shape[2:]), out))
    if rest:
        state, out = chunk(state, (xs[n_full * truncation :], ys[n_full * truncation :]))
        outs.append(out)
    return state, EpisodeResult(*(jnp.concatenate(parts) for parts in zip(*outs)))


def episode(
    learner: OnlineLearner, params, key, xs, ys, task: TaskSpec, *, remat: bool = False, truncation: int | None = None
):
    """Pure, traceable episode: fresh state from ``key``, then :func:`run_steps`. Returns (state, result)."""
    state = learner.init_state(params, key, task)
    return run_steps(learner, params, state, xs, ys, remat=remat, truncation=truncation)


def task_for(xs, ys, num_classes: int) -> TaskSpec:
    """Infer the :class:`TaskSpec` of an episode ``xs [T, batch, ...]``."""
    shape = tuple(np.shape(xs))
    if len(shape) < 3:
        raise InputError(f"xs must have shape [T, batch, *input_shape], got {list(shape)}")
    return TaskSpec(input_shape=shape[2:], num_classes=num_classes, batch_size=shape[1])


@partial(jax.jit, static_argnames=("learner", "task"))
def _run_episode_jit(learner, params, key, xs, ys, task):
    return episode(learner, params, key, xs, ys, task)[1]


@partial(jax.jit, static_argnames=("learner", "task"))
def _run_episodes_jit(learner, params, keys, xs, ys, task):
    return jax.vmap(lambda k, x, y: episode(learner, params, k, x, y, task)[1])(keys, xs, ys)


def run_episode(learner: OnlineLearner, params, key, xs, ys, num_classes: int) -> EpisodeResult:
    """Run one episode (jitted). ``xs: [T, batch, *input_shape]``, ``ys: [T, batch]`` int."""
    task = task_for(xs, ys, num_classes)
    validate_episode(task, xs, ys)
    learner.check_task(task)
    return _run_episode_jit(learner, params, key, jnp.asarray(xs, jnp.float32), jnp.asarray(ys, jnp.int32), task)


def run_episodes(learner: OnlineLearner, params, keys, xs, ys, num_classes: int) -> EpisodeResult:
    """Run many episodes in parallel (vmap). ``keys: [E]``, ``xs: [E, T, batch, ...]``, ``ys: [E, T, batch]``."""
    xs_shape = tuple(np.shape(xs))
    if len(xs_shape) < 4:
        raise InputError(f"xs must have shape [episodes, T, batch, *input_shape], got {list(xs_shape)}")
    if tuple(np.shape(ys)) != xs_shape[:3]:
        raise InputError(f"ys must have shape [episodes, T, batch] = {list(xs_shape[:3])}, got {list(np.shape(ys))}")
    if np.shape(keys)[0] != xs_shape[0]:
        raise InputError(f"need one key per episode: {np.shape(keys)[0]} keys for {xs_shape[0]} episodes")
    task = TaskSpec(input_shape=xs_shape[3:], num_classes=num_classes, batch_size=xs_shape[2])
    flat = (-1, *xs_shape[2:])
    if _is_concrete(xs, ys):
        validate_episode(task, np.reshape(np.asarray(xs), flat), np.reshape(np.asarray(ys), flat[:2]))
    learner.check_task(task)
    return _run_episodes_jit(learner, params, keys, jnp.asarray(xs, jnp.float32), jnp.asarray(ys, jnp.int32), task)
