"""Meta-optimizers as values: one small protocol, several estimators behind it.

In the style of optax transformations and evosax strategies, a meta-optimizer is an immutable
object (its configuration) with two pure functions over an explicit state::

    opt = GradientDescent(GradientConfig(lr=1e-3))          # or AntitheticES(ESConfig(...)), ...
    state = opt.init(params, key, problem)                  # MetaState(params, opt_state, inner)
    state, metrics = opt.step(state, key, problem)          # one meta-iteration (jitted)
    state, metrics = opt.step(state, key, problem, lr=lr)   # ... at learning rate lr (a traced scalar)
    state = opt.restart(state, key, problem)                # the problem changed (curriculum stage)

``problem`` is a :class:`~vsml.meta.objective.MetaProblem` (learner, task, objective, sampler,
mesh). ``MetaState.inner`` holds what an estimator carries between steps — nothing for the
full-episode gradient and ES, the persistent inner-loop states for truncated estimators — and
is checkpointed with the rest, so a resumed run continues bit-identically.

The learning rate is a hyperparameter of the step, not of the compiled program: ``step(...,
lr=x)`` with ``x`` a float32 scalar array takes Adam's rate from ``x`` at run time (the optax
state is the same for every rate), so a curriculum whose stages change only the rate runs one
compiled step (:class:`~vsml.meta.trainer.MetaTrainer` always passes it). ``lr=None``: the
config's ``lr``, a constant of the program.
:class:`~vsml.meta.trainer.MetaTrainer` holds one meta-optimizer and never asks which kind it is;
:func:`vsml.meta.registry.make_meta_optimizer` maps a config's ``meta_optimizer: {name, options}`` to one.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from vsml.config import ConfigError
from vsml.pytree import PyTree


class StepMetrics(NamedTuple):
    """Scalars of one meta-step (replicated over the mesh)."""

    loss: jax.Array
    accuracy: jax.Array
    grad_norm: jax.Array
    finite: jax.Array


class MetaState(NamedTuple):
    """Everything a meta-optimizer carries from one step to the next (a pytree)."""

    params: PyTree
    opt_state: PyTree
    inner: PyTree = ()


class MetaOptimizer:
    """Base class: subclasses are frozen dataclasses holding their config (hashable, static under jit)."""

    #: the estimator's name in messages (e.g. ``gradient.trainable``)
    section: str = ""

    def init(self, params, key, problem) -> MetaState:
        """Initial state for ``params`` (host or device pytree)."""
        raise NotImplementedError

    def step(self, state: MetaState, key, problem, lr=None) -> tuple[MetaState, StepMetrics]:
        """One meta-iteration from ``key``; ``lr``: the learning rate of this step (a float32 scalar,
        may be traced; None: the config's). An estimator whose ``step`` takes no ``lr`` gets one
        meta-optimizer value per curriculum stage rate instead (a compile each)."""
        raise NotImplementedError

    def restart(self, state: MetaState, key, problem) -> MetaState:
        """The problem changed (e.g. a new curriculum stage): drop state tied to the old one."""
        return state

    @property
    def parallel_size(self) -> int:
        """Length of the axis split over devices (episodes or population pairs)."""
        raise NotImplementedError

    def mask(self, params) -> PyTree | None:
        """1.0 / 0.0 per meta-parameter entry: trained or frozen by the config's ``trainable``
        patterns (:func:`trainable_mask`); ``None`` when everything is trained."""
        return trainable_mask(params, getattr(self.config, "trainable", ()), self.section)

    @property
    def relative(self) -> bool:
        """The config's ``relative``: steps in log|θ| (:func:`guarded_update`); ES / PES then perturb
        θ ± σ·z⊙θ (each entry by a fraction σ of itself, zeros never), so their estimate
        ``E[ΔL·z]/2σ`` is the gradient with respect to log|θ| that the update takes."""
        return bool(getattr(self.config, "relative", False))

    def log_space(self, grads, params):
        """An exact gradient ``∂L/∂θ`` as what :func:`guarded_update` takes: ``∂L/∂log|θ| = θ·∂L/∂θ``
        when ``relative``, else unchanged."""
        return jax.tree_util.tree_map(jnp.multiply, grads, params) if self.relative else grads

    @property
    def optimizer(self) -> optax.GradientTransformation:
        """The update rule at the config's ``lr`` (:meth:`update_rule`)."""
        return self.update_rule()

    def update_rule(self, lr=None) -> optax.GradientTransformation:
        """The update rule: :func:`make_optimizer` from ``lr`` (None: the config's; a traced scalar
        works: Adam's state does not depend on the rate), the config's ``clip`` and, where the
        config has them, Adam's ``b1``, ``b2``, ``eps``."""
        c = self.config
        return make_optimizer(
            c.lr if lr is None else lr, c.clip, getattr(c, "b1", 0.9), getattr(c, "b2", 0.999), getattr(c, "eps", 1e-8)
        )


def make_optimizer(
    lr, clip: float = 0.0, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> optax.GradientTransformation:
    """``clip_by_global_norm(clip)`` (if > 0) followed by Adam: the update rule of every estimator.
    ``lr``: a float or a (traced) float32 scalar; the state layout is the same for both, and so are
    the updates, bit for bit (Adam's step times the rate, one multiplication either way)."""
    parts = [optax.clip_by_global_norm(clip)] if clip > 0 else []
    return optax.chain(*parts, optax.adam(lr, b1=b1, b2=b2, eps=eps))


def param_path(path) -> str:
    """A meta-parameter's key path as ``rnn/0/b`` (what ``trainable`` patterns match)."""
    parts = []
    for k in path:
        parts.append(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))))
    return "/".join(parts)


