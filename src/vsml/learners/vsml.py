"""The VSML RNN as an :class:`~vsml.learners.base.OnlineLearner`, with factorised kernels.

Every weight w_ab of a network is a tiny LSTM with state (h_ab, c_ab) ∈ R^N × R^N; all LSTMs
share one parameter set (the meta-parameters). A dense layer with A inputs and B outputs keeps its
states flat as ``h, c: [batch, A·B, N]`` (cell index ``a·B + b``); a conv layer keeps one state
per kernel entry, ``[batch, kh·kw·C_in·C_out, N]`` (index ``((i·kw + j)·C_in + ci)·C_out + co``),
shared over spatial positions.

By default every semantic choice follows the authors' implementation (Kirsch & Schmidhuber,
"Meta Learning Backpropagation And Improving It", NeurIPS 2021, code: github.com/louiskirsch/vsml-neurips2021);
the alternative of each such choice is a named option value (:data:`LEGACY_SEMANTICS`, table in
docs/vsml.md). A stored LA or checkpoint whose record lacks one of these options loads with its
legacy value (:func:`vsml_config_from_record`).

Factorised tick: the LSTM input is ``[fwd_in[a], bwd_in[b]]``, so
``z_ab = U·fwd_in[a] + V·bwd_in[b] + R·h_ab + bias`` — two small matmuls per layer plus one
``[cells, N] × [N, 4N]`` matmul — and, the message heads being linear, the reduction over the
sending axis happens before the head: ``fwd_out[b] = W_f·mean_a h_ab + b_f``. With LayerNorm placed
on every cell's message (``layer_norm_placement="cell"``, the authors') the heads are applied per
cell instead; that cost is only paid when ``layer_norm`` is on.

Sub-RNN parameters (one set, or one per layer, plus optionally one set for the backward sweep)::

    wx [2M, 4N]  (rows :M act on fwd_in, rows M: on bwd_in)   wh [N, 4N]   b [4N]
    wf [N, M], bf [M]  (forward message head)     wb [N, M], bb [M]  (backward message head)
    ln_f_scale, ln_f_bias, ln_b_scale, ln_b_bias [M]   (only with ``layer_norm``)

Gate order in the 4N axis: input, forget, cell, output (the authors' code orders them input, cell,
forget, output); i = σ(z_i − 5), f = σ(z_f + 5).
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Annotated, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from vsml import kernels
from vsml.config import ConfigError, Range, check_ranges, drop_execution_options, execution_option, from_dict
from vsml.kernels.ops import (
    cell_messages,
    lstm_gates,
    matmul,
    message_head,
    outer_add,
    reduced_messages,
    sum_axis1,
)
from vsml.learners._common import same_padding
from vsml.learners.base import InputError, OnlineLearner, TaskSpec

#: Channel of the last layer's forward message read out as the prediction.
OUTPUT_CHANNEL = 1
#: Channel of the first layer's forward message that carries the input.
INPUT_CHANNEL = 0
#: Channels of the last layer's backward input carrying the error and the fed label.
ERROR_CHANNEL, LABEL_CHANNEL = 0, 1


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """A hidden layer. ``dense``: ``units`` outputs. ``conv``: ``channels`` outputs, square
    ``kernel``, ``stride``, padding per ``VSMLConfig.conv_padding``. The output layer (dense, one
    unit per class) is implicit."""

    kind: Literal["dense", "conv"] = "dense"
    units: Annotated[int, Range(">=0")] = 0
    channels: Annotated[int, Range(">=0")] = 0
    kernel: Annotated[int, Range(">=1")] = 3
    stride: Annotated[int, Range(">=1")] = 1

    def __post_init__(self):
        check_ranges(self, "layer")
        if self.kind == "dense" and self.units < 1:
            raise ConfigError(f"dense layer needs units >= 1, got {self.units}")
        if self.kind == "conv" and (self.channels < 1 or self.kernel < 1 or self.stride < 1):
            raise ConfigError(f"conv layer needs channels, kernel, stride >= 1, got {self}")


#: The alternative value of every semantic option (each default follows the authors' code). A stored
#: config / learner record that lacks one of these keys was made with this value and is read with it
#: (:func:`vsml_config_from_record`).
LEGACY_SEMANTICS = {
    "layer_norm_placement": "reduced",
    "backward_inputs": "zeros",
    "error_scale": "sum",
    "param_init": "blockwise",
    "conv_padding": "valid",
    "conv_init_c_std": "fan_in",
    "fraction_rounding": "round",
}


@dataclasses.dataclass(frozen=True)
class VSMLConfig:
    """Options of the VSML RNN. The semantic options (last block) default to the authors' choices;
    docs/vsml.md tables them next to the alternatives."""

    state_size: Annotated[int, Range(">=1")] = 16  # N
    message_size: Annotated[int, Range(">=2")] = 8  # M
    micro_ticks: Annotated[int, Range(">=1")] = 2
    hidden_layers: tuple[LayerSpec, ...] = ()
    reduce: Literal["mean", "sum"] = "mean"
    layer_norm: bool = False  # LayerNorm on every outgoing message
    per_layer_rnn: bool = False  # one sub-RNN per layer instead of one shared by all
    backward_pass: bool = False  # second sweep in reverse order with the fresh error
    separate_backward_rnn: bool = False  # own sub-RNN(s) for that sweep (needs backward_pass)
    label_feeding: bool = False  # feed one-hot y_{t-1} next to the error
    init_c_fraction: Annotated[float, Range("[0,1]")] = 0.5  # fraction of c drawn at random per episode ("weights")
    merge_fraction: Annotated[float, Range("[0,1]")] = (
        0.5  # fraction of h and c averaged over the batch before each step
    )
    output_bound: Annotated[float, Range(">=0")] = 100.0  # ŷ = bound·tanh(ŷ/bound); 0 disables
    # dense-layer tick: fused C++ kernel or XLA (vsml.kernels); an execution option, not stored
    kernel: Literal["auto", "fused", "xla"] = execution_option("auto")
    bias: bool = False  # one constant input unit per layer (dense layers only; docs/vsml.md "Biases")
    hidden_bias_input: Annotated[float, Range("any")] = (
        5.0  # prediction channel of that unit above the first layer (tanh(5) = 0.9999)
    )
    # semantic choices: default = the authors' code; the other value = LEGACY_SEMANTICS
    layer_norm_placement: Literal["cell", "reduced"] = "cell"  # LN each cell's message, then reduce / reduce, then LN
    backward_inputs: Literal["replay", "zeros"] = "replay"  # what the two sweeps of backward_pass see (docs/vsml.md)
    error_scale: Literal["batch_mean", "sum"] = "batch_mean"  # error (softmax − y)/batch, or softmax − y
    param_init: Literal["joint", "blockwise"] = "joint"  # LSTM kernel std 1/√(2M+N) / wx 1/√(2M), wh 1/√N
    conv_padding: Literal["same", "valid"] = "same"
    conv_init_c_std: Literal["kernel", "fan_in"] = "kernel"  # conv initial c: std 1/√k / 1/√(k·k·C_in)
    fraction_rounding: Literal["floor", "round"] = "floor"  # units = ⌊N·fraction⌋ / round(N·fraction)

    def __post_init__(self):
        check_ranges(self, "")
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {list(allowed)}, got {getattr(self, name)!r}")
        if self.separate_backward_rnn and not self.backward_pass:
            raise ConfigError("separate_backward_rnn needs backward_pass: true")
        if self.kernel == "fused":
            if (reason := kernels.dense.unavailable_reason()) is not None:
                raise ConfigError(f"kernel: fused requested, but the fused CPU kernel cannot run: {reason}")
        seen_dense = False
        for spec in self.hidden_layers:
            if not isinstance(spec, LayerSpec):
                raise ConfigError(f"hidden_layers entries must be LayerSpec, got {spec!r}")
            if spec.kind == "conv" and seen_dense:
                raise ConfigError("a conv layer cannot follow a dense layer")
            if spec.kind == "conv" and self.bias:
                raise ConfigError("bias: true needs dense layers only (conv layers have no bias unit)")
            seen_dense |= spec.kind == "dense"
        object.__setattr__(self, "hidden_layers", tuple(self.hidden_layers))

    @property
    def num_layers(self) -> int:
        return len(self.hidden_layers) + 1

    @property
    def replays_inputs(self) -> bool:
        """Backward-pass mode with the authors' inputs: the state carries the forward messages."""
        return self.backward_pass and self.backward_inputs == "replay"


