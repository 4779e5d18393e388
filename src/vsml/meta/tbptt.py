"""Truncated backprop through time over persistent lifetimes, as a meta-optimizer value.

    opt = TruncatedBPTT(TBPTTConfig(particles=16, lr=1e-3, lifetime=LifetimeConfig(100, 1000, 10000)))
    state = opt.init(params, key, problem)
    state, metrics = opt.step(state, key, problem)

Each particle (per task family of the problem) follows one lifetime (:mod:`vsml.meta.persistent`); a meta-step runs the
next
truncation of every lifetime from the state the previous truncation left (gradients stopped at the
boundary) and takes one Adam step on the gradient of the mean online loss of those truncations.
Cheaper than :mod:`vsml.meta.pes` per meta-step (one member per lifetime, exact gradients within a
truncation) but **biased**: what a step does to the learner state is credited only within its
truncation, so it favours short-horizon learning rules. Use it for a fast start, PES for the
lifetime objective.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Annotated, NamedTuple

import jax
import jax.numpy as jnp

from vsml.config import Range, check_ranges
from vsml.learners.base import run_steps
from vsml.meta import persistent as ps
from vsml.meta.objective import loss_scale
from vsml.meta.optimizer import MetaOptimizer, MetaState, StepMetrics, check_trainable, guarded_update
from vsml.meta.sharding import shard_batch, shard_leading, sharded_vmap
from vsml.pytree import PyTree


@dataclasses.dataclass(frozen=True)
class TBPTTConfig:
    """Truncated BPTT: ``particles`` lifetimes per meta-step, clipped Adam."""

    particles: Annotated[int, Range(">=1")] = 16
    lr: Annotated[float, Range(">0")] = 1e-3
    clip: Annotated[float, Range(">=0")] = 25.0
    b1: Annotated[float, Range("[0,1)")] = 0.9
    b2: Annotated[float, Range("[0,1)")] = 0.999
    eps: Annotated[float, Range(">0")] = (
        1e-8  # Adam's epsilon (a much smaller one shortens chance plateaus: Kirsch et al. 2022)
    )
    # regexes of meta-parameter paths to train (e.g. '/b$'); the rest frozen. Empty: all
    trainable: tuple[str, ...] = ()
    # steps (and ES / PES noise) in log|θ|: each entry moves by a fraction of itself, zeros stay zero
    relative: bool = False
    remat: bool = True
    lifetime: ps.LifetimeConfig = ps.LifetimeConfig()

    def __post_init__(self):
        check_ranges(self, "tbptt")
        object.__setattr__(self, "trainable", check_trainable(self.trainable, "tbptt"))


class TBPTTInner(NamedTuple):
    particles: ps.Particles
    states: PyTree  # learner states [particles, ...]


@dataclasses.dataclass(frozen=True)
class TruncatedBPTT(MetaOptimizer):
    """Truncated BPTT over persistent lifetimes (see module docstring)."""

    config: TBPTTConfig = TBPTTConfig()
    section = "tbptt"

    @property
    def parallel_size(self) -> int:
        return self.config.particles

    def _fresh_states(self, params, keys, problem):
        return jax.vmap(lambda k: problem.learner.init_state(params, k, problem.task))(keys)

    @partial(jax.jit, static_argnums=0)
    def _inner(self, params, key, problem) -> tuple[TBPTTInner, ...]:
        """Fresh particles for every task family of ``problem`` (one :class:`TBPTTInner` each)."""
        n, out = self.config.particles, []
        for f, fam in enumerate(problem.families()):
            k_p, k_s = jax.random.split(jax.random.fold_in(key, f))
            out.append(
                TBPTTInner(
                    ps.init_particles(fam.sampler, k_p, n, self.config.lifetime),
                    self._fresh_states(params, jax.random.split(k_s, n), fam),
                )
            )
        return tuple(shard_leading(i, fam.mesh) for i, fam in zip(out, problem.families()))

    def init(self, params, key, problem) -> MetaState:
        ps.check_stream(problem)
        return MetaState(params, self.optimizer.init(params), self._inner(params, key, problem))

    def restart(self, state: MetaState, key, problem) -> MetaState:
        ps.check_stream(problem)
        return state._replace(inner=self._inner(state.params, key, problem))

    @partial(jax.jit, static_argnums=0)
    def step(self, state: MetaState, key, problem, lr=None):
        cfg, life = self.config, self.config.lifetime
        prepared = []
        for f, (inner, fam) in enumerate(zip(state.inner, problem.families())):
            k_renew, k_state = jax.random.split(jax.random.fold_in(key, f))
            particles, reset = ps.renew(inner.particles, fam.sampler, k_renew, life)
            fresh = self._fresh_states(state.params, jax.random.split(k_state, cfg.particles), fam)
            states = jax.lax.stop_gradient(ps.select(reset, fresh, inner.states))
            xs, ys = ps.truncation_data(particles, fam.sampler, life.truncation)
            ws = ps.truncation_weights(particles, fam.objective, life.truncation)
            prepared.append((particles, shard_batch((xs, ys, ws, states), fam.mesh), fam))

        def loss_fn(params):
            losses, accs, outs = [], [], []
            for particles, (xs, ys, ws, states), fam in prepared:
                scale = loss_scale(fam.objective, fam.task.num_classes)

                def one(st, x, y, w):
                    st, res = run_steps(fam.learner, params, st, x, y, remat=cfg.remat)
                    return st, scale * (w[:, None] * res.losses).mean(), res.correct.mean()

                st, loss, acc = sharded_vmap(one, fam.mesh)(states, xs, ys, ws)
                ok = jnp.isfinite(loss)
                n = jnp.maximum(ok.sum(), 1)
                losses.append(jnp.where(ok.any(), jnp.where(ok, loss, 0.0).sum() / n, jnp.nan))
                accs.append(jnp.where(ok, acc, 0.0).sum() / n)
                outs.append((st, ok))
            return sum(losses) / len(losses), (outs, sum(accs) / len(accs))

        (loss, (outs, acc)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        inners = []
        for (particles, _, _), (states, ok) in zip(prepared, outs):
            particles = ps.advance(particles, life.truncation)
            particles = particles._replace(
                t=jnp.where(ok, particles.t, particles.length)
            )  # diverged: restart next step
            inners.append(TBPTTInner(particles, states))
        params, opt_state, gnorm, finite = guarded_update(
            self.update_rule(lr),
            state.params,
            state.opt_state,
            self.log_space(grads, state.params),
            loss,
            mask=self.mask(state.params),
            relative=self.relative,
        )
        inners = tuple(shard_leading(i, fam.mesh) for i, (_, _, fam) in zip(inners, prepared))
        return MetaState(params, opt_state, inners), StepMetrics(loss, acc, gnorm, finite)
