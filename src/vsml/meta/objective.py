"""The meta-objective: an episode's online cross-entropy, averaged over a meta-batch.

    problem = MetaProblem(learner, task, ObjectiveConfig(), sampler, mesh)
    loss, acc = problem.meta_loss(params, keys)          # scalars; keys [E, 2], one episode each

``ObjectiveConfig.kind``:

- ``"online"`` (default): the mean loss over all steps (rewards learning *fast*);
- ``"last"``: the mean loss over the last ``last_steps`` steps only (few-shot queries).

``truncation=k`` cuts the gradient path of the inner loop every ``k`` steps (the learner state is
passed through ``stop_gradient`` at chunk boundaries; see :func:`vsml.learners.base.run_steps`).
This is *truncated* backprop through time: it is biased — credit for what a step does to the
state is only assigned within its chunk, which favours greedy, short-horizon learning rules — but
its cost per step does not grow with the horizon's dependency length. ``None`` (default) is the
exact gradient.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax

from vsml.config import ConfigError
from vsml.learners.base import EpisodeResult, OnlineLearner, TaskSpec, episode


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
            raise ConfigError(f"objective.last_steps must be >= 1, got {self.last_steps}")
        if self.truncation is not None and self.truncation < 1:
            raise ConfigError(f"objective.truncation must be >= 1 (or null for the exact gradient), got {self.truncation}")


def score(result: EpisodeResult, objective: ObjectiveConfig) -> tuple[jax.Array, jax.Array]:
    """``result`` of one episode -> ``(loss, accuracy)`` scalars under ``objective``."""
    losses, correct = result.losses, result.correct
    if objective.kind == "last":
        losses, correct = losses[-objective.last_steps :], correct[-objective.last_steps :]
    return losses.mean(), correct.mean()


@jax.tree_util.register_pytree_node_class
class MetaProblem:
    """What meta-training minimises: ``learner`` on ``sampler``'s episodes of ``task`` under
    ``objective``, with the episode / population axis split over ``mesh``.

    A pytree whose only child is the sampler (its device tables); learner, task, objective and mesh
    are static, so one compiled meta-step serves every iteration of a curriculum stage.
    """

    def __init__(self, learner: OnlineLearner, task: TaskSpec, objective: ObjectiveConfig, sampler, mesh):
        self.learner, self.task, self.objective, self.sampler, self.mesh = learner, task, objective, sampler, mesh

    def tree_flatten(self):
        return (self.sampler,), (self.learner, self.task, self.objective, self.mesh)

    @classmethod
    def tree_unflatten(cls, aux, children):
        learner, task, objective, mesh = aux
        return cls(learner, task, objective, children[0], mesh)

    def episode_loss(self, params, key, remat: bool = True):
        """Draw one episode from ``key`` (data and initial state) and score it: ``(loss, accuracy)``."""
        k_data, k_state = jax.random.split(key)
        xs, ys = self.sampler.sample_episode(k_data)
        _, result = episode(self.learner, params, k_state, xs, ys, self.task, remat=remat,
                            truncation=self.objective.truncation)
        return score(result, self.objective)

    def meta_loss(self, params, keys, remat: bool = True):
        """Mean ``(loss, accuracy)`` over one episode per key (``keys [E, 2]``; vmapped, shardable)."""
        loss, acc = jax.vmap(lambda k: self.episode_loss(params, k, remat))(keys)
        return loss.mean(), acc.mean()