_CHOICES = {
    name: typing.get_args(tp)
    for name, tp in typing.get_type_hints(VSMLConfig).items()
    if typing.get_origin(tp) is Literal
}


def vsml_config_from_record(record: dict) -> VSMLConfig:
    """A stored ``vsml_config`` / VSML learner-options mapping -> :class:`VSMLConfig`.

    Keys of :data:`LEGACY_SEMANTICS` that the record lacks take their legacy value (the value the
    LA / checkpoint of such a record was made with).
    A stored ``kernel`` (an execution option, left out of records written by
    ``to_dict(config, stored=True)``) is ignored: this machine's setting applies.
    Raises :class:`~vsml.config.ConfigError` for unknown keys or bad values.
    """
    if not isinstance(record, dict):
        raise ConfigError(f"a stored VSML config must be a mapping, got {record!r}")
    return from_dict(VSMLConfig, {**LEGACY_SEMANTICS, **drop_execution_options(VSMLConfig, record)})


def unit_count(n: int, fraction: float, rounding: str) -> int:
    """How many of ``n`` state units a ``fraction`` covers: ``int(n·fraction)`` or ``round(n·fraction)``."""
    return int(n * fraction) if rounding == "floor" else int(round(n * fraction))


# --------------------------------------------------------------------------------------------
# Layer geometry (static, derived from the task)