def check_trainable(patterns, section: str) -> tuple[str, ...]:
    """``patterns`` as a tuple of compiled-checked regular expressions (a :class:`ConfigError` names a bad one)."""
    out = tuple(patterns)
    for p in out:
        try:
            re.compile(p)
        except (re.error, TypeError) as e:
            raise ConfigError(f"{section}.trainable: {p!r} is not a regular expression ({e})") from None
    return out


def trainable_mask(params, patterns, section: str = "trainable") -> PyTree | None:
    """Per-leaf float mask of ``params``: 1 where the leaf's path (:func:`param_path`, e.g.
    ``rnn/0/b``) matches one of the regular expressions ``patterns`` (``re.search``), else 0.
    ``None`` for no patterns (everything trained). Patterns that match nothing raise."""
    if not patterns:
        return None
    leaves = jax.tree_util.tree_leaves_with_path(params)
    paths = [param_path(p) for p, _ in leaves]
    hit = [any(re.search(p, path) for p in patterns) for path in paths]
    if not any(hit):
        raise ConfigError(
            f"{section}.trainable {list(patterns)} matches no meta-parameter; their paths: {', '.join(paths)}"
        )
    flags = iter(hit)
    return jax.tree_util.tree_map(
        lambda x: jnp.full(jnp.shape(x), 1.0 if next(flags) else 0.0, jnp.result_type(x)), params
    )


def guarded_update(optimizer, params, opt_state, grads, loss, mask=None, relative: bool = False):
    """Apply ``optimizer`` unless ``loss`` or ``grads`` are non-finite. Returns (params, opt_state, norm, finite).
    ``mask`` (:func:`trainable_mask`): frozen entries get neither gradient nor update.

    ``relative``: ``grads`` are with respect to ``s = log|θ|`` (:meth:`MetaOptimizer.log_space`,
    :attr:`MetaOptimizer.relative`) and the optimizer's update ``u`` is applied there,
    ``θ ← θ·exp(u)``: every entry moves by a fraction of itself (Adam's rate is a relative step),
    keeps its sign, and zeros stay zero. A start whose entries span many scales (a cloned LA has
    gate biases of ~20 beside input weights of ~1e-3 and exact zeros that its circuit relies on)
    is then perturbed evenly instead of most in its smallest entries."""
    if mask is not None:
        grads = jax.tree_util.tree_map(jnp.multiply, grads, mask)
    gnorm = optax.tree.norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(gnorm)
    grads = jax.tree_util.tree_map(lambda g: jnp.where(finite, g, 0.0), grads)
    updates, new_opt = optimizer.update(grads, opt_state, params)
    if mask is not None:
        updates = jax.tree_util.tree_map(jnp.multiply, updates, mask)
    if relative:
        new_params = jax.tree_util.tree_map(lambda p, u: (p * jnp.exp(u)).astype(p.dtype), params, updates)
    else:
        new_params = optax.apply_updates(params, updates)
    keep = lambda new, old: jax.tree_util.tree_map(lambda a, b: jnp.where(finite, a, b), new, old)  # noqa: E731
    return keep(new_params, params), keep(new_opt, opt_state), gnorm, finite
