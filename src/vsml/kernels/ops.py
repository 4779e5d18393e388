"""The VSML layer primitives in plain JAX, shared by the XLA kernels (:mod:`vsml.learners.vsml`)
and the fused kernel's JAX side (:mod:`vsml.kernels.dense`).

The LSTM nonlinearity of every cell (:func:`lstm_gates`, gate order input, forget, cell, output;
i = σ(z_i − 5), f = σ(z_f + 5)), the products and sums in the forms XLA:CPU runs fastest
(:func:`matmul`, :func:`sum_axis1`, :func:`outer_add`), LayerNorm over the message axis
(:func:`normalize`, :func:`layer_norm`) and the message heads (:func:`message_head`,
:func:`cell_messages`, :func:`reduced_messages`). Parameter names are those of
:mod:`vsml.learners.vsml`: ``wf, bf`` / ``wb, bb`` the forward / backward heads and
``ln_{f,b}_{scale,bias}`` their LayerNorm.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

#: Constant gate offsets so that a fresh cell keeps its state.
INPUT_GATE_OFFSET, FORGET_GATE_OFFSET = -5.0, 5.0
LN_EPS = 1e-5


def matmul(x: jax.Array, w: jax.Array) -> jax.Array:
    """``x [..., K] @ w [K, J]`` as one 2-D matmul (XLA:CPU is ~2× slower on the batched 3-D form)."""
    return (x.reshape(-1, x.shape[-1]) @ w).reshape(*x.shape[:-1], w.shape[-1])


def sum_axis1(x: jax.Array) -> jax.Array:
    """``x [batch, K, ...]`` -> ``[batch, ...]``: sum over axis 1 as one contraction with ones
    (XLA:CPU reduces over a major axis ~2.5× slower than it multiplies)."""
    return jnp.tensordot(jnp.ones((x.shape[1],), x.dtype), x, axes=([0], [1]))


@jax.custom_vjp
def outer_add(u: jax.Array, v: jax.Array) -> jax.Array:
    """``u [batch, A, F]``, ``v [batch, B, F]`` -> ``[batch, A·B, F]`` with entry ``a·B + b = u[a] + v[b]``."""
    return (u[:, :, None, :] + v[:, None, :, :]).reshape(u.shape[0], -1, u.shape[-1])


def _outer_add_fwd(u, v):
    return outer_add(u, v), (u.shape[1], v.shape[1])


def _outer_add_bwd(shapes, g):
    a, b = shapes
    g4 = g.reshape(g.shape[0], a, b, g.shape[-1])
    return g4.sum(2), sum_axis1(g4)


outer_add.defvjp(_outer_add_fwd, _outer_add_bwd)


def _gate_activations(z, n):
    i = jax.nn.sigmoid(z[..., :n] + INPUT_GATE_OFFSET)
    f = jax.nn.sigmoid(z[..., n : 2 * n] + FORGET_GATE_OFFSET)
    g = jnp.tanh(z[..., 2 * n : 3 * n])
    o = jax.nn.sigmoid(z[..., 3 * n :])
    return i, f, g, o


@jax.custom_vjp
def lstm_gates(z: jax.Array, c: jax.Array) -> tuple[jax.Array, jax.Array]:
    """LSTM nonlinearity. ``z: [..., 4N]`` pre-activations, ``c: [..., N]`` -> new ``(h, c)``.

    Hand-written VJP: autodiff of the four gate slices would build the gradient as four padded
    ``[..., 4N]`` arrays summed together, the most expensive part of the backward pass here.
    """
    i, f, g, o = _gate_activations(z, c.shape[-1])
    c = f * c + i * g
    return o * jnp.tanh(c), c


def _lstm_gates_fwd(z, c):
    i, f, g, o = _gate_activations(z, c.shape[-1])
    c_new = f * c + i * g
    tc = jnp.tanh(c_new)
    return (o * tc, c_new), (i, f, g, o, c, tc)


def _lstm_gates_bwd(res, cotangents):
    i, f, g, o, c, tc = res
    dh, dc_new = cotangents
    dc_total = dc_new + dh * o * (1.0 - tc * tc)
    dz = jnp.concatenate(
        [
            dc_total * g * i * (1.0 - i),
            dc_total * c * f * (1.0 - f),
            dc_total * i * (1.0 - g * g),
            dh * tc * o * (1.0 - o),
        ],
        axis=-1,
    )
    return dz, dc_total * f


lstm_gates.defvjp(_lstm_gates_fwd, _lstm_gates_bwd)


def normalize(x: jax.Array) -> jax.Array:
    """LayerNorm over the last axis without scale / bias (eps :data:`LN_EPS`)."""
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) * jax.lax.rsqrt(var + LN_EPS)


def layer_norm(msg: jax.Array, scale: jax.Array, bias: jax.Array) -> jax.Array:
    """LayerNorm over the message axis (last) with a learned ``scale`` and ``bias``."""
    return normalize(msg) * scale + bias


def message_head(p: dict, h_reduced: jax.Array, count: float | jax.Array, direction: str, use_ln: bool):
    """``W·h_reduced + count·b`` (then LayerNorm). ``count`` = 1 for mean reduction, else #senders."""
    w, b = (p["wf"], p["bf"]) if direction == "f" else (p["wb"], p["bb"])
    msg = matmul(h_reduced, w) + count * b
    if use_ln:
        msg = layer_norm(msg, p[f"ln_{direction}_scale"], p[f"ln_{direction}_bias"])
    return msg


def reduced_messages(p: dict, h_to_b, h_to_a, a: int, b: int, mean: bool, use_ln: bool):
    """A dense layer's outgoing messages from its states reduced over the senders (summed, or
    averaged when ``mean``): ``h_to_b [batch, B, N]`` (over the A inputs) -> ``fwd_out [batch, B,
    M]``, ``h_to_a [batch, A, N]`` (over the B outputs) -> ``bwd_out [batch, A, M]``. The message
    heads being linear, the head of the reduced state equals the reduction of every cell's head
    (``count·b``: the bias once per sender)."""
    fwd_out = message_head(p, h_to_b, 1.0 if mean else a, "f", use_ln)
    bwd_out = message_head(p, h_to_a, 1.0 if mean else b, "b", use_ln)
    return fwd_out, bwd_out


def cell_messages(p: dict, h: jax.Array, direction: str) -> jax.Array:
    """Every cell's own message ``LayerNorm(W·h + b)``: ``h [..., N]`` -> ``[..., M]``."""
    w, b = (p["wf"], p["bf"]) if direction == "f" else (p["wb"], p["bb"])
    return layer_norm(matmul(h, w) + b, p[f"ln_{direction}_scale"], p[f"ln_{direction}_bias"])