class DenseGeom(NamedTuple):
    """Dense layer: A inputs, B outputs."""

    a: int
    b: int

    @property
    def cells(self) -> int:
        return self.a * self.b

    @property
    def fan_in(self) -> int:
        return self.a

    @property
    def in_units(self) -> int:
        return self.a

    @property
    def out_units(self) -> int:
        return self.b


class ConvGeom(NamedTuple):
    """Conv layer: input [h, w, cin], kernel k×k, stride s, output [ho, wo, cout].

    The input is zero-padded by ``pad_lo`` rows/columns before and ``pad_hi`` after (0 for VALID
    padding; ``(k−1)//2`` and ``k//2`` for SAME, the authors' k//2 on each side for odd k); output
    position o reads padded rows/columns ``o·s … o·s + k − 1``.
    """

    h: int
    w: int
    cin: int
    k: int
    s: int
    cout: int
    pad_lo: int = 0
    pad_hi: int = 0

    @property
    def hp(self) -> int:
        return self.h + self.pad_lo + self.pad_hi

    @property
    def wp(self) -> int:
        return self.w + self.pad_lo + self.pad_hi

    @property
    def ho(self) -> int:
        return (self.hp - self.k) // self.s + 1

    @property
    def wo(self) -> int:
        return (self.wp - self.k) // self.s + 1

    @property
    def cells(self) -> int:
        return self.k * self.k * self.cin * self.cout

    @property
    def fan_in(self) -> int:
        return self.k * self.k * self.cin

    @property
    def in_units(self) -> int:
        return self.h * self.w * self.cin

    @property
    def out_units(self) -> int:
        return self.ho * self.wo * self.cout


def layer_geometry(config: VSMLConfig, input_shape: tuple[int, ...], num_classes: int):
    """Static geometry of every layer for a task; raises :class:`InputError` when impossible."""
    geoms = []
    shape = tuple(input_shape)
    for idx, spec in enumerate(config.hidden_layers):
        if spec.kind == "conv":
            if len(shape) == 2:
                shape = (*shape, 1)
            if len(shape) != 3:
                raise InputError(f"conv layer {idx} needs a [H, W] or [H, W, C] input, got input shape {shape}")
            h, w, cin = shape
            if config.conv_padding == "valid" and (spec.kernel > h or spec.kernel > w):
                raise InputError(
                    f"conv layer {idx}: kernel {spec.kernel}×{spec.kernel} is larger than its input {h}×{w} "
                    "(conv_padding: valid)"
                )
            pad = same_padding(spec.kernel) if config.conv_padding == "same" else (0, 0)
            g = ConvGeom(h, w, cin, spec.kernel, spec.stride, spec.channels, *pad)
            shape = (g.ho, g.wo, g.cout)
        else:
            g = DenseGeom(math.prod(shape) + config.bias, spec.units)
            shape = (spec.units,)
        geoms.append(g)
    geoms.append(DenseGeom(math.prod(shape) + config.bias, num_classes))
    return tuple(geoms)


