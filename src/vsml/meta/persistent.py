"""Persistent inner loops for long-horizon meta-training: lifetimes of thousands of steps, unrolled
a truncation at a time.

A *particle* is one inner-loop lifetime in progress: its task (dataset member, classes, projection,
... — an :class:`~vsml.data.episodes.EpisodeTask`), its lifetime key (the examples of the
truncation starting at step ``t`` are ``sampler.sample_steps(task, fold_in(key, t), K)``), its
position ``t`` and length, and the learner state(s) it has reached. Each meta-step advances every
particle by one truncation of ``K`` steps; a particle whose lifetime is over first starts a new one
(new task, fresh learner state, new length drawn log-uniformly in ``[min_length, max_length]`` and
rounded up to a multiple of ``K``), so the learner cannot exploit a fixed horizon. The first
lifetimes are cut at a random truncation so that particles do not all restart together.

Estimators built on this: :class:`vsml.meta.pes.PersistentES` (unbiased over the whole lifetime)
and :class:`vsml.meta.tbptt.TruncatedBPTT` (cheaper, biased).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated, NamedTuple

import jax
import jax.numpy as jnp

from vsml.config import ConfigError, Range, check_ranges
from vsml.meta.objective import step_weights
from vsml.pytree import PyTree


@dataclasses.dataclass(frozen=True)
class LifetimeConfig:
    """Inner-loop lifetimes: ``truncation`` steps per meta-step, lengths log-uniform in [min_length, max_length]."""

    truncation: Annotated[int, Range(">=1")] = 100
    min_length: Annotated[int, Range(">=1")] = 1000
    max_length: Annotated[int, Range(">=1")] = 10000

    def __post_init__(self):
        check_ranges(self, "lifetime")
        if not self.truncation <= self.min_length <= self.max_length:
            raise ConfigError(
                "lifetime lengths must satisfy truncation <= min_length <= max_length, got "
                f"{self.truncation}, {self.min_length}, {self.max_length}"
            )


class Particles(NamedTuple):
    """Particle bookkeeping (leading axis: particle). Learner states are kept by the estimator."""

    task: PyTree  # EpisodeTask, batched
    key: jax.Array  # [P, 2] lifetime keys
    t: jax.Array  # [P] int32 steps done in the current lifetime
    length: jax.Array  # [P] int32 lifetime length (a multiple of the truncation)


def _length(key, cfg: LifetimeConfig) -> jax.Array:
    lo, hi = math.log(cfg.min_length), math.log(cfg.max_length)
    raw = jnp.exp(jax.random.uniform(key, minval=lo, maxval=hi))
    k = cfg.truncation
    return (jnp.ceil(raw / k) * k).astype(jnp.int32)


def new_lifetime(sampler, key, cfg: LifetimeConfig) -> tuple[PyTree, jax.Array, jax.Array]:
    """``(task, lifetime key, length)`` of a fresh lifetime drawn from ``key``."""
    k_task, k_life, k_len = jax.random.split(key, 3)
    return sampler.sample_task(k_task), k_life, _length(k_len, cfg)


def init_particles(sampler, key, n: int, cfg: LifetimeConfig) -> Particles:
    """``n`` fresh particles; the first lifetimes are cut at a random truncation (staggered restarts)."""
    keys = jax.random.split(key, n + 1)
    task, life, length = jax.vmap(lambda k: new_lifetime(sampler, k, cfg))(keys[1:])
    done = jax.random.randint(keys[0], (n,), 0, length // cfg.truncation) * cfg.truncation  # already "lived"
    return Particles(task, life, done.astype(jnp.int32), length)


def renew(particles: Particles, sampler, key, cfg: LifetimeConfig) -> tuple[Particles, jax.Array]:
    """Start new lifetimes for the particles whose lifetime is over. Returns ``(particles, reset [P] bool)``."""
    n = particles.t.shape[0]
    reset = particles.t >= particles.length
    task, life, length = jax.vmap(lambda k: new_lifetime(sampler, k, cfg))(jax.random.split(key, n))
    pick = lambda new, old: select(reset, new, old)  # noqa: E731
    out = Particles(
        pick(task, particles.task),
        pick(life, particles.key),
        jnp.where(reset, 0, particles.t),
        jnp.where(reset, length, particles.length),
    )
    return out, reset


def select(mask: jax.Array, new: PyTree, old: PyTree) -> PyTree:
    """Per-particle choice: ``new`` where ``mask [P]`` is true, else ``old`` (any pytree, leading axis P)."""

    def one(a, b):
        return jnp.where(mask.reshape((-1,) + (1,) * (a.ndim - 1)), a, b)

    return jax.tree_util.tree_map(one, new, old)


def truncation_data(particles: Particles, sampler, steps: int):
    """The next ``steps`` examples of every particle: ``xs [P, steps, batch, ...]``, ``ys [P, steps, batch]``."""

    def one(task, key, t):
        return sampler.sample_steps(task, jax.random.fold_in(key, t), steps)

    return jax.vmap(one)(particles.task, particles.key, particles.t)


def truncation_weights(particles: Particles, objective, steps: int) -> jax.Array:
    """Step weights ``[P, steps]`` of every particle's next truncation under ``objective.bands``
    (:func:`vsml.meta.objective.step_weights` at the particle's lifetime position; all ones without bands)."""
    return jax.vmap(lambda t, n: step_weights(objective.bands, t, steps, n, objective.band_share))(
        particles.t, particles.length
    )


def advance(particles: Particles, steps: int) -> Particles:
    return particles._replace(t=particles.t + steps)


def check_stream(problem) -> None:
    """Persistent estimators need stream episodes and the mean online loss."""
    if any(s.static.fewshot is not None for s in problem.samplers):
        raise ConfigError("persistent estimators (pes, tbptt) need stream episodes; few-shot episodes have no lifetime")
    if problem.objective.kind != "online":
        raise ConfigError("persistent estimators (pes, tbptt) optimise the mean online loss (objective.kind: online)")
