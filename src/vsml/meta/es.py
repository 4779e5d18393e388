"""Antithetic evolution strategies (SPEC §4) with explicit state, optax-style.

    opt = make_optimizer(cfg.lr, cfg.clip)          # Adam on the ES gradient estimate
    params, opt_state, m = es_step(learner, task, objective, cfg, mesh, params, opt_state, key, sampler)

Per iteration, ``cfg.population // 2`` noise vectors ε_i ~ N(0, I) over the flattened
meta-parameters θ; member pair i evaluates θ + σε_i and θ − σε_i, each on its **own** episode
(``episodes: member``; ``pair`` lets both members of a pair share one episode — common random
numbers, lower variance). The estimate of ∇θ E[L] is

    g = mean_i (L⁺_i − L⁻_i) / (2σ) · ε_i          (= (L⁺−L⁻)/(2σ²)·σε of SPEC §4)

optionally with centred-rank fitness shaping (ranks over all members mapped to [−0.5, 0.5]).
Noise is regenerated on the device that evaluates a pair from its key (``fold_in``), so the
population axis is sharded without materialising or all-gathering a [population, D] matrix.

Why not ``evosax.algorithms.Open_ES``: it fits the maths (antithetic sampling, optax optimiser),
but its ``ask`` materialises the whole population ``[P, D]`` in one place and its state is a flax
struct with its own counters and schedules; writing the ~30 lines here lets the noise live with
the sharded population, lets each member draw its own episode inside the same vmap, and keeps one
optimizer state format (plain optax) for gradient and ES runs, so checkpoints and warm starts
move between the two.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Literal

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from vsml.config import ConfigError
from vsml.meta.distributed import chunked_map, shard_batch
from vsml.meta.gradient import StepMetrics, guarded_update, make_optimizer
from vsml.meta.objective import episode_loss


@dataclasses.dataclass(frozen=True)
class ESConfig:
    """Antithetic ES: ``population`` members (even), noise scale ``sigma``, Adam ``lr``."""

    population: int = 1024
    sigma: float = 0.05
    lr: float = 0.025
    clip: float = 0.0
    fitness_shaping: bool = False
    episodes: Literal["member", "pair"] = "member"
    chunk: int | None = 4  # members evaluated at once per device (memory / cache); null: all

    def __post_init__(self):
        if self.population < 2 or self.population % 2:
            raise ConfigError(f"es.population must be even and >= 2, got {self.population}")
        if self.sigma <= 0 or self.lr <= 0:
            raise ConfigError("es.sigma and es.lr must be > 0")
        if self.chunk is not None and self.chunk < 1:
            raise ConfigError("es.chunk must be >= 1 or null")
        if self.episodes not in ("member", "pair"):
            raise ConfigError(f"es.episodes must be 'member' or 'pair', got {self.episodes!r}")


def centered_ranks(x: jax.Array) -> jax.Array:
    """Fitness shaping: ``x [P]`` -> ranks scaled to [-0.5, 0.5] (ties broken by position)."""
    ranks = jnp.argsort(jnp.argsort(x)).astype(jnp.float32)
    return ranks / (x.shape[0] - 1) - 0.5


def antithetic_gradient(loss_fn, flat: jax.Array, keys: jax.Array, cfg: ESConfig, mesh):
    """ES estimate of ∇ E[loss]. ``loss_fn(flat_params, key) -> (loss, acc)``; ``keys [pairs, 2]``.

    Returns ``(grad [D], mean loss, mean accuracy, all finite)``.
    """
    keys = shard_batch(keys, mesh)
    pairs = keys.shape[0]

    def members(k):  # both members of a pair: thetas [2, D], episode keys [2, 2]
        k_eps, k_pos, k_neg = jax.random.split(k, 3)
        eps = jax.random.normal(k_eps, flat.shape, flat.dtype)
        ks = jnp.stack([k_pos, k_pos if cfg.episodes == "pair" else k_neg])
        return jnp.stack([flat + cfg.sigma * eps, flat - cfg.sigma * eps]), ks

    # One vmap over all members (a single batched inner loop), pair-major so a device keeps its pairs.
    thetas, mkeys = jax.vmap(members)(keys)
    loss, acc = chunked_map(lambda a: loss_fn(*a), (thetas.reshape(2 * pairs, -1), mkeys.reshape(2 * pairs, -1)),
                            mesh, cfg.chunk)
    lp, ln = loss.reshape(pairs, 2).T
    acc = acc.mean()
    finite = jnp.all(jnp.isfinite(lp)) & jnp.all(jnp.isfinite(ln))
    if cfg.fitness_shaping:
        shaped = centered_ranks(jnp.concatenate([lp, ln]))
        fp, fn = shaped[: lp.shape[0]], shaped[lp.shape[0] :]
    else:
        fp, fn = lp, ln
    coeff = shard_batch(jnp.where(finite, (fp - fn) / (2 * cfg.sigma), 0.0), mesh)

    def weighted_noise(k, c):
        return c * jax.random.normal(jax.random.split(k, 3)[0], flat.shape, flat.dtype)

    grad = jax.vmap(weighted_noise)(keys, coeff).mean(axis=0)
    return grad, (lp.mean() + ln.mean()) / 2, acc, finite


@partial(jax.jit, static_argnames=("learner", "task", "objective", "cfg", "mesh"))
def es_step(learner, task, objective, cfg: ESConfig, mesh, params, opt_state, key, sampler):
    """One ES iteration: population evaluation on fresh episodes, estimate, Adam update."""
    flat, unravel = ravel_pytree(params)

    def loss_fn(theta, k):
        return episode_loss(learner, unravel(theta), k, sampler, task, objective, remat=False)

    keys = jax.random.split(key, cfg.population // 2)
    g, loss, acc, finite = antithetic_gradient(loss_fn, flat, keys, cfg, mesh)
    loss = jnp.where(finite, loss, jnp.nan)
    opt = make_optimizer(cfg.lr, cfg.clip)
    params, opt_state, gnorm, ok = guarded_update(opt, params, opt_state, unravel(g), loss)
    return params, opt_state, StepMetrics(loss, acc, gnorm, ok)