# --------------------------------------------------------------------------------------------
# Sub-RNN parameters


def init_cell_params(key: jax.Array, state_size: int, message_size: int, layer_norm: bool, init: str = "joint") -> dict:
    """Parameters of one sub-RNN: truncated normal (±2) weights, zero biases, LayerNorm scale 1.

    ``init="joint"`` (the authors'): the LSTM kernel over ``[fwd_in, bwd_in, h]`` is drawn as one
    ``[2M + N, 4N]`` matrix with std parameter 1/√(2M + N) and split into ``wx`` and ``wh``.
    ``"blockwise"``: ``wx`` with 1/√(2M), ``wh`` with 1/√N. Message heads: 1/√N in both.
    (The truncated normal is not rescaled: the actual std is 0.88× the parameter, as in Haiku.)
    """
    n, m = state_size, message_size
    k = jax.random.split(key, 4)

    def tn(key, shape, fan_in):
        return jax.random.truncated_normal(key, -2.0, 2.0, shape, jnp.float32) / math.sqrt(fan_in)

    if init == "joint":
        kernel = tn(k[0], (2 * m + n, 4 * n), 2 * m + n)
        wx, wh = kernel[: 2 * m], kernel[2 * m :]
    elif init == "blockwise":
        wx, wh = tn(k[0], (2 * m, 4 * n), 2 * m), tn(k[1], (n, 4 * n), n)
    else:
        raise ConfigError(f"param_init must be 'joint' or 'blockwise', got {init!r}")
    p = {
        "wx": wx,
        "wh": wh,
        "b": jnp.zeros((4 * n,), jnp.float32),
        "wf": tn(k[2], (n, m), n),
        "bf": jnp.zeros((m,), jnp.float32),
        "wb": tn(k[3], (n, m), n),
        "bb": jnp.zeros((m,), jnp.float32),
    }
    if layer_norm:
        p |= {
            "ln_f_scale": jnp.ones((m,), jnp.float32),
            "ln_f_bias": jnp.zeros((m,), jnp.float32),
            "ln_b_scale": jnp.ones((m,), jnp.float32),
            "ln_b_bias": jnp.zeros((m,), jnp.float32),
        }
    return p


def _ln_per_cell(config: VSMLConfig) -> bool:
    return config.layer_norm and config.layer_norm_placement == "cell"


# --------------------------------------------------------------------------------------------
# Factorised layer kernels (batched: leading axis = batch)


def dense_layer(p, h, c, fwd_in, bwd_in, geom: DenseGeom, config: VSMLConfig):
    """All micro ticks of a dense layer.

    ``h, c: [batch, A·B, N]``, ``fwd_in: [batch, A, M]``, ``bwd_in: [batch, B, M]`` ->
    ``(h, c, fwd_out [batch, B, M], bwd_out [batch, A, M])``. With ``config.kernel`` resolving to
    ``"fused"`` (:func:`vsml.kernels.resolve_kernel`), everything after the two input products runs
    as one fused C++ kernel call (:func:`vsml.kernels.fused_dense_layer`), for every option of the
    layer; what the kernel does not handle (operands not float32, state sizes its CPU code lacks:
    :func:`vsml.kernels.unsupported`) takes the XLA kernels below.
    """
    a, b = geom
    batch, _, n = h.shape
    m = config.message_size
    u = matmul(fwd_in, p["wx"][:m])  # [batch, A, 4N]
    v = matmul(bwd_in, p["wx"][m:]) + p["b"]  # [batch, B, 4N]
    # resolved at trace time (config, VSML_KERNEL, availability); unsupported operands: XLA below
    cell_norm = _ln_per_cell(config)
    if (
        kernels.resolve_kernel(config.kernel) == "fused"
        and kernels.unsupported(h, c, u, v, *p.values(), state_size=n, head_size=m if cell_norm else None) is None
    ):
        return kernels.fused_dense_layer(
            p,
            h,
            c,
            u,
            v,
            geom,
            micro_ticks=config.micro_ticks,
            mean=config.reduce == "mean",
            layer_norm=config.layer_norm,
            cell_norm=cell_norm,
        )
    uv = outer_add(u, v)  # [batch, A·B, 4N]
    for _ in range(config.micro_ticks):
        h, c = lstm_gates(matmul(h, p["wh"]) + uv, c)
    h3 = h.reshape(batch, a, b, n)
    mean = config.reduce == "mean"
    if _ln_per_cell(config):  # nonlinear per-cell messages: reduce after the heads
        mf, mb = cell_messages(p, h3, "f"), cell_messages(p, h3, "b")  # [batch, A, B, M]
        fwd_out = sum_axis1(mf) / (a if mean else 1)
        bwd_out = mb.mean(2) if mean else mb.sum(2)
        return h, c, fwd_out, bwd_out
    h_to_b = sum_axis1(h3) / (a if mean else 1)  # [batch, B, N]
    h_to_a = h3.mean(2) if mean else h3.sum(2)  # [batch, A, N]
    fwd_out, bwd_out = reduced_messages(p, h_to_b, h_to_a, a, b, mean, config.layer_norm)
    return h, c, fwd_out, bwd_out


