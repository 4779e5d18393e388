"""Gradient descent through the inner loop (SPEC §4): value-and-grad of the meta-loss, optax.

    opt = make_optimizer(cfg)                 # clip_by_global_norm(cfg.clip) + adam(cfg.lr)
    opt_state = opt.init(params)
    params, opt_state, m = gradient_step(learner, task, objective, cfg, mesh,
                                         params, opt_state, key, sampler)   # jitted, pure

One step draws ``cfg.meta_batch`` episodes (one key each, split over the mesh's ``batch`` axis),
runs them with rematerialised scan steps (``cfg.remat``), and applies one Adam update. A step
whose loss or gradient is not finite leaves ``params`` and ``opt_state`` unchanged and reports
``m.finite = False``.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from vsml.config import ConfigError
from vsml.meta.distributed import chunked_map, shard_batch
from vsml.meta.objective import meta_loss


@dataclasses.dataclass(frozen=True)
class GradientConfig:
    """Adam on the meta-gradient; ``clip``: global-norm clip (0 disables)."""

    lr: float = 1e-3
    clip: float = 25.0
    meta_batch: int = 128
    remat: bool = True
    b1: float = 0.9
    b2: float = 0.999
    chunk: int | None = None  # episodes differentiated at once per device; gradients averaged (memory)

    def __post_init__(self):
        if self.chunk is not None and self.chunk < 1:
            raise ConfigError("gradient.chunk must be >= 1 or null")
        if self.chunk is not None and self.meta_batch % self.chunk:
            raise ConfigError("gradient.meta_batch must be a multiple of gradient.chunk")
        if self.lr <= 0 or self.meta_batch < 1 or self.clip < 0:
            raise ConfigError("gradient: lr must be > 0, meta_batch >= 1 and clip >= 0")


class StepMetrics(NamedTuple):
    """Scalars of one meta-step (replicated)."""

    loss: jax.Array
    accuracy: jax.Array
    grad_norm: jax.Array
    finite: jax.Array


def make_optimizer(lr: float, clip: float = 0.0, b1: float = 0.9, b2: float = 0.999) -> optax.GradientTransformation:
    """``clip_by_global_norm(clip)`` (if > 0) followed by Adam."""
    parts = [optax.clip_by_global_norm(clip)] if clip > 0 else []
    return optax.chain(*parts, optax.adam(lr, b1=b1, b2=b2))


def guarded_update(optimizer, params, opt_state, grads, loss):
    """Apply ``optimizer`` unless ``loss`` or ``grads`` are non-finite. Returns (params, opt_state, norm, finite)."""
    gnorm = optax.tree.norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(gnorm)
    grads = jax.tree_util.tree_map(lambda g: jnp.where(finite, g, 0.0), grads)
    updates, new_opt = optimizer.update(grads, opt_state, params)
    new_params = optax.apply_updates(params, updates)
    keep = lambda new, old: jax.tree_util.tree_map(lambda a, b: jnp.where(finite, a, b), new, old)  # noqa: E731
    return keep(new_params, params), keep(new_opt, opt_state), gnorm, finite


@partial(jax.jit, static_argnames=("learner", "task", "objective", "cfg", "mesh"))
def gradient_step(learner, task, objective, cfg: GradientConfig, mesh, params, opt_state, key, sampler):
    """One meta-gradient step on ``cfg.meta_batch`` fresh episodes drawn from ``key``."""
    keys = jax.random.split(key, cfg.meta_batch)
    per_device = cfg.meta_batch // mesh.devices.size
    if cfg.chunk and cfg.chunk < per_device:
        # Episodes in groups of `chunk` per device: value_and_grad per group, then the mean.
        def group_grad(ks):
            fn = lambda p: meta_loss(learner, p, ks, sampler, task, objective, cfg.remat)  # noqa: E731
            return jax.value_and_grad(fn, has_aux=True)(params)

        n_groups = cfg.meta_batch // cfg.chunk
        (loss, acc), grads = chunked_map(group_grad, keys.reshape(n_groups, cfg.chunk, -1), mesh, 1)
        loss, acc, grads = loss.mean(), acc.mean(), jax.tree_util.tree_map(lambda g: g.mean(0), grads)
    else:
        keys = shard_batch(keys, mesh)
        loss_fn = lambda p: meta_loss(learner, p, keys, sampler, task, objective, cfg.remat)  # noqa: E731
        (loss, acc), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    opt = make_optimizer(cfg.lr, cfg.clip, cfg.b1, cfg.b2)
    params, opt_state, gnorm, finite = guarded_update(opt, params, opt_state, grads, loss)
    return params, opt_state, StepMetrics(loss, acc, gnorm, finite)
