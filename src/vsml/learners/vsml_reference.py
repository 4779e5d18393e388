"""Plain per-cell reference implementation of the VSML layer kernels (for tests only).

Every cell (a, b) runs its own LSTM on the concatenated messages ``[fwd_in[a], bwd_in[b]]`` with
the full ``[2M + N, 4N]`` kernel, every cell computes its own message ``W·h_ab + b``, and only then
are the messages reduced over the sending axis (LayerNorm on each cell's message before the
reduction, ``layer_norm_placement="cell"``, or on the reduced message, ``"reduced"``). Conv layers
pad their input explicitly and loop over output positions. This is the textbook formulation,
~2× the FLOPs of :mod:`vsml.learners.vsml`; the equivalence tests check that both agree to
float32 precision. The step-level options (``backward_inputs``, ``error_scale``, initial states,
merging) live in :class:`~vsml.learners.vsml.VSML`, which :class:`ReferenceVSML` inherits; the
fidelity tests compare those against the authors' code.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from vsml.kernels.ops import FORGET_GATE_OFFSET, INPUT_GATE_OFFSET, layer_norm
from vsml.learners.vsml import VSML, ConvGeom, DenseGeom


def lstm_cell(p, inp, h, c):
    """One LSTM step per cell. ``inp: [..., 2M]``, ``h, c: [..., N]``."""
    n = h.shape[-1]
    kernel = jnp.concatenate([p["wx"], p["wh"]], axis=0)  # [2M + N, 4N]
    z = jnp.concatenate([inp, h], axis=-1) @ kernel + p["b"]
    i = jax.nn.sigmoid(z[..., :n] + INPUT_GATE_OFFSET)
    f = jax.nn.sigmoid(z[..., n : 2 * n] + FORGET_GATE_OFFSET)
    g = jnp.tanh(z[..., 2 * n : 3 * n])
    o = jax.nn.sigmoid(z[..., 3 * n :])
    c = f * c + i * g
    return o * jnp.tanh(c), c


def _ln(p, msgs, direction):
    return layer_norm(msgs, p[f"ln_{direction}_scale"], p[f"ln_{direction}_bias"])


def _cell_msgs(p, h, direction, config):
    """Each cell's message ``W·h + b`` (LayerNorm'd here when it is placed on cells)."""
    w, b = (p["wf"], p["bf"]) if direction == "f" else (p["wb"], p["bb"])
    msgs = h @ w + b
    if config.layer_norm and config.layer_norm_placement == "cell":
        msgs = _ln(p, msgs, direction)
    return msgs


def _finish(p, msgs, direction, config):
    """LayerNorm on the reduced message when it is placed there."""
    if config.layer_norm and config.layer_norm_placement == "reduced":
        msgs = _ln(p, msgs, direction)
    return msgs


def reference_dense(p, h, c, fwd_in, bwd_in, geom: DenseGeom, config):
    """Same contract as :func:`vsml.learners.vsml.dense_layer` (per example, vmapped over the batch)."""
    return jax.vmap(lambda *a: _reference_dense_one(p, *a, geom, config))(h, c, fwd_in, bwd_in)


def _reference_dense_one(p, h, c, fwd_in, bwd_in, geom: DenseGeom, config):
    a, b = geom
    n, m = config.state_size, config.message_size
    red = jnp.mean if config.reduce == "mean" else jnp.sum
    he, ce = h.reshape(a, b, n), c.reshape(a, b, n)
    inp = jnp.concatenate(
        [jnp.broadcast_to(fwd_in[:, None, :], (a, b, m)), jnp.broadcast_to(bwd_in[None, :, :], (a, b, m))],
        axis=-1,
    )
    for _ in range(config.micro_ticks):
        he, ce = lstm_cell(p, inp, he, ce)
    fwd = _finish(p, red(_cell_msgs(p, he, "f", config), axis=0), "f", config)  # [B, M]
    bwd = _finish(p, red(_cell_msgs(p, he, "b", config), axis=1), "b", config)  # [A, M]
    return he.reshape(a * b, n), ce.reshape(a * b, n), fwd, bwd


def reference_conv(p, h, c, fwd_in, bwd_in, geom: ConvGeom, config):
    """Same contract as :func:`vsml.learners.vsml.conv_layer`, looping over output positions."""
    return jax.vmap(lambda *a: _reference_conv_one(p, *a, geom, config))(h, c, fwd_in, bwd_in)


def _reference_conv_one(p, h, c, fwd_in, bwd_in, geom: ConvGeom, config):
    g = geom
    n, m = config.state_size, config.message_size
    kin, kout = g.k * g.k * g.cin, g.k * g.k * g.cout
    mean = config.reduce == "mean"
    pad = (g.pad_lo, g.pad_hi)
    x = jnp.pad(fwd_in.reshape(g.h, g.w, g.cin, m), (pad, pad, (0, 0), (0, 0)))  # [Hp, Wp, Cin, M]
    err = bwd_in.reshape(g.ho, g.wo, g.cout, m)
    he = h.reshape(g.k, g.k, g.cin, g.cout, n)
    ce = c.reshape(g.k, g.k, g.cin, g.cout, n)
    for _ in range(config.micro_ticks):
        new_h, new_c = [], []
        for oy in range(g.ho):
            for ox in range(g.wo):
                patch = x[oy * g.s : oy * g.s + g.k, ox * g.s : ox * g.s + g.k]  # [k, k, Cin, M]
                inp = jnp.concatenate(
                    [
                        jnp.broadcast_to(patch[:, :, :, None, :], (g.k, g.k, g.cin, g.cout, m)),
                        jnp.broadcast_to(err[oy, ox][None, None, None], (g.k, g.k, g.cin, g.cout, m)),
                    ],
                    axis=-1,
                )
                hp, cp = lstm_cell(p, inp, he, ce)
                new_h.append(hp)
                new_c.append(cp)
        he, ce = jnp.mean(jnp.stack(new_h), 0), jnp.mean(jnp.stack(new_c), 0)
    fwd = jnp.zeros((g.ho, g.wo, g.cout, m))
    bwd = jnp.zeros((g.hp, g.wp, g.cin, m))  # padded; the padding's messages are dropped below
    for idx, hp in enumerate(new_h):  # last tick's per-position states
        oy, ox = divmod(idx, g.wo)
        per_cell_f = _cell_msgs(p, hp, "f", config)  # [k, k, Cin, Cout, M]
        per_cell_b = _cell_msgs(p, hp, "b", config)
        fwd = fwd.at[oy, ox].set(per_cell_f.sum((0, 1, 2)) / (kin if mean else 1))
        bwd = bwd.at[oy * g.s : oy * g.s + g.k, ox * g.s : ox * g.s + g.k].add(per_cell_b.sum(3))
    bwd = bwd[g.pad_lo : g.pad_lo + g.h, g.pad_lo : g.pad_lo + g.w]
    if mean:
        bwd = bwd / kout
    fwd = _finish(p, fwd, "f", config)
    bwd = _finish(p, bwd, "b", config)
    return he.reshape(-1, n), ce.reshape(-1, n), fwd.reshape(-1, m), bwd.reshape(-1, m)


@dataclasses.dataclass(frozen=True)
class ReferenceVSML(VSML):
    """VSML with the plain per-cell kernels; same parameters, state and outputs as :class:`VSML`."""

    def _dense(self, p, h, c, fwd_in, bwd_in, geom):
        return reference_dense(p, h, c, fwd_in, bwd_in, geom, self.config)

    def _conv(self, p, h, c, fwd_in, bwd_in, geom):
        return reference_conv(p, h, c, fwd_in, bwd_in, geom, self.config)
