"""Online backpropagation baselines: an MLP trained by SGD or Adam on each example as it arrives.

The network (1 or 2 dense layers, hidden 160, tanh) sizes itself from the :class:`TaskSpec`
(inputs flattened, ``num_classes`` outputs). With ``conv_channels > 0`` a convolution comes first
(``conv_kernel``×``conv_kernel``, stride ``conv_stride``, the same activation, zero padding
``(k−1)//2`` before and ``k//2`` after, as VSML's ``conv_padding: same``), on ``[H, W]`` or
``[H, W, C]`` inputs; its output is flattened into the dense layers, so
``Backprop(conv_channels=4, layers=2, hidden=16)`` is conv 3×3/2, 4 channels → 16 → classes.
Weights and the optimizer state (optax) live in the per-episode learner state; fresh weights are drawn from the episode
key (truncated normal,
std 1/sqrt(fan_in), zero biases). Each step: predict with the current weights, then one gradient
step on the mean cross-entropy of that step's batch.

    learner = Backprop(optimizer="adam", lr=1e-3, layers=2)

Meta-parameters: none by default (``init_params`` returns ``{}``); with ``meta_lr=True`` the
log learning rate is a meta-parameter ``{'log_lr': []}`` (the episode is differentiable in it).

:func:`lr_sweep` picks the best learning rate on tuning episodes (which must be different from the
episodes one reports).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vsml.config import Range, check_ranges
from vsml.learners._common import dense_init, flat_dim, same_padding, trunc_normal
from vsml.learners.base import InputError, OnlineLearner, TaskSpec, cross_entropy, run_episodes

DEFAULT_LR = {"sgd": 0.01, "adam": 1e-3}


@dataclasses.dataclass(frozen=True)
class Backprop(OnlineLearner):
    """Online SGD/Adam on an MLP. ``lr=None`` means the default (SGD 0.01, Adam 1e-3)."""

    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: Annotated[float | None, Range(">0")] = None
    layers: Annotated[int, Range("[1,2]")] = 1
    hidden: Annotated[int, Range(">=1")] = 160
    activation: Literal["tanh", "relu"] = "tanh"
    momentum: Annotated[float, Range("[0,1)")] = 0.0  # SGD only
    b1: Annotated[float, Range("[0,1)")] = 0.9  # Adam only
    b2: Annotated[float, Range("[0,1)")] = 0.999
    eps: Annotated[float, Range(">0")] = 1e-8
    meta_lr: bool = False
    conv_channels: Annotated[int, Range(">=0")] = 0  # > 0: a convolution before the dense layers
    conv_kernel: Annotated[int, Range(">=1")] = 3
    conv_stride: Annotated[int, Range(">=1")] = 2

    def __post_init__(self):
        check_ranges(self, "")
        if self.optimizer not in DEFAULT_LR:
            raise ValueError(f"optimizer must be one of {sorted(DEFAULT_LR)}, got {self.optimizer!r}")
        if self.lr is None:
            object.__setattr__(self, "lr", DEFAULT_LR[self.optimizer])
        if not (isinstance(self.lr, (int, float)) and self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        object.__setattr__(self, "lr", float(self.lr))
        if self.activation not in ("tanh", "relu"):
            raise ValueError(f"activation must be 'tanh' or 'relu', got {self.activation!r}")

    # -- network -----------------------------------------------------------------------------
    def _transform(self) -> optax.GradientTransformation:
        if self.optimizer == "adam":
            return optax.scale_by_adam(b1=self.b1, b2=self.b2, eps=self.eps)
        if self.momentum > 0:
            return optax.trace(decay=self.momentum)
        return optax.identity()

    def _lr(self, params):
        if self.meta_lr:
            return jnp.exp(params["log_lr"])
        return self.lr

    def _conv_geometry(self, task: TaskSpec) -> tuple[int, int]:
        """``(C_in, output units)`` of the conv layer; :class:`InputError` for inputs it cannot take."""
        shape = task.input_shape if len(task.input_shape) == 3 else (*task.input_shape, 1)
        if len(shape) != 3:
            raise InputError(
                f"Backprop(conv_channels={self.conv_channels}) needs [H, W] or [H, W, C] inputs, got "
                f"input shape {task.input_shape} (do not flatten the episodes)"
            )
        h, w, c = shape
        s = self.conv_stride  # SAME padding (same_padding) adds k - 1 rows and columns: out = (h + k - 1 - k) // s + 1
        return c, ((h - 1) // s + 1) * ((w - 1) // s + 1) * self.conv_channels

    def forward(self, net: list[dict], x: jax.Array) -> jax.Array:
        """``x [batch, *input_shape]`` -> logits ``[batch, C]``."""
        act = jnp.tanh if self.activation == "tanh" else jax.nn.relu
        h = x.astype(jnp.float32)
        if self.conv_channels:
            conv, net = net[0], net[1:]
            img = h if h.ndim == 4 else h[..., None]
            pad = [same_padding(self.conv_kernel)] * 2
            h = jax.lax.conv_general_dilated(
                img, conv["w"], (self.conv_stride,) * 2, pad, dimension_numbers=("NHWC", "HWIO", "NHWC")
            )
            h = act(h + conv["b"])
        h = h.reshape(h.shape[0], -1)
        for i, layer in enumerate(net):
            h = h @ layer["w"] + layer["b"]
            if i < len(net) - 1:
                h = act(h)
        return h

    # -- OnlineLearner -----------------------------------------------------------------------
    def init_params(self, key):
        if self.meta_lr:
            return {"log_lr": jnp.asarray(math.log(self.lr), jnp.float32)}
        return {}

    def init_state(self, params, key, task: TaskSpec):
        """State ``{'net': [{'w','b'}, ...], 'opt': optax state}``; weights drawn from ``key``. With a conv
        layer ``net[0]`` is ``{'w': [k, k, C_in, conv_channels], 'b': [conv_channels]}`` (TN, std 1/sqrt(k·k·C_in))."""
        fan_in = flat_dim(task)
        conv = []
        if self.conv_channels:
            key, ck = jax.random.split(key)
            c, fan_in = self._conv_geometry(task)
            k = self.conv_kernel
            conv = [
                {
                    "w": trunc_normal(ck, (k, k, c, self.conv_channels), 1.0 / math.sqrt(k * k * c)),
                    "b": jnp.zeros((self.conv_channels,), jnp.float32),
                }
            ]
        sizes = [fan_in] + [self.hidden] * (self.layers - 1) + [task.num_classes]
        keys = jax.random.split(key, len(sizes) - 1)
        net = conv + [dense_init(k, a, b) for k, a, b in zip(keys, sizes[:-1], sizes[1:])]
        return {"net": net, "opt": self._transform().init(net)}

    def predict(self, params, state, x):
        return state, self.forward(state["net"], x)

    def update(self, params, state, x, logits, y):
        def loss_fn(net):
            return cross_entropy(self.forward(net, x), y).mean()

        grads = jax.grad(loss_fn)(state["net"])
        direction, opt = self._transform().update(grads, state["opt"], state["net"])
        lr = self._lr(params)
        net = jax.tree_util.tree_map(lambda w, d: w - lr * d, state["net"], direction)
        return {"net": net, "opt": opt}


def with_traced_lr(learner: Backprop, params=None) -> tuple[Backprop, dict]:
    """An equivalent ``(learner, params)`` whose learning rate is a traced meta-parameter.

    All learners that differ only in ``lr`` then share one jit compilation (``lr`` is otherwise a
    static field). ``meta_lr`` learners are returned unchanged (with their ``params``).
    """
    if learner.meta_lr:
        return learner, params if params is not None else learner.init_params(jax.random.PRNGKey(0))
    canonical = dataclasses.replace(learner, meta_lr=True, lr=DEFAULT_LR[learner.optimizer])
    return canonical, {"log_lr": jnp.asarray(math.log(learner.lr), jnp.float32)}


class LRSweep(NamedTuple):
    """Result of :func:`lr_sweep`: ``scores[i]`` is the mean metric of ``lrs[i]`` over tuning episodes."""

    best_lr: float
    lrs: tuple[float, ...]
    scores: tuple[float, ...]


DEFAULT_LRS = {
    "sgd": (0.001, 0.003, 0.01, 0.03, 0.1, 0.3),
    "adam": (1e-4, 3e-4, 1e-3, 3e-3, 1e-2),
}


def lr_sweep(
    learner: Backprop,
    xs,
    ys,
    num_classes: int,
    keys,
    lrs=None,
    metric: Literal["online_accuracy", "neg_loss"] = "online_accuracy",
) -> LRSweep:
    """Pick the learning rate with the best mean ``metric`` on tuning episodes.

    ``xs [E, T, batch, *input_shape]``, ``ys [E, T, batch]``, ``keys [E]``. Use episodes that are
    *not* the ones you report (e.g. another seed), otherwise the comparison favours backprop.
    Ties go to the smaller learning rate. Returns an :class:`LRSweep`.
    """
    if not isinstance(learner, Backprop):
        raise TypeError(f"lr_sweep needs a Backprop learner, got {type(learner).__name__}")
    lrs = tuple(float(v) for v in (lrs if lrs is not None else DEFAULT_LRS[learner.optimizer]))
    if not lrs or any(not (v > 0 and math.isfinite(v)) for v in lrs):
        raise ValueError(f"lrs must be a non-empty list of positive numbers, got {lrs}")
    if metric not in ("online_accuracy", "neg_loss"):
        raise ValueError(f"metric must be 'online_accuracy' or 'neg_loss', got {metric!r}")
    scores = []
    # The rate is passed as a (traced) meta-parameter, so the sweep compiles only once.
    for lr in lrs:
        cand, params = with_traced_lr(dataclasses.replace(learner, lr=lr, meta_lr=False))
        res = run_episodes(cand, params, keys, xs, ys, num_classes)
        value = res.online_accuracy if metric == "online_accuracy" else -res.mean_loss
        score = float(np.nanmean(np.asarray(value)))
        scores.append(score if math.isfinite(score) else -math.inf)
    order = sorted(range(len(lrs)), key=lambda i: (-scores[i], lrs[i]))
    return LRSweep(best_lr=lrs[order[0]], lrs=lrs, scores=tuple(scores))
