"""The meta-objective: an episode's online cross-entropy, averaged over a meta-batch.

    problem = MetaProblem(learner, task, ObjectiveConfig(), sampler, mesh)
    loss, acc = problem.meta_loss(params, keys)          # scalars; keys [E, 2], one episode each

A problem may hold several task *families* (``task`` and ``sampler`` given as equal-length
tuples, e.g. different input sizes and class counts): every episode key then draws one episode of
each family and the loss is their mean (``normalize: true`` divides each episode's loss by
log(classes), its chance level, so families with many classes do not dominate).

``ObjectiveConfig.kind``:

- ``"online"`` (default): the mean loss over all steps (rewards learning *fast*);
- ``"last"``: the mean loss over the last ``last_steps`` steps only (few-shot queries).

``bands=(b_1, ..., b_n)`` (e.g. ``[100, 1000]``) weights the steps of an episode or lifetime so that
the mean loss over each band of steps ``[0, b_1), [b_1, b_2), ..., [b_n, T)`` counts equally,
however long each band is: a 10,000-step lifetime's first 100 steps then weigh as much as its last
9,000 (without it, long lifetimes teach only late learning and the early edge is lost; Wu et al.
2018 on short-horizon bias, and its mirror image). Bands that a shorter lifetime does not reach are
left out of its mean. The persistent estimators apply the weights of each step's position in its
lifetime (:func:`step_weights`), so the sum of the weighted truncation losses over a lifetime is
its band-balanced mean. Empty (default): every step weighs the same.

``band_share=s`` (in [0, 1], default 1) mixes the two: the objective is ``s`` × the band-balanced
mean + ``(1 - s)`` × the plain mean over steps, i.e. each step's weight is ``s · w_band + (1 - s)``.
With ``[100, 1000]`` and ``s = 0.5`` the last 9,000 steps of a 10,000-step lifetime carry 62 % of
its objective (33 % with ``s = 1``, 90 % without bands) and the first 100 steps 17 % (33 %, 1 %).

``truncation=k`` cuts the gradient path of the inner loop every ``k`` steps (the learner state is
passed through ``stop_gradient`` at chunk boundaries; see :func:`vsml.learners.base.run_steps`).
This is *truncated* backprop through time: it is biased — credit for what a step does to the
state is only assigned within its chunk, which favours greedy, short-horizon learning rules — but
its cost per step does not grow with the horizon's dependency length. ``None`` (default) is the
exact gradient.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated, Literal

import jax
import jax.numpy as jnp

from vsml.config import ConfigError, Range, check_ranges
from vsml.learners.base import EpisodeResult, OnlineLearner, TaskSpec, episode
from vsml.meta.sharding import sharded_vmap


@dataclasses.dataclass(frozen=True)
class ObjectiveConfig:
    """Which steps' losses the meta-objective averages (see module docstring)."""

    kind: Literal["online", "last"] = "online"
    last_steps: Annotated[int, Range(">=1")] = 1
    truncation: Annotated[int | None, Range(">=1")] = None
    normalize: bool = False  # divide each episode's loss by log(num_classes) (its chance level)
    # step-band boundaries: each band's mean loss counts equally (see module docstring)
    bands: Annotated[tuple[int, ...], Range(">=1")] = ()
    band_share: Annotated[float, Range("[0,1]")] = (
        1.0  # share of the band-balanced mean in the objective; the rest is the plain mean
    )

    def __post_init__(self):
        if self.kind not in ("online", "last"):
            raise ConfigError(f"objective.kind must be 'online' or 'last', got {self.kind!r}")
        check_ranges(self, "objective")
        bands = tuple(self.bands)
        if any(not isinstance(b, int) or isinstance(b, bool) or b < 1 for b in bands) or list(bands) != sorted(
            set(bands)
        ):
            raise ConfigError(
                f"objective.bands must be strictly increasing integers >= 1 (step boundaries), got {list(bands)}"
            )
        if bands and self.kind != "online":
            raise ConfigError("objective.bands weights the steps of the online loss; it needs objective.kind: online")
        if self.band_share != 1.0 and not bands:
            raise ConfigError(
                "objective.band_share mixes the band-balanced and the plain mean; it needs objective.bands"
            )
        object.__setattr__(self, "bands", bands)
        object.__setattr__(self, "band_share", float(self.band_share))