def _patch_index(geom: ConvGeom):
    """Static gather indices into the padded input: rows ``[Ho, 1, k, 1]``, columns ``[1, Wo, 1, k]``."""
    k, s = geom.k, geom.s
    rows = (np.arange(geom.ho)[:, None] * s + np.arange(k)[None, :])[:, None, :, None]
    cols = (np.arange(geom.wo)[:, None] * s + np.arange(k)[None, :])[None, :, None, :]
    return rows, cols


def conv_patches(x: jax.Array, geom: ConvGeom) -> jax.Array:
    """``x: [batch, H, W, C, F]`` -> ``[batch, Ho, Wo, k, k, C, F]``: zero padding, then one gather."""
    if geom.pad_lo or geom.pad_hi:
        pad = (geom.pad_lo, geom.pad_hi)
        x = jnp.pad(x, ((0, 0), pad, pad, (0, 0), (0, 0)))
    rows, cols = _patch_index(geom)
    return x[:, rows, cols]


def conv_unpatch(patches: jax.Array, geom: ConvGeom) -> jax.Array:
    """Adjoint of :func:`conv_patches` (sums overlapping entries, drops the padding): one scatter-add."""
    rows, cols = _patch_index(geom)
    flat = np.broadcast_to(rows * geom.wp + cols, (geom.ho, geom.wo, geom.k, geom.k)).reshape(-1)
    batch, c, f = patches.shape[0], patches.shape[-2], patches.shape[-1]
    out = jnp.zeros((batch, geom.hp * geom.wp, c, f), patches.dtype)
    out = out.at[:, flat].add(patches.reshape(batch, -1, c, f))
    out = out.reshape(batch, geom.hp, geom.wp, c, f)
    return out[:, geom.pad_lo : geom.pad_lo + geom.h, geom.pad_lo : geom.pad_lo + geom.w]


