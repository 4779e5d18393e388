"""A hand-constructed sub-RNN that approximately implements the reference cell (the cloning start).

Small-signal LSTM "circuit" (N >= 14 units; gate pre-activations are affine, so products of two
signed quantities are built as differences of two units whose gates are σ(±u): σ(u) − σ(−u) =
tanh(u/2) ≈ u/2, and the even parts cancel exactly):

    unit 0  W   c = w (the read-out); forget gate saturated open; c += ½·tanh(r_W·(h_P+ − h_P−))
    unit 1  K   clock: c alternates ±1 every tick, so gates know 1st vs 2nd micro tick of a sweep
    unit 2  S   c = ε·f(x), written at 2nd ticks, kept at 1st ticks (holds x from F2 through B1)
    unit 3  T   c = ε·f(x), written every tick (feeds the forward product at F2)
    4, 5    P±  c = σ(±a·s)·tanh(k·δ), written at 1st ticks only (nonzero only at B1): the update
    6, 7    Q±  c = σ(±a_f·t)·tanh(r_f·h_W): forward message ch1 = m_f·(h_Q+ − h_Q−) ≈ w·f(x)
    8, 9    R±  c = σ(±a_b·δ)·tanh(r_b·h_W): backward message ch0 = m_b·(h_R+ − h_R−) ≈ w·δ
    tanh cells also compute f'(z) = 1 − T² (T = tanh z) for the backward message:
    10, 11  D±  c = σ(±a·T)·tanh(r·T) at F2, difference ∝ T²
    12, 13  E±  c = σ(±a·(1 − T²))·tanh(r_b·h_W) at B1, difference ∝ (1 − T²)·w;  R± then use E

(F1 F2 = forward-sweep ticks, B1 B2 = backward-sweep ticks.) Errors are a few per cent: the
nonlinearity tanh(w) in h_W, tanh(εx) and the small-signal approximations. Supervised cloning
(:mod:`vsml.cloning.clone`) then reduces them.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from vsml.cloning.backprop_la import BWD_CHANNEL, FWD_CHANNEL
from vsml.learners.vsml import INPUT_CHANNEL

BIG = 30.0  # saturating pre-activation
GATE = 20.0  # clock gating strength
EPS = 0.02  # input scale in S, T
A_UPD, K_UPD = 2.0, 0.1  # update product: σ(±A·s)·tanh(K·δ)
A_FWD, R_FWD = 2.5, 0.1  # forward product: σ(±A·t)·tanh(R·h_W)  (t ≈ ε x, so A·t ≈ 0.05 x)
A_BWD, R_BWD = 0.2, 0.1  # backward product: σ(±A·δ)·tanh(R·h_W)
A_SQ, R_SQ = 0.3, 0.1  # tanh cells: T² ≈ (σ(A·T) − σ(−A·T))·tanh(R·T) / (A·R/2)
A_E = 0.3  # tanh cells: (1 − T²)·w ≈ (σ(A(1−T²)) − σ(−A(1−T²)))·tanh(R_BWD·h_W) / (A/2·R_BWD)
KAPPA = math.tanh(1.0)


def handcrafted_cell(kind: str, state_size: int = 16, message_size: int = 8, lr: float = 0.01) -> dict:
    """Sub-RNN params (``wx [2M,4N]``, ``wh [N,4N]``, ``b``, ``wf``, ``bf``, ``wb``, ``bb``) of the circuit."""
    n, m = state_size, message_size
    if n < 14:
        raise ValueError(f"the hand-constructed cell needs state_size >= 14, got {n}")
    if kind not in ("linear", "tanh"):
        raise ValueError(f"cell kind must be 'linear' or 'tanh', got {kind!r}")
    wx = np.zeros((2 * m, 4 * n), np.float32)
    wh = np.zeros((n, 4 * n), np.float32)
    b = np.zeros((4 * n,), np.float32)
    I, F, G, O = 0, n, 2 * n, 3 * n  # gate blocks
    W, K, S, T, Pp, Pm, Qp, Qm, Rp, Rm, Dp, Dm, Ep, Em = range(14)
    # default for every unit: input gate shut, forget open, output open (c stays 0, h = 0)
    b[I : I + n] = -BIG
    b[F : F + n] = BIG
    b[O : O + n] = BIG
    x_row = INPUT_CHANNEL if kind == "linear" else FWD_CHANNEL
    d_row = m + BWD_CHANNEL

    def set_unit(u, *, i=None, f=None, o=None):
        # i, f, o: target σ-arguments as constants (the ±5 gate offsets of the VSML LSTM are compensated)
        if i is not None:
            b[I + u] = i + 5.0
        if f is not None:
            b[F + u] = f - 5.0
        if o is not None:
            b[O + u] = o

    # W: i = σ(0) = ½, f = 1, g = tanh(r_W (h_P+ − h_P−))
    r_w = -4.0 * lr / (A_UPD * EPS * K_UPD)
    set_unit(W, i=0.0, f=BIG + 5.0)
    wh[Pp, G + W], wh[Pm, G + W] = r_w, -r_w
    # K: c = tanh(−B·h_K + B/2), overwritten every tick
    set_unit(K, i=BIG, f=-BIG)
    wh[K, G + K] = -BIG
    b[G + K] = BIG / 2
    # S: written at 2nd ticks (h_K⁻ = +κ), kept at 1st ticks (h_K⁻ = −κ)
    set_unit(S, i=0.0, f=0.0)
    wh[K, I + S] = GATE / KAPPA
    wh[K, F + S] = -GATE / KAPPA
    # T: written every tick
    set_unit(T, i=BIG, f=-BIG)
    if kind == "linear":  # g = tanh(ε x), i = 1
        wx[x_row, G + S] = EPS
        wx[x_row, G + T] = EPS
    else:  # g = tanh(z), i = ε (σ-argument logit(ε) while writing)
        wx[x_row, G + S] = 1.0
        wx[x_row, G + T] = 1.0
        lg = math.log(EPS / (1 - EPS))
        # S: i-argument = c1 + c2·(h_K/κ): 2nd ticks lg, 1st ticks −GATE
        c1, c2 = (lg - GATE) / 2, (lg + GATE) / 2
        b[I + S] = c1 + 5.0
        wh[K, I + S] = c2 / KAPPA
        b[I + T] = lg + 5.0
    # P±: i = σ(±A s − GATE·(h_K/κ + 1)), f = 0, g = tanh(K δ)
    for u, sgn in ((Pp, 1.0), (Pm, -1.0)):
        set_unit(u, i=-GATE, f=-BIG)
        wh[S, I + u] = sgn * A_UPD
        wh[K, I + u] = -GATE / KAPPA
        wx[d_row, G + u] = K_UPD
    # Q±: i = σ(±A_f t), f = 0, g = tanh(R_f h_W)
    for u, sgn in ((Qp, 1.0), (Qm, -1.0)):
        set_unit(u, i=0.0, f=-BIG)
        wh[T, I + u] = sgn * A_FWD
        wh[W, G + u] = R_FWD
    # R±: i = σ(±A_b δ), f = 0, g = tanh(R_b h_W)
    for u, sgn in ((Rp, 1.0), (Rm, -1.0)):
        set_unit(u, i=0.0, f=-BIG)
        wx[d_row, I + u] = sgn * A_BWD
        wh[W, G + u] = R_BWD
    if kind == "tanh":
        # f'(z) = 1 − T² for the backward message: D± ≈ T² (F2), E± ≈ (1 − T²)·w (B1), R± ≈ δ·E (B2)
        for u, sgn in ((Dp, 1.0), (Dm, -1.0)):
            set_unit(u, i=0.0, f=-BIG)
            wh[T, I + u] = sgn * A_SQ / EPS
            wh[T, G + u] = R_SQ / EPS
        sq = A_SQ * R_SQ / 2  # (h_D+ − h_D−) ≈ sq·T²
        for u, sgn in ((Ep, 1.0), (Em, -1.0)):
            set_unit(u, i=sgn * A_E, f=-BIG)
            wh[Dp, I + u] = -sgn * A_E / sq
            wh[Dm, I + u] = sgn * A_E / sq
            wh[W, G + u] = R_BWD
        e_gain = A_E / 2  # (h_E+ − h_E−) ≈ e_gain·(1 − T²)·R_BWD·w
        for u in (Rp, Rm):
            wh[W, G + u] = 0.0
            wh[Ep, G + u] = 1.0 / e_gain
            wh[Em, G + u] = -1.0 / e_gain
    # heads: h_Q± ≈ tanh(σ(±a t)·r h_W); difference ≈ (a t / 2)·r·w with t ≈ ε x
    wf = np.zeros((n, m), np.float32)
    wb = np.zeros((n, m), np.float32)
    m_f = 2.0 / (A_FWD * EPS * R_FWD)
    wf[Qp, FWD_CHANNEL], wf[Qm, FWD_CHANNEL] = m_f, -m_f
    m_b = 2.0 / (A_BWD * R_BWD)
    wb[Rp, BWD_CHANNEL], wb[Rm, BWD_CHANNEL] = m_b, -m_b
    arrays = {
        "wx": wx,
        "wh": wh,
        "b": b,
        "wf": wf,
        "bf": np.zeros(m, np.float32),
        "wb": wb,
        "bb": np.zeros(m, np.float32),
    }
    return {k: jnp.asarray(v) for k, v in arrays.items()}
