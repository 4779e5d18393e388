"""Antithetic evolution strategies with explicit state, as a meta-optimizer value.

    opt = AntitheticES(ESConfig(population=1024, sigma=0.05, lr=0.025))
    state = opt.init(params, key, problem)
    state, metrics = opt.step(state, key, problem)

Per iteration, ``population // 2`` noise vectors ε_i ~ N(0, I) over the flattened
meta-parameters θ; member pair i evaluates θ + σε_i and θ − σε_i, each on its **own** episode
(``episodes: member``; ``pair`` lets both members of a pair share one episode — common random
numbers, lower variance). The estimate of ∇θ E[L] is

    g = mean_i (f(L⁺_i) − f(L⁻_i)) / (2σ) · ε_i

where ``f`` is the fitness shaping function (:data:`FITNESS_SHAPING`: identity, centred ranks or
z-scores over the whole population), and Adam applies it. Noise is regenerated on the device that
evaluates a pair from its key (``fold_in``), so the population axis is sharded without
materialising or all-gathering a ``[population, D]`` matrix.

Why not ``evosax.algorithms.Open_ES``: it fits the maths (antithetic sampling, optax optimiser),
but its ``ask`` materialises the whole population ``[P, D]`` in one place and its state is a flax
struct with its own counters and schedules; writing the ~30 lines here lets the noise live with
the sharded population, lets each member draw its own episode inside the same vmap, and keeps one
optimizer state format (plain optax) for every estimator, so checkpoints and warm starts move
between them.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Annotated, Literal

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from vsml.config import ConfigError, Range, check_ranges
from vsml.meta.optimizer import MetaOptimizer, MetaState, StepMetrics, check_trainable, guarded_update
from vsml.meta.sharding import chunked_map, shard_batch


def centered_ranks(x: jax.Array) -> jax.Array:
    """``x [P]`` -> ranks scaled to [-0.5, 0.5] (ties broken by position)."""
    ranks = jnp.argsort(jnp.argsort(x)).astype(jnp.float32)
    return ranks / (x.shape[0] - 1) - 0.5


def z_scores(x: jax.Array) -> jax.Array:
    """``x [P]`` -> ``(x − mean) / std`` (std floored at 1e-8)."""
    return (x - x.mean()) / jnp.maximum(x.std(), 1e-8)


#: Fitness shaping functions ``losses [P] -> shaped [P]`` by config name.
FITNESS_SHAPING = {"none": lambda x: x, "centered_ranks": centered_ranks, "z_score": z_scores}

Shaping = Literal["none", "centered_ranks", "z_score"]


@dataclasses.dataclass(frozen=True)
class ESConfig:
    """Antithetic ES: ``population`` members (even), noise scale ``sigma``, Adam ``lr``."""

    population: Annotated[int, Range(">=2")] = 1024
    sigma: Annotated[float, Range(">0")] = 0.05
    lr: Annotated[float, Range(">0")] = 0.025
    eps: Annotated[float, Range(">0")] = 1e-8  # Adam's epsilon
    # regexes of meta-parameter paths to train (e.g. '/b$'); the rest frozen. Empty: all
    trainable: tuple[str, ...] = ()
    # steps (and ES / PES noise) in log|θ|: each entry moves by a fraction of itself, zeros stay zero
    relative: bool = False
    clip: Annotated[float, Range(">=0")] = 0.0
    fitness_shaping: Shaping | bool = "none"  # a FITNESS_SHAPING name (true/false: centered_ranks/none)
    episodes: Literal["member", "pair"] = "member"
    chunk: Annotated[int | None, Range(">=1")] = 4  # members evaluated at once per device (memory / cache); null: all

    def __post_init__(self):
        check_ranges(self, "es")
        object.__setattr__(self, "trainable", check_trainable(self.trainable, "es"))
        if isinstance(self.fitness_shaping, bool):
            object.__setattr__(self, "fitness_shaping", "centered_ranks" if self.fitness_shaping else "none")
        if self.fitness_shaping not in FITNESS_SHAPING:
            raise ConfigError(
                f"es.fitness_shaping must be one of {sorted(FITNESS_SHAPING)}, got {self.fitness_shaping!r}"
            )
        if self.population % 2:
            raise ConfigError(f"es.population must be even (antithetic pairs), got {self.population}")
        if self.episodes not in ("member", "pair"):
            raise ConfigError(f"es.episodes must be 'member' or 'pair', got {self.episodes!r}")


def pair_noise(key: jax.Array, like: jax.Array) -> jax.Array:
    """The noise vector ε of the pair with ``key`` (regenerated wherever it is needed)."""
    return jax.random.normal(jax.random.split(key, 3)[0], like.shape, like.dtype)


def antithetic_gradient(
    loss_fn, flat: jax.Array, keys: jax.Array, cfg: ESConfig, mesh, mask: jax.Array | None = None, scale=None
):
    """ES estimate of ∇ E[loss]. ``loss_fn(flat_params, key) -> (loss, acc)``; ``keys [pairs, 2]``;
    ``mask [D]`` (optional): perturb only where it is 1 (the estimate is 0 elsewhere).
    ``scale [D]`` (optional): members are ``flat ± σ·ε⊙scale`` while the estimate stays
    ``E[ΔL·ε]/2σ``: with ``scale = flat`` it is the gradient with respect to log|θ| (relative noise).

    Returns ``(grad [D], mean loss, mean accuracy, all finite)``.
    """
    keys = shard_batch(keys, mesh)
    pairs = keys.shape[0]

    def members(k):  # both members of a pair: thetas [2, D], episode keys [2, 2]
        _, k_pos, k_neg = jax.random.split(k, 3)
        eps = pair_noise(k, flat) if mask is None else pair_noise(k, flat) * mask
        if scale is not None:
            eps = eps * scale
        ks = jnp.stack([k_pos, k_pos if cfg.episodes == "pair" else k_neg])
        return jnp.stack([flat + cfg.sigma * eps, flat - cfg.sigma * eps]), ks

    # One vmap over all members (a single batched inner loop), pair-major so a device keeps its pairs.
    thetas, mkeys = jax.vmap(members)(keys)
    loss, acc = chunked_map(
        lambda a: loss_fn(*a), (thetas.reshape(2 * pairs, -1), mkeys.reshape(2 * pairs, -1)), mesh, cfg.chunk
    )
    lp, ln = loss.reshape(pairs, 2).T
    finite = jnp.all(jnp.isfinite(lp)) & jnp.all(jnp.isfinite(ln))
    shaped = FITNESS_SHAPING[cfg.fitness_shaping](jnp.concatenate([lp, ln]))
    fp, fn = shaped[:pairs], shaped[pairs:]
    coeff = shard_batch(jnp.where(finite, (fp - fn) / (2 * cfg.sigma), 0.0), mesh)
    grad = jax.vmap(lambda k, c: c * pair_noise(k, flat))(keys, coeff).mean(axis=0)
    if mask is not None:
        grad = grad * mask
    return grad, (lp.mean() + ln.mean()) / 2, acc.mean(), finite


@dataclasses.dataclass(frozen=True)
class AntitheticES(MetaOptimizer):
    """Antithetic ES on full episodes (see module docstring)."""

    config: ESConfig = ESConfig()
    section = "es"

    @property
    def parallel_size(self) -> int:
        return self.config.population // 2

    def init(self, params, key, problem) -> MetaState:
        return MetaState(params, self.optimizer.init(params), ())

    @partial(jax.jit, static_argnums=0)
    def step(self, state: MetaState, key, problem, lr=None):
        cfg = self.config
        flat, unravel = ravel_pytree(state.params)

        def loss_fn(theta, k):
            return problem.episode_loss(unravel(theta), k, remat=False)

        keys = jax.random.split(key, cfg.population // 2)
        mask = self.mask(state.params)
        fmask = None if mask is None else ravel_pytree(mask)[0]
        scale = flat if self.relative else None
        g, loss, acc, finite = antithetic_gradient(loss_fn, flat, keys, cfg, problem.mesh, fmask, scale)
        loss = jnp.where(finite, loss, jnp.nan)
        params, opt_state, gnorm, ok = guarded_update(
            self.update_rule(lr), state.params, state.opt_state, unravel(g), loss, mask=mask, relative=self.relative
        )
        return MetaState(params, opt_state, state.inner), StepMetrics(loss, acc, gnorm, ok)