def conv_layer(p, h, c, fwd_in, bwd_in, geom: ConvGeom, config: VSMLConfig):
    """All micro ticks of a conv layer; states are shared over positions (averaged after each tick).
    Always the XLA kernels (``config.kernel`` applies to dense layers only).

    ``h, c: [batch, k·k·Cin·Cout, N]``, ``fwd_in: [batch, H·W·Cin, M]``, ``bwd_in: [batch, Ho·Wo·Cout, M]``
    -> ``(h, c, fwd_out [batch, Ho·Wo·Cout, M], bwd_out [batch, H·W·Cin, M])``.
    Every output position ticks, also where its patch covers zero padding (those cells see a zero
    forward input and count in the average over positions). Mean reduction divides by the nominal
    fan (k·k·Cin forward, k·k·Cout backward).
    """
    g = geom
    batch, cells, n = h.shape
    m = config.message_size
    kin = g.k * g.k * g.cin
    p_ = g.ho * g.wo
    u = matmul(fwd_in.reshape(batch, g.h, g.w, g.cin, m), p["wx"][:m])  # [batch, H, W, Cin, 4N]
    up = conv_patches(u, g).reshape(batch, p_, kin, 1, 4 * n)  # zero padding of fwd_in = zero padding of u
    v = (matmul(bwd_in, p["wx"][m:]) + p["b"]).reshape(batch, p_, 1, g.cout, 4 * n)
    uv = (up + v).reshape(batch, p_, cells, 4 * n)
    for _ in range(config.micro_ticks):
        z = matmul(h, p["wh"])[:, None] + uv  # [batch, P, cells, 4N]
        hp, cp = lstm_gates(z, jnp.broadcast_to(c[:, None], (*z.shape[:-1], n)))
        h, c = hp.mean(1), cp.mean(1)
    hp = hp.reshape(batch, p_, kin, g.cout, n)
    mean = config.reduce == "mean"
    kout = g.k * g.k * g.cout
    if _ln_per_cell(config):
        mf = cell_messages(p, hp, "f")  # [batch, P, kin, Cout, M]
        fwd_out = mf.mean(2) if mean else mf.sum(2)
        mb = cell_messages(p, hp, "b").sum(3).reshape(batch, g.ho, g.wo, g.k, g.k, g.cin, m)
        bwd_out = conv_unpatch(mb, g) / (kout if mean else 1)
        return h, c, fwd_out.reshape(batch, p_ * g.cout, m), bwd_out.reshape(batch, g.in_units, m)
    h_to_out = hp.mean(2) if mean else hp.sum(2)  # [batch, P, Cout, N]
    fwd_out = message_head(p, h_to_out, 1.0 if mean else kin, "f", config.layer_norm)
    h_to_in = hp.sum(3).reshape(batch, g.ho, g.wo, g.k, g.k, g.cin, n)
    h_to_in = conv_unpatch(h_to_in, g)  # [batch, H, W, Cin, N] sums over senders
    counts = conv_unpatch(jnp.ones((1, g.ho, g.wo, g.k, g.k, g.cin, 1), h.dtype), g) * g.cout
    if mean:
        h_to_in, counts = h_to_in / kout, counts / kout
    bwd_out = message_head(p, h_to_in, counts, "b", config.layer_norm)
    return h, c, fwd_out.reshape(batch, p_ * g.cout, m), bwd_out.reshape(batch, g.in_units, m)


# --------------------------------------------------------------------------------------------
# The learner


def bound_output(y: jax.Array, bound: float) -> jax.Array:
    return bound * jnp.tanh(y / bound) if bound > 0 else y


def error_message(logits, y, num_classes: int, message_size: int, label_feeding: bool, error_scale: str = "batch_mean"):
    """Backward input of the last layer: ``[batch, C, M]``, the error in channel 0 (and y in 1).

    The error is the gradient of the cross-entropy w.r.t. the (bounded) logits: of its batch mean,
    (softmax(ŷ) − y)/batch, for ``error_scale="batch_mean"`` (the authors'); of each example's own
    loss, softmax(ŷ) − y, for ``"sum"``.
    """
    onehot = jax.nn.one_hot(y, num_classes, dtype=jnp.float32)
    err = jax.nn.softmax(logits, axis=-1) - onehot
    if error_scale == "batch_mean":
        err = err / logits.shape[0]
    msg = jnp.zeros((*logits.shape, message_size), jnp.float32).at[..., ERROR_CHANNEL].set(err)
    if label_feeding:
        msg = msg.at[..., LABEL_CHANNEL].set(onehot)
    return msg


def input_message(x: jax.Array, message_size: int) -> jax.Array:
    """``x: [batch, *shape]`` -> ``[batch, prod(shape), M]`` with x in channel 0."""
    flat = x.reshape(x.shape[0], -1).astype(jnp.float32)
    return jnp.zeros((*flat.shape, message_size), jnp.float32).at[..., INPUT_CHANNEL].set(flat)


def with_bias_unit(msg: jax.Array, k: int, config: VSMLConfig) -> jax.Array:
    """Layer ``k``'s forward input ``[batch, A, M]`` -> ``[batch, A + 1, M]`` with the bias unit last
    (``config.bias``; unchanged otherwise). The bias unit of the first layer sends what a raw input
    of constant value 1 sends (1 in the input channel); above it, what a unit with pre-activation
    ``hidden_bias_input`` sends (that value in the prediction channel, which a cloned tanh cell reads)."""
    if not config.bias:
        return msg
    channel, value = (INPUT_CHANNEL, 1.0) if k == 0 else (OUTPUT_CHANNEL, config.hidden_bias_input)
    unit = jnp.zeros((msg.shape[0], 1, msg.shape[-1]), msg.dtype).at[..., channel].set(value)
    return jnp.concatenate([msg, unit], axis=1)


