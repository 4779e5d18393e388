"""Backpropagation written as a per-cell learning algorithm — the cloning target (docs/cloning.md).

Every weight w_ab of an MLP is a "cell" (a, b) that exchanges M-vectors in the VSML layout
(:mod:`vsml.learners.vsml`): forward messages carry values in channel :data:`FWD_CHANNEL` (= the
prediction channel 1), backward messages carry errors in channel :data:`BWD_CHANNEL` (= the error
channel 0). Two cell kinds, one per layer position:

- ``"linear"`` (first layer): reads its input unit from channel 0 of ``fwd_in[a]`` (the raw input
  x_a), f = identity.
- ``"tanh"`` (every later layer): reads the pre-activation z_a of the hidden unit below from
  channel 1 of ``fwd_in[a]`` and applies f = tanh itself.

A cell stores w_ab and the input it saw last (x_a). Messages and update::

    forward  (fwd_in[a], bwd_in = 0):    m_fwd[ch1] = w_ab · f(x_a)
    backward (fwd_in = 0, bwd_in[b]):    m_bwd[ch0] = w_ab · δ_b · f'(x_a)     (old w_ab)
                                         w_ab <- w_ab − α · f(x_a) · δ_b

with δ_b = channel 0 of ``bwd_in[b]``. Messages are **summed** over senders (VSML ``reduce="sum"``),
so layer k's forward output is its pre-activation Σ_a w_ab f(x_a) (+ bias) and its backward output
is ∂L/∂(pre-activation below) — exactly backprop, in the backward-pass mode of docs/vsml.md (forward
sweep, then a reverse sweep with the fresh error). :class:`ReferenceBackprop` runs it as an
:class:`~vsml.learners.base.OnlineLearner`; with ``use_bias=True`` and the same initial weights it
equals :class:`vsml.learners.backprop.Backprop` (online SGD, tanh) to float32 precision.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax
import jax.numpy as jnp

from vsml.learners._common import dense_init, flat_dim
from vsml.learners.base import InputError, OnlineLearner, TaskSpec
from vsml.learners.vsml import ERROR_CHANNEL, INPUT_CHANNEL, OUTPUT_CHANNEL

#: Channel of forward messages carrying w·f(x) (the VSML prediction channel).
FWD_CHANNEL = OUTPUT_CHANNEL
#: Channel of backward messages carrying the error (the VSML error channel).
BWD_CHANNEL = ERROR_CHANNEL

CellKind = Literal["linear", "tanh"]
CELL_KINDS: tuple[str, ...] = ("linear", "tanh")


def cell_kind_for_layer(k: int) -> CellKind:
    """Layer 0 holds ``"linear"`` cells, every later layer ``"tanh"`` cells."""
    return "linear" if k == 0 else "tanh"


def _check_kind(kind: str) -> None:
    if kind not in CELL_KINDS:
        raise ValueError(f"cell kind must be one of {CELL_KINDS}, got {kind!r}")


def cell_input(fwd_in: jax.Array, kind: CellKind) -> jax.Array:
    """The scalar a cell reads from its forward input ``[..., M]`` -> ``[...]``."""
    _check_kind(kind)
    return fwd_in[..., INPUT_CHANNEL if kind == "linear" else FWD_CHANNEL]


def activation(x: jax.Array, kind: CellKind) -> tuple[jax.Array, jax.Array]:
    """``(f(x), f'(x))`` of a cell kind (identity or tanh)."""
    _check_kind(kind)
    if kind == "linear":
        return x, jnp.ones_like(x)
    t = jnp.tanh(x)
    return t, 1.0 - t * t


def onehot_channel(value: jax.Array, channel: int, message_size: int) -> jax.Array:
    """``value [...]`` -> M-vector ``[..., M]`` with ``value`` in ``channel``, zeros elsewhere."""
    return jnp.zeros((*value.shape, message_size), value.dtype).at[..., channel].set(value)


def cell_forward(w: jax.Array, x: jax.Array, kind: CellKind, message_size: int) -> jax.Array:
    """Forward messages of cells with weights ``w`` and inputs ``x`` (broadcastable) -> ``[..., M]``."""
    fx, _ = activation(x, kind)
    return onehot_channel(w * fx, FWD_CHANNEL, message_size)


def cell_backward(w, x, delta, kind: CellKind, lr: float | jax.Array, message_size: int):
    """Backward sweep of cells: ``w, x, delta`` broadcastable ``[...]`` ->
    ``(message [..., M] = w·δ·f'(x) in channel 0, new w = w − lr·f(x)·δ)``."""
    fx, dfx = activation(x, kind)
    msg = onehot_channel(w * delta * dfx, BWD_CHANNEL, message_size)
    return msg, w - lr * fx * delta


@dataclasses.dataclass(frozen=True)
class ReferenceBackprop(OnlineLearner):
    """Online SGD on an MLP (tanh hidden layers), computed cell by cell with VSML-layout messages.

    State: ``{"w": per layer [A, B], "b": per layer [B], "x": per layer last inputs [batch, A],
    "msg_fwd"/"msg_bwd": per layer per-cell messages [batch, A, B, M] of the last sweep}``. With a
    batch, weight updates average over it (the gradient of the mean cross-entropy).
    Initial weights as :class:`~vsml.learners.backprop.Backprop` (same key -> same weights).
    """

    lr: float = 0.01
    hidden: tuple[int, ...] = ()
    use_bias: bool = True
    message_size: int = 8

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden sizes must be >= 1, got {self.hidden}")
        if self.message_size < 2:
            raise ValueError("message_size must be >= 2")

    def _sizes(self, task: TaskSpec) -> list[int]:
        return [flat_dim(task), *self.hidden, task.num_classes]

    def init_state(self, params, key, task: TaskSpec):
        sizes = self._sizes(task)
        keys = jax.random.split(key, len(sizes) - 1)
        layers = [dense_init(k, a, b) for k, a, b in zip(keys, sizes[:-1], sizes[1:])]
        m, bsz = self.message_size, task.batch_size
        return {
            "w": tuple(l["w"] for l in layers),
            "b": tuple(l["b"] for l in layers),
            "x": tuple(jnp.zeros((bsz, a), jnp.float32) for a in sizes[:-1]),
            "msg_fwd": tuple(jnp.zeros((bsz, a, b, m), jnp.float32) for a, b in zip(sizes[:-1], sizes[1:])),
            "msg_bwd": tuple(jnp.zeros((bsz, a, b, m), jnp.float32) for a, b in zip(sizes[:-1], sizes[1:])),
        }

    def predict(self, params, state, x):
        m = self.message_size
        if x.ndim < 2:
            raise InputError(f"x must have shape [batch, *input_shape], got {x.shape}")
        msg = onehot_channel(x.reshape(x.shape[0], -1).astype(jnp.float32), INPUT_CHANNEL, m)
        xs, fwds = [], []
        for k, (w, b) in enumerate(zip(state["w"], state["b"])):
            kind = cell_kind_for_layer(k)
            xin = cell_input(msg, kind)  # [batch, A]
            per_cell = cell_forward(w[None], xin[:, :, None], kind, m)  # [batch, A, B, M]
            msg = per_cell.sum(1)  # [batch, B, M]
            if self.use_bias:
                msg = msg.at[..., FWD_CHANNEL].add(b)
            xs.append(xin)
            fwds.append(per_cell)
        logits = msg[..., FWD_CHANNEL]
        return {**state, "x": tuple(xs), "msg_fwd": tuple(fwds)}, logits

    def update(self, params, state, x, logits, y):
        m = self.message_size
        err = jax.nn.softmax(logits, -1) - jax.nn.one_hot(y, logits.shape[-1], dtype=jnp.float32)
        msg = onehot_channel(err, BWD_CHANNEL, m)  # [batch, C, M]
        ws, bs, bwds = list(state["w"]), list(state["b"]), list(state["msg_bwd"])
        for k in reversed(range(len(ws))):
            kind = cell_kind_for_layer(k)
            delta = msg[..., BWD_CHANNEL]  # [batch, B]
            per_cell, w_new = cell_backward(ws[k][None], state["x"][k][:, :, None], delta[:, None, :], kind, self.lr, m)
            bwds[k] = per_cell
            # per-example new weights w − lr·f(x)·δ, averaged over the batch (mean-loss gradient)
            ws[k] = w_new.mean(0)
            if self.use_bias:
                bs[k] = bs[k] - self.lr * delta.mean(0)
            msg = per_cell.sum(2)  # [batch, A, M]
        return {**state, "w": tuple(ws), "b": tuple(bs), "msg_bwd": tuple(bwds)}
