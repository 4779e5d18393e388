"""Gradient descent through the inner loop: value-and-grad of the meta-loss, Adam (optax).

    opt = GradientDescent(GradientConfig(lr=1e-3, meta_batch=128))
    state = opt.init(params, key, problem)
    state, metrics = opt.step(state, key, problem)      # jitted, pure

One step draws ``meta_batch`` episodes (one key each, split over the mesh's ``batch`` axis), runs
them with rematerialised scan steps (``remat``), and applies one clipped Adam update. A step
whose loss or gradient is not finite leaves the state unchanged and reports ``finite = False``.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Annotated

import jax

from vsml.config import ConfigError, Range, check_ranges
from vsml.meta.optimizer import MetaOptimizer, MetaState, StepMetrics, check_trainable, guarded_update
from vsml.meta.sharding import chunked_map, shard_batch


@dataclasses.dataclass(frozen=True)
class GradientConfig:
    """Adam on the meta-gradient; ``clip``: global-norm clip (0 disables)."""

    lr: Annotated[float, Range(">0")] = 1e-3
    clip: Annotated[float, Range(">=0")] = 25.0
    meta_batch: Annotated[int, Range(">=1")] = 128
    remat: bool = True
    b1: Annotated[float, Range("[0,1)")] = 0.9
    b2: Annotated[float, Range("[0,1)")] = 0.999
    eps: Annotated[float, Range(">0")] = (
        1e-8  # Adam's epsilon (a much smaller one shortens chance plateaus: Kirsch et al. 2022)
    )
    # regexes of meta-parameter paths to train (e.g. '/b$'); the rest frozen. Empty: all
    trainable: tuple[str, ...] = ()
    # steps (and ES / PES noise) in log|θ|: each entry moves by a fraction of itself, zeros stay zero
    relative: bool = False
    chunk: Annotated[int | None, Range(">=1")] = (
        None  # episodes differentiated at once per device; gradients averaged (memory)
    )

    def __post_init__(self):
        check_ranges(self, "gradient")
        object.__setattr__(self, "trainable", check_trainable(self.trainable, "gradient"))
        if self.chunk is not None and self.meta_batch % self.chunk:
            raise ConfigError("gradient.meta_batch must be a multiple of gradient.chunk")


@dataclasses.dataclass(frozen=True)
class GradientDescent(MetaOptimizer):
    """Full-episode meta-gradient (backprop through the whole inner loop, optionally truncated by
    ``objective.truncation``) and clipped Adam."""

    config: GradientConfig = GradientConfig()
    section = "gradient"

    @property
    def parallel_size(self) -> int:
        return self.config.meta_batch

    def init(self, params, key, problem) -> MetaState:
        return MetaState(params, self.optimizer.init(params), ())

    @partial(jax.jit, static_argnums=0)
    def step(self, state: MetaState, key, problem, lr=None):
        cfg, mesh = self.config, problem.mesh
        params = state.params
        keys = jax.random.split(key, cfg.meta_batch)
        per_device = cfg.meta_batch // mesh.devices.size
        if cfg.chunk and cfg.chunk < per_device:
            # Episodes in groups of `chunk` per device: value_and_grad per group, then the mean.
            def group_grad(ks):
                return jax.value_and_grad(lambda p: problem.meta_loss(p, ks, cfg.remat), has_aux=True)(params)

            n_groups = cfg.meta_batch // cfg.chunk
            (loss, acc), grads = chunked_map(group_grad, keys.reshape(n_groups, cfg.chunk, -1), mesh, 1)
            loss, acc, grads = loss.mean(), acc.mean(), jax.tree_util.tree_map(lambda g: g.mean(0), grads)
        else:
            keys = shard_batch(keys, mesh)
            (loss, acc), grads = jax.value_and_grad(lambda p: problem.meta_loss(p, keys, cfg.remat), has_aux=True)(
                params
            )
        params, opt_state, gnorm, finite = guarded_update(
            self.update_rule(lr),
            params,
            state.opt_state,
            self.log_space(grads, params),
            loss,
            mask=self.mask(params),
            relative=self.relative,
        )
        return MetaState(params, opt_state, state.inner), StepMetrics(loss, acc, gnorm, finite)