def without_bias_unit(bwd_msg: jax.Array, config: VSMLConfig) -> jax.Array:
    """A layer's backward message ``[batch, A(+1), M]`` without the bias unit's row: it has no
    sender below (``config.bias``; unchanged otherwise)."""
    return bwd_msg[:, :-1] if config.bias else bwd_msg


def merge_batch(x: jax.Array, fraction: float, rounding: str = "floor") -> jax.Array:
    """Average the first ``unit_count(N, fraction, rounding)`` units of the last axis over the batch (axis 0).

    The mean is written as a contraction with a constant vector: XLA:CPU runs it ~25× faster
    than a ``mean`` over the leading axis here.
    """
    k = unit_count(x.shape[-1], fraction, rounding)
    if k == 0 or x.shape[0] == 1:
        return x
    mean = jnp.tensordot(jnp.full((x.shape[0],), 1.0 / x.shape[0], x.dtype), x, axes=1)
    return jnp.where(np.arange(x.shape[-1]) < k, mean[None], x)


@dataclasses.dataclass(frozen=True)
class VSML(OnlineLearner):
    """The VSML RNN learner.

    State pytree: ``{"h": (per layer [batch, cells, N]), "c": (…), "bwd": (per layer [batch, out_units, M])}``
    where ``bwd[k]`` is what layer k receives as backward input in the next forward sweep (layer
    k+1's last backward message; for the last layer the pending error message, zero in
    backward-pass mode). With ``backward_pass`` and ``backward_inputs="replay"`` the state also holds
    ``"fwd": (per layer 1..K−1 [batch, in_units, M])``, the forward message each layer received in
    the last forward sweep (the backward sweep feeds it again).
    """

    config: VSMLConfig = VSMLConfig()

    # kernels; the reference implementation overrides these two
    def _dense(self, p, h, c, fwd_in, bwd_in, geom):
        return dense_layer(p, h, c, fwd_in, bwd_in, geom, self.config)

    def _conv(self, p, h, c, fwd_in, bwd_in, geom):
        return conv_layer(p, h, c, fwd_in, bwd_in, geom, self.config)

    # ---- parameters and state

    def init_params(self, key: jax.Array) -> dict:
        cfg = self.config
        n_rnn = cfg.num_layers if cfg.per_layer_rnn else 1
        k_f, k_b = jax.random.split(key)

        def group(key):
            return tuple(
                init_cell_params(k, cfg.state_size, cfg.message_size, cfg.layer_norm, cfg.param_init)
                for k in jax.random.split(key, n_rnn)
            )

        params = {"rnn": group(k_f)}
        if cfg.separate_backward_rnn:
            params["bwd_rnn"] = group(k_b)
        return params

    def check_task(self, task: TaskSpec) -> None:
        layer_geometry(self.config, task.input_shape, task.num_classes)

    def init_state(self, params, key, task: TaskSpec) -> dict:
        """h = 0; c: the first ⌊N·init_c_fraction⌋ units truncated normal (±2) with std parameter
        1/√A for a dense layer (A inputs) and 1/√k (``conv_init_c_std="kernel"``) or
        1/√(k·k·C_in) (``"fan_in"``) for a conv layer, the rest 0; the same for every example."""
        cfg = self.config
        geoms = layer_geometry(cfg, task.input_shape, task.num_classes)
        n, n_rand = cfg.state_size, unit_count(cfg.state_size, cfg.init_c_fraction, cfg.fraction_rounding)
        hs, cs, bwd = [], [], []
        for g, k in zip(geoms, jax.random.split(key, len(geoms))):
            scale = g.k if isinstance(g, ConvGeom) and cfg.conv_init_c_std == "kernel" else g.fan_in
            rand = jax.random.truncated_normal(k, -2.0, 2.0, (g.cells, n_rand), jnp.float32) / math.sqrt(scale)
            c = jnp.concatenate([rand, jnp.zeros((g.cells, n - n_rand), jnp.float32)], -1)
            cs.append(jnp.broadcast_to(c, (task.batch_size, g.cells, n)))
            hs.append(jnp.zeros((task.batch_size, g.cells, n), jnp.float32))
            bwd.append(jnp.zeros((task.batch_size, g.out_units, cfg.message_size), jnp.float32))
        state = {"h": tuple(hs), "c": tuple(cs), "bwd": tuple(bwd)}
        if cfg.replays_inputs:
            state["fwd"] = tuple(
                jnp.zeros((task.batch_size, g.in_units, cfg.message_size), jnp.float32) for g in geoms[1:]
            )
        return state

    # ---- one step

    def _geoms_from(self, x, state):
        num_classes = state["bwd"][-1].shape[1]
        return layer_geometry(self.config, x.shape[1:], num_classes)

    def _rnn(self, params, k: int, backward: bool = False):
        group = params["bwd_rnn"] if backward and self.config.separate_backward_rnn else params["rnn"]
        return group[k if self.config.per_layer_rnn else 0]

    def _layer(self, params, k, geom, h, c, fwd_in, bwd_in, backward=False):
        p = self._rnn(params, k, backward)
        if isinstance(geom, ConvGeom):
            return self._conv(p, h, c, fwd_in, bwd_in, geom)
        return self._dense(p, h, c, fwd_in, bwd_in, geom)

    def predict(self, params, state, x):
        """Forward sweep. Backward inputs: the stored ``bwd`` (normal mode, and backward-pass mode
        with ``backward_inputs="replay"``: there the last backward sweep's messages and a zero
        error), or zeros (backward-pass mode with ``"zeros"``)."""
        cfg = self.config
        geoms = self._geoms_from(x, state)
        hs = [merge_batch(h, cfg.merge_fraction, cfg.fraction_rounding) for h in state["h"]]
        cs = [merge_batch(c, cfg.merge_fraction, cfg.fraction_rounding) for c in state["c"]]
        bwd = list(state["bwd"])
        fwd = []
        msg = input_message(x, cfg.message_size)
        for k, g in enumerate(geoms):
            bwd_in = jnp.zeros_like(bwd[k]) if cfg.backward_pass and not cfg.replays_inputs else bwd[k]
            msg = with_bias_unit(msg, k, cfg)
            if k > 0:
                fwd.append(msg)
            hs[k], cs[k], msg, bwd_out = self._layer(params, k, g, hs[k], cs[k], msg, bwd_in)
            if k > 0 and not cfg.backward_pass:
                bwd[k - 1] = without_bias_unit(bwd_out, cfg)
        logits = bound_output(msg[..., OUTPUT_CHANNEL], cfg.output_bound)
        new = {"h": tuple(hs), "c": tuple(cs), "bwd": tuple(bwd)}
        if cfg.replays_inputs:
            new["fwd"] = tuple(fwd)
        return new, logits

    def update(self, params, state, x, logits, y):
        """Store the error for the next step, or (backward-pass mode) run the backward sweep:
        layers in reverse order, the error into the last layer, each layer's backward message into
        the layer below, and as forward input x_t / the forward sweep's messages
        (``backward_inputs="replay"``) or zeros (``"zeros"``)."""
        cfg = self.config
        err = error_message(logits, y, logits.shape[-1], cfg.message_size, cfg.label_feeding, cfg.error_scale)
        if not cfg.backward_pass:
            return {**state, "bwd": (*state["bwd"][:-1], err)}
        geoms = self._geoms_from(x, state)
        hs, cs, bwd = list(state["h"]), list(state["c"]), list(state["bwd"])
        msg = err
        for k in reversed(range(len(geoms))):
            g = geoms[k]
            if not cfg.replays_inputs:
                fwd_in = jnp.zeros((msg.shape[0], g.in_units, cfg.message_size), jnp.float32)
            else:
                fwd_in = with_bias_unit(input_message(x, cfg.message_size), 0, cfg) if k == 0 else state["fwd"][k - 1]
            hs[k], cs[k], _, msg = self._layer(params, k, g, hs[k], cs[k], fwd_in, msg, backward=True)
            msg = without_bias_unit(msg, cfg)
            if k > 0 and cfg.replays_inputs:
                bwd[k - 1] = msg
        return {**state, "h": tuple(hs), "c": tuple(cs), "bwd": tuple(bwd)}