def step_weights(bands: tuple[int, ...], t0, steps: int, length, share: float = 1.0) -> jax.Array:
    """Weights ``[steps]`` of lifetime positions ``t0 .. t0 + steps - 1`` in a lifetime of ``length``
    steps (``t0``, ``length``: int scalars, may be traced) under step ``bands``: a step in band ``j``
    weighs ``length / (n · len_j)``, where ``len_j`` is how much of the band the lifetime reaches and
    ``n`` how many bands it reaches, so the mean of ``weight · loss`` over the whole lifetime is the
    mean over bands of each band's mean loss. With ``share < 1`` each weight becomes
    ``share · w + (1 - share)`` (that mean mixed with the plain mean over steps). Positions at or past
    ``length`` weigh 0."""
    if not bands:
        return jnp.ones((steps,), jnp.float32)
    t = jnp.asarray(t0) + jnp.arange(steps)
    length = jnp.asarray(length, jnp.float32)
    lo = jnp.array((0,) + tuple(bands), jnp.float32)
    hi = jnp.minimum(jnp.concatenate([lo[1:], jnp.array([jnp.inf], jnp.float32)]), length)
    reach = jnp.maximum(hi - lo, 0.0)
    n = (reach > 0).sum()
    band = jnp.searchsorted(jnp.array(bands), t, side="right")
    w = length / (n * jnp.maximum(reach[band], 1.0))
    if share != 1.0:
        w = share * w + (1.0 - share)
    return jnp.where(t < length, w, 0.0)


def score(result: EpisodeResult, objective: ObjectiveConfig) -> tuple[jax.Array, jax.Array]:
    """``result`` of one episode -> ``(loss, accuracy)`` scalars under ``objective``."""
    losses, correct = result.losses, result.correct
    if objective.bands:
        T = losses.shape[-2]
        losses = losses * step_weights(objective.bands, 0, T, T, objective.band_share)[:, None]
    if objective.kind == "last":
        losses, correct = losses[-objective.last_steps :], correct[-objective.last_steps :]
    return loss_scale(objective, result.logits.shape[-1]) * losses.mean(), correct.mean()


def loss_scale(objective: ObjectiveConfig, num_classes: int) -> float:
    """Factor applied to a loss under ``objective`` (1 / log(classes) with ``normalize``)."""
    return 1.0 / math.log(num_classes) if objective.normalize else 1.0


@jax.tree_util.register_pytree_node_class
class MetaProblem:
    """What meta-training minimises: ``learner`` on ``sampler``'s episodes of ``task`` under
    ``objective``, with the episode / population axis split over ``mesh``. ``task`` and ``sampler``
    may be equal-length tuples: one per task family (see module docstring).

    A pytree whose only children are the samplers (their device tables); learner, tasks, objective
    and mesh are static, so one compiled meta-step serves every iteration of a curriculum stage.
    """

    def __init__(self, learner: OnlineLearner, task, objective: ObjectiveConfig, sampler, mesh):
        tasks = tuple(task) if isinstance(task, (tuple, list)) else (task,)
        samplers = tuple(sampler) if isinstance(sampler, (tuple, list)) else (sampler,)
        if len(tasks) != len(samplers) or not tasks:
            raise ValueError(f"need one task per sampler, got {len(tasks)} tasks and {len(samplers)} samplers")
        self.learner, self.tasks, self.objective, self.samplers, self.mesh = learner, tasks, objective, samplers, mesh

    def tree_flatten(self):
        return (self.samplers,), (self.learner, self.tasks, self.objective, self.mesh)

    @classmethod
    def tree_unflatten(cls, aux, children):
        learner, tasks, objective, mesh = aux
        return cls(learner, tasks, objective, children[0], mesh)

    @property
    def task(self) -> TaskSpec:
        """The task of a single-family problem."""
        return self._single().tasks[0]

    @property
    def sampler(self):
        """The sampler of a single-family problem."""
        return self._single().samplers[0]

    def _single(self):
        if len(self.tasks) != 1:
            raise ValueError("this problem has several task families; iterate over problem.families()")
        return self

    def families(self) -> tuple["MetaProblem", ...]:
        """One single-family problem per task family."""
        return tuple(
            MetaProblem(self.learner, t, self.objective, s, self.mesh) for t, s in zip(self.tasks, self.samplers)
        )

    def episode_loss(self, params, key, remat: bool = True):
        """Draw one episode per family from ``key`` (data and initial state) and score them: ``(loss, accuracy)``."""
        losses, accs = [], []
        for f, (task, sampler) in enumerate(zip(self.tasks, self.samplers)):
            k_data, k_state = jax.random.split(key if f == 0 else jax.random.fold_in(key, f))
            xs, ys = sampler.sample_episode(k_data)
            _, result = episode(
                self.learner, params, k_state, xs, ys, task, remat=remat, truncation=self.objective.truncation
            )
            loss, acc = score(result, self.objective)
            losses.append(loss)
            accs.append(acc)
        return sum(losses) / len(losses), sum(accs) / len(accs)

    def meta_loss(self, params, keys, remat: bool = True):
        """Mean ``(loss, accuracy)`` over one episode per key (``keys [E, 2]``; vmapped over the mesh:
        :func:`~vsml.meta.sharding.sharded_vmap`)."""
        loss, acc = sharded_vmap(lambda k: self.episode_loss(params, k, remat), self.mesh)(keys)
        return loss.mean(), acc.mean()
