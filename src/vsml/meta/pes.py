"""Persistent evolution strategies (PES; Vicol, Metz & Sohl-Dickstein, ICML 2021) over long
inner-loop lifetimes, as a meta-optimizer value.

    opt = PersistentES(PESConfig(population=64, sigma=0.05, lifetime=LifetimeConfig(100, 1000, 10000)))
    state = opt.init(params, key, problem)          # particles: tasks, lifetime positions, learner states
    state, metrics = opt.step(state, key, problem)  # every lifetime advances by one truncation

Each of ``population / 2`` antithetic pairs (per task family of the problem) follows one lifetime
(:mod:`vsml.meta.persistent`):
its two members run the same examples with meta-parameters θ + σz and θ − σz, where z ~ N(0, I) is
drawn afresh every truncation, and each member keeps its own learner state from truncation to
truncation. PES accumulates the noise of the current lifetime, Z = Σ z, and estimates

    g = mean_pairs (L⁺ − L⁻) / (2σ) · Z

where L± is the member's mean online loss over this truncation. Unlike ES on truncated unrolls,
the accumulated Z credits a perturbation with its effect on every later truncation of the
lifetime, so the estimate is unbiased for the gradient of the (Gaussian-smoothed) sum of all
truncation losses — the mean online loss over whole lifetimes of thousands of steps — while each
meta-step only costs ``2 · pairs · truncation`` inner steps. Z restarts at zero with each new
lifetime. A particle whose loss turns non-finite is left out of the estimate and restarted.

Why not ``evosax``'s ``PersistentES``: its state keeps one perturbation per member but the inner
problem (learner states, tasks, lifetimes of different lengths, data drawn per truncation) has to
live outside it anyway; here the particles are part of :class:`~vsml.meta.optimizer.MetaState`
(checkpointed, so a resumed run continues bit-identically), the noise is regenerated where a pair
is evaluated (sharded population, no ``[P, D]`` all-gather), and every estimator shares one
optax optimizer state, so a run can switch estimators from a checkpoint.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Annotated, Literal, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from vsml.config import ConfigError, Range, check_ranges
from vsml.learners.base import run_steps
from vsml.meta import persistent as ps
from vsml.meta.objective import loss_scale
from vsml.meta.optimizer import MetaOptimizer, MetaState, StepMetrics, check_trainable, guarded_update
from vsml.meta.sharding import chunked_map, shard_batch, shard_leading
from vsml.pytree import PyTree


@dataclasses.dataclass(frozen=True)
class PESConfig:
    """PES: ``population`` members (even; one lifetime per antithetic pair), noise ``sigma``, Adam ``lr``.

    ``noise``: ``all`` perturbs every meta-parameter; ``support`` only those that are non-zero, so
    a sparse start (a cloned LA, whose other parameters are exactly zero) keeps its zeros and is
    not pushed off its working circuit by noise on parameters it does not use."""

    population: Annotated[int, Range(">=2")] = 64
    sigma: Annotated[float, Range(">0")] = 0.05
    lr: Annotated[float, Range(">0")] = 0.01
    eps: Annotated[float, Range(">0")] = 1e-8  # Adam's epsilon
    # regexes of meta-parameter paths to train (e.g. '/b$'); the rest frozen. Empty: all
    trainable: tuple[str, ...] = ()
    # steps (and ES / PES noise) in log|θ|: each entry moves by a fraction of itself, zeros stay zero
    relative: bool = False
    clip: Annotated[float, Range(">=0")] = 0.0
    lifetime: ps.LifetimeConfig = ps.LifetimeConfig()
    chunk: Annotated[int | None, Range(">=1")] = 8  # members unrolled at once per device (memory / cache); null: all
    noise: Literal["all", "support"] = "all"

    def __post_init__(self):
        check_ranges(self, "pes")
        object.__setattr__(self, "trainable", check_trainable(self.trainable, "pes"))
        if self.population % 2:
            raise ConfigError(f"pes.population must be even (antithetic pairs), got {self.population}")
        if self.noise not in ("all", "support"):
            raise ConfigError(f"pes.noise must be 'all' or 'support', got {self.noise!r}")


class PESInner(NamedTuple):
    particles: ps.Particles  # one per pair
    states: PyTree  # learner states [2 * pairs, ...], pair-major (+, −, +, −, ...)
    noise: jax.Array  # [pairs, D] accumulated unit noise Z of the current lifetimes


def pes_estimate(unroll, flat, states, noise, data, keys, sigma: float, mesh, chunk, mask=None, scale=None):
    """One PES estimate over ``pairs`` antithetic pairs.

    ``unroll(theta [D], state, data) -> (state, (loss, acc))`` runs one truncation; ``states``:
    member states ``[2·pairs, ...]`` (pair-major); ``noise``: accumulated ``Z [pairs, D]`` before
    this truncation; ``data``: per-pair truncation data (leading axis pairs, shared by both members);
    ``keys [pairs, 2]``: this step's noise keys; ``mask [D]`` (optional): perturb only where it is
    non-zero; ``scale [D]`` (optional): members are ``flat ± σ·z⊙scale`` while ``Z`` accumulates
    ``z`` (``scale = flat``: relative noise, the estimate is the gradient with respect to log|θ|).
    Returns ``(grad [D], Z, states, losses [2·pairs], accs [2·pairs])``; pairs with a non-finite
    loss get a zero coefficient.
    """
    keys = shard_batch(keys, mesh)
    pairs = keys.shape[0]
    z = jax.vmap(lambda k: jax.random.normal(k, flat.shape, flat.dtype))(keys)
    if mask is not None:
        z = z * mask
    total = noise + z
    dz = z if scale is None else z * scale
    thetas = jnp.stack([flat + sigma * dz, flat - sigma * dz], axis=1).reshape(2 * pairs, -1)
    data2 = jax.tree_util.tree_map(lambda a: jnp.repeat(a, 2, axis=0), data)
    states, (loss, acc) = chunked_map(lambda a: unroll(*a), (thetas, states, data2), mesh, chunk)
    lp, ln = loss.reshape(pairs, 2).T
    ok = jnp.isfinite(lp) & jnp.isfinite(ln)
    coeff = shard_batch(jnp.where(ok, (lp - ln) / (2 * sigma), 0.0), mesh)
    grad = (coeff[:, None] * total).mean(axis=0)
    return grad, total, states, loss, acc


@dataclasses.dataclass(frozen=True)
class PersistentES(MetaOptimizer):
    """PES over persistent lifetimes (see module docstring)."""

    config: PESConfig = PESConfig()
    section = "pes"

    @property
    def parallel_size(self) -> int:
        return self.config.population // 2

    def _fresh_states(self, params, keys, problem):
        """One initial learner state per pair, shared by its two members: ``[2·pairs, ...]``."""
        states = jax.vmap(lambda k: problem.learner.init_state(params, k, problem.task))(keys)
        return jax.tree_util.tree_map(lambda a: jnp.repeat(a, 2, axis=0), states)

    @partial(jax.jit, static_argnums=0)
    def _inner(self, params, key, problem) -> tuple[PESInner, ...]:
        """Fresh particles for every task family of ``problem`` (one :class:`PESInner` each)."""
        pairs = self.parallel_size
        flat, _ = ravel_pytree(params)
        out = []
        for f, fam in enumerate(problem.families()):
            k_p, k_s = jax.random.split(jax.random.fold_in(key, f))
            particles = ps.init_particles(fam.sampler, k_p, pairs, self.config.lifetime)
            out.append(
                PESInner(
                    particles,
                    self._fresh_states(params, jax.random.split(k_s, pairs), fam),
                    jnp.zeros((pairs, flat.shape[0]), flat.dtype),
                )
            )
        return tuple(shard_leading(i, fam.mesh) for i, fam in zip(out, problem.families()))

    def init(self, params, key, problem) -> MetaState:
        ps.check_stream(problem)
        return MetaState(params, self.optimizer.init(params), self._inner(params, key, problem))

    def restart(self, state: MetaState, key, problem) -> MetaState:
        ps.check_stream(problem)
        return state._replace(inner=self._inner(state.params, key, problem))

    def _family_step(self, inner: PESInner, params, key, fam):
        """One truncation of one family's lifetimes: ``(inner, grad [D], loss, acc, finite)``."""
        cfg, life = self.config, self.config.lifetime
        k_renew, k_state, k_noise = jax.random.split(key, 3)
        flat, unravel = ravel_pytree(params)
        particles, reset = ps.renew(inner.particles, fam.sampler, k_renew, life)
        fresh = self._fresh_states(params, jax.random.split(k_state, self.parallel_size), fam)
        states = ps.select(jnp.repeat(reset, 2), fresh, inner.states)
        noise = jnp.where(reset[:, None], 0.0, inner.noise)
        xs, ys = ps.truncation_data(particles, fam.sampler, life.truncation)
        ws = ps.truncation_weights(particles, fam.objective, life.truncation)
        scale = loss_scale(fam.objective, fam.task.num_classes)

        def unroll(theta, st, xyw):
            x, y, w = xyw
            st, res = run_steps(fam.learner, unravel(theta), st, x, y)
            return st, (scale * (w[:, None] * res.losses).mean(), res.correct.mean())

        keys = jax.random.split(k_noise, self.parallel_size)
        mask = (flat != 0).astype(flat.dtype) if cfg.noise == "support" else None
        trained = self.mask(params)
        if trained is not None:
            tflat = ravel_pytree(trained)[0]
            mask = tflat if mask is None else mask * tflat
        relative_to = flat if self.relative else None
        g, noise, states, loss, acc = pes_estimate(
            unroll, flat, states, noise, (xs, ys, ws), keys, cfg.sigma, fam.mesh, cfg.chunk, mask, relative_to
        )
        ok = jnp.isfinite(loss).reshape(-1, 2).all(axis=1)
        particles = ps.advance(particles, life.truncation)
        particles = particles._replace(t=jnp.where(ok, particles.t, particles.length))  # diverged: restart next step
        ok2 = jnp.repeat(ok, 2)
        n = jnp.maximum(ok2.sum(), 1)
        mean_loss = jnp.where(ok.any(), jnp.where(ok2, loss, 0.0).sum() / n, jnp.nan)
        mean_acc = jnp.where(ok2, acc, 0.0).sum() / n
        return PESInner(particles, states, noise), g, mean_loss, mean_acc

    @partial(jax.jit, static_argnums=0)
    def step(self, state: MetaState, key, problem, lr=None):
        flat, unravel = ravel_pytree(state.params)
        inners, grads, losses, accs = [], [], [], []
        for f, (inner, fam) in enumerate(zip(state.inner, problem.families())):
            inner, g, loss, acc = self._family_step(inner, state.params, jax.random.fold_in(key, f), fam)
            inners.append(inner)
            grads.append(g)
            losses.append(loss)
            accs.append(acc)
        g, loss, acc = sum(grads) / len(grads), sum(losses) / len(losses), sum(accs) / len(accs)
        params, opt_state, gnorm, finite = guarded_update(
            self.update_rule(lr),
            state.params,
            state.opt_state,
            unravel(g),
            loss,
            mask=self.mask(state.params),
            relative=self.relative,
        )
        inners = tuple(shard_leading(i, fam.mesh) for i, fam in zip(inners, problem.families()))
        return MetaState(params, opt_state, inners), StepMetrics(loss, acc, gnorm, finite)
