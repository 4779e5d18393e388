"""Small shared helpers of the baseline learners (initialisers, padding, an LSTM cell)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from vsml.learners.base import InputError, TaskSpec


def trunc_normal(key: jax.Array, shape: tuple[int, ...], std: float) -> jax.Array:
    """Truncated (±2σ) normal with standard deviation ``std`` (after truncation correction)."""
    # The std of a standard normal truncated to [-2, 2] is ~0.8796.
    return jax.random.truncated_normal(key, -2.0, 2.0, shape, jnp.float32) * (std / 0.87962566)


def dense_init(key: jax.Array, fan_in: int, fan_out: int) -> dict:
    """``{'w': [fan_in, fan_out] ~ TN(0, 1/fan_in), 'b': [fan_out] = 0}``."""
    return {"w": trunc_normal(key, (fan_in, fan_out), 1.0 / math.sqrt(fan_in)), "b": jnp.zeros((fan_out,), jnp.float32)}


def same_padding(kernel: int) -> tuple[int, int]:
    """Zero rows (and columns) added ``(before, after)`` an input for SAME convolution with a
    ``kernel``×``kernel`` window: ``(k−1)//2`` and ``k//2`` (at stride 1 exactly ``jax.lax``'s
    "SAME" padding, the extra one after for even k). At stride s the output has ``ceil(size / s)``
    positions per axis. Used by the VSML conv layers and the backprop baseline's conv layer alike."""
    return (kernel - 1) // 2, kernel // 2


def flat_dim(task: TaskSpec) -> int:
    return int(math.prod(task.input_shape))


def check_fixed_size(name: str, task: TaskSpec, input_size: int, num_outputs: int) -> None:
    """Raise :class:`InputError` when ``task`` does not fit a fixed-size learner."""
    d = flat_dim(task)
    if d > input_size:
        raise InputError(
            f"{name}: inputs of shape {task.input_shape} have {d} values, more than its input_size={input_size}; "
            f"resize the inputs (e.g. the evaluate option --resize 28) or build the learner with input_size>={d}"
        )
    if task.num_classes > num_outputs:
        raise InputError(
            f"{name}: task has {task.num_classes} classes but the learner has num_outputs={num_outputs}; "
            f"use a class subset or build it with num_outputs>={task.num_classes}"
        )


def flatten_pad(x: jax.Array, size: int) -> jax.Array:
    """``x [batch, *input_shape]`` -> ``[batch, size]`` (flattened, zero-padded at the end)."""
    flat = x.reshape(x.shape[0], -1).astype(jnp.float32)
    return jnp.pad(flat, ((0, 0), (0, size - flat.shape[1])))


def pad_last(v: jax.Array, size: int) -> jax.Array:
    """Zero-pad the last axis of ``v`` to ``size``."""
    return jnp.pad(v, [(0, 0)] * (v.ndim - 1) + [(0, size - v.shape[-1])])


def error_signal(logits: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``logits [batch, C]``, ``y [batch]`` -> ``(softmax(logits) - onehot(y), onehot(y))``, both ``[batch, C]``."""
    onehot = jax.nn.one_hot(y, logits.shape[-1], dtype=jnp.float32)
    return jax.nn.softmax(logits, axis=-1) - onehot, onehot


def lstm_init(key: jax.Array, input_size: int, hidden: int) -> dict:
    """LSTM parameters ``{'wx': [I, 4H], 'wh': [H, 4H], 'b': [4H]}`` (gate order i, f, g, o; forget bias +1)."""
    kx, kh = jax.random.split(key)
    b = jnp.zeros((4 * hidden,), jnp.float32).at[hidden : 2 * hidden].set(1.0)
    return {
        "wx": trunc_normal(kx, (input_size, 4 * hidden), 1.0 / math.sqrt(input_size)),
        "wh": trunc_normal(kh, (hidden, 4 * hidden), 1.0 / math.sqrt(hidden)),
        "b": b,
    }


def lstm_step(p: dict, h: jax.Array, c: jax.Array, inp: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One LSTM tick. ``h, c: [batch, H]``, ``inp: [batch, I]`` -> new ``(h, c)``."""
    z = inp @ p["wx"] + h @ p["wh"] + p["b"]
    i, f, g, o = jnp.split(z, 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    return h, c


def l2_normalize(v: jax.Array, axis: int = -1, eps: float = 1e-6) -> jax.Array:
    return v / jnp.sqrt(jnp.sum(v * v, axis=axis, keepdims=True) + eps)
