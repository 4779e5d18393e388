"""The meta-objective of SPEC §4: an episode's online cross-entropy, averaged over a meta-batch.

    loss, acc = meta_loss(learner, params, keys, sampler, task, objective)   # scalars

``ObjectiveConfig.kind``:

- ``"online"`` (default): the mean loss over all steps (rewards learning *fast*);
- ``"last"``: the mean loss over the last ``last_steps`` steps only (few-shot queries).

``truncation=k`` cuts the gradient path of the inner loop every ``k`` steps (the learner state is
passed through ``stop_gradient`` at chunk boundaries). This is *truncated* backprop through time:
it is biased — credit for what a step does to the state is only assigned within its chunk, which
favours greedy, short-horizon learning rules — but its cost per step does not grow with the
horizon's dependency length. ``None`` (default) is the exact gradient.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax
import jax.numpy as jnp

from vsml.config import ConfigError
from vsml.learners.base import EpisodeResult, OnlineLearner, TaskSpec, cross_entropy, episode


@dataclasses.dataclass(frozen=True)
class ObjectiveConfig:
    """Which steps' losses the meta-objective averages (see module docstring)."""

    kind: Literal["online", "last"] = "online"
    last_steps: int = 1
    truncation: int | None = None

    def __post_init__(self):
        if self.kind not in ("online", "last"):
            raise ConfigError(f"objective.kind must be 'online' or 'last', got {self.kind!r}")
        if self.last_steps < 1:
            raise ConfigError("objective.last_steps must be >= 1")
        if self.truncation is not None and self.truncation < 1:
            raise ConfigError("objective.truncation must be >= 1 (or null for the exact gradient)")


def _truncated_episode(learner: OnlineLearner, params, key, xs, ys, task: TaskSpec, k: int, remat: bool):
    """Like :func:`vsml.learners.base.episode` but with ``stop_gradient`` on the state every ``k`` steps."""
    T = xs.shape[0]
    state = learner.init_state(params, key, task)
    predict, update = learner.predict, learner.update
    if remat:
        predict, update = jax.checkpoint(predict), jax.checkpoint(update)

    def step(state, xy):
        x, y = xy
        state, logits = predict(params, state, x)
        state = update(params, state, x, logits, y)
        return state, (logits, cross_entropy(logits, y), (jnp.argmax(logits, -1) == y).astype(jnp.float32))

    def chunk(state, xy):
        return jax.lax.scan(step, jax.lax.stop_gradient(state), xy)

    n_full, rest = divmod(T, k)
    outs = []
    if n_full:
        xc = xs[: n_full * k].reshape(n_full, k, *xs.shape[1:])
        yc = ys[: n_full * k].reshape(n_full, k, *ys.shape[1:])
        state, out = jax.lax.scan(chunk, state, (xc, yc))
        outs.append(jax.tree_util.tree_map(lambda a: a.reshape(n_full * k, *a.shape[2:]), out))
    if rest:
        state, out = chunk(state, (xs[n_full * k :], ys[n_full * k :]))
        outs.append(out)
    logits, losses, correct = (jnp.concatenate(parts) for parts in zip(*outs))
    return state, EpisodeResult(logits, losses, correct)


def episode_result(learner, params, key, xs, ys, task: TaskSpec, objective: ObjectiveConfig, remat: bool = True):
    """One episode ``xs [T, batch, ...]`` -> :class:`EpisodeResult` (``losses [T, batch]``)."""
    if objective.truncation is not None and objective.truncation < xs.shape[0]:
        return _truncated_episode(learner, params, key, xs, ys, task, objective.truncation, remat)[1]
    return episode(learner, params, key, xs, ys, task, remat=remat)[1]


def score(result: EpisodeResult, objective: ObjectiveConfig) -> tuple[jax.Array, jax.Array]:
    """``result`` of one episode -> ``(loss, accuracy)`` scalars under ``objective``."""
    losses, correct = result.losses, result.correct
    if objective.kind == "last":
        losses, correct = losses[-objective.last_steps :], correct[-objective.last_steps :]
    return losses.mean(), correct.mean()


def episode_loss(learner, params, key, sampler, task: TaskSpec, objective: ObjectiveConfig, remat: bool = True):
    """Draw one episode from ``key`` (data and initial state) and score it: ``(loss, accuracy)``."""
    k_data, k_state = jax.random.split(key)
    xs, ys = sampler.sample_episode(k_data)
    return score(episode_result(learner, params, k_state, xs, ys, task, objective, remat), objective)


def meta_loss(learner, params, keys, sampler, task: TaskSpec, objective: ObjectiveConfig, remat: bool = True):
    """Mean ``(loss, accuracy)`` over one episode per key (``keys [E, 2]``; vmapped, shardable)."""
    loss, acc = jax.vmap(lambda k: episode_loss(learner, params, k, sampler, task, objective, remat))(keys)
    return loss.mean(), acc.mean()
