"""Learning-algorithm cloning: train the VSML sub-RNN to behave like per-cell backprop (the paper's Sec. "Meta learning
backpropagation"; docs/cloning.md).

The VSML RNN's cells interact only through summed messages, so cloning works on **single,
independent cells**, a pool of ``batch`` of them per cell kind, run as a batch of 1×1 dense
layers by the deployment kernel (:func:`vsml.learners.vsml.dense_layer`, ``reduce="sum"``) in the
backward-pass mode with ``backward_inputs="zeros"``: per step a forward sweep (``fwd_in`` = x_t, ``bwd_in`` = 0), then
a backward
sweep (``fwd_in`` = 0, ``bwd_in`` = δ_t), ``micro_ticks`` ticks each. A cell's weight is ``c[0]``
(the unit ``init_state`` randomises). Targets come from :mod:`vsml.cloning.backprop_la`, starting
from each cell's own read-out at the start of a chunk:

    forward-sweep message  = cell_forward(w_t, x_t)            (all M channels; ch1 = w_t f(x_t))
    backward-sweep message = cell_backward(w_t, x_t, δ_t)[0]    (ch0 = w_t δ_t f'(x_t))
    read-out c[0]          = w_t after the forward sweep, w_{t+1} = w_t − α f(x_t) δ_t after the backward one

Loss: squared errors of both messages (every channel) plus ``readout_weight`` × the read-out
errors, divided per cell by the mean squared reference weight plus ``loss_floor``², averaged.
Curriculum: ``stages`` of (iterations, chunk length, reset probability); cells persist across
chunks (truncated BPTT) and a ``reset_prob`` share is renewed every step, so the sub-RNN is
trained on long-lived states. Start: the hand-constructed circuit of
:mod:`vsml.cloning.handcrafted` (``init="handcrafted"``, only its non-zero parameters trained) or
random parameters. Each cell kind (``"linear"`` for the first layer, ``"tanh"`` for later ones)
has its own sub-RNN (``per_layer_rnn``). The best parameters on a fixed validation set are kept.

Random streams (no dataset; they cover normalised MNIST/Fashion pixels and softmax errors):
- linear cells: per cell a background value ~ U[bg_range] and an "on" probability ~ U[0, 1];
  on-steps draw x ~ U[input_range];
- tanh cells: pre-activations z = μ + σ·N(0,1), μ ~ U[±preact_mean], σ ~ U[0, preact_std], clipped;
- bias cells (a ``bias_share`` of fresh cells, for LAs with bias units): a constant input, 1 for
  linear cells and z = ``preact_clip`` (what :attr:`VSMLConfig.hidden_bias_input` is set to) for tanh cells;
- errors: δ_t = s·U[-1, 1] with a per-cell scale s log-uniform in [error_min, 1];
- weights: w_0 = s_w·N(0,1) with s_w log-uniform in ``weight_range``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import time
from functools import partial
from pathlib import Path
from typing import Annotated

import jax
import jax.numpy as jnp
import optax

from vsml import artifacts
from vsml.cloning import backprop_la as ref
from vsml.config import ConfigError, Range, check_ranges
from vsml.errors import VSMLError
from vsml.learners.vsml import DenseGeom, LayerSpec, VSMLConfig, dense_layer, init_cell_params
from vsml.runlog import RunLogger
from vsml.training import TrainingLoop

FORGET_BIAS_INIT = 3.0  # added to the forget-gate bias at init: f = σ(5 + 3) ≈ 0.9997


class CloningError(VSMLError, FloatingPointError):
    """Cloning diverged (a non-finite loss): lower ``adam_lr`` or ``clip``, or resume from an earlier checkpoint."""


@dataclasses.dataclass(frozen=True)
class CloneStage:
    """``iterations`` Adam steps on chunks of ``seq_len`` online steps. Each step first replaces a
    ``reset_prob`` share of the cell pool with fresh cells (1.0: every chunk starts fresh; smaller:
    cells persist across chunks — truncated BPTT over long lifetimes, mean age seq_len/reset_prob)."""

    iterations: Annotated[int, Range(">=1")]
    seq_len: Annotated[int, Range(">=1")]
    reset_prob: Annotated[float, Range("(0,1]")] = 1.0

    def __post_init__(self):
        check_ranges(self, "clone stage")


@dataclasses.dataclass(frozen=True)
class CloneConfig:
    """Everything a cloning run depends on (with ``seed``, it determines the result)."""

    name: str = "cloned_sgd_1layer"
    # hidden layer sizes of the shipped VSMLConfig (tanh cells above layer 0)
    hidden: Annotated[tuple[int, ...], Range(">=1")] = ()
    lr: Annotated[float, Range(">0")] = 0.01  # α of the cloned SGD
    state_size: Annotated[int, Range(">=1")] = 16
    message_size: Annotated[int, Range(">=2")] = 8
    micro_ticks: Annotated[int, Range(">=1")] = 2
    batch: Annotated[int, Range(">=1")] = 256  # independent cells per Adam step (per cell kind)
    stages: tuple[CloneStage, ...] = (CloneStage(300, 10), CloneStage(600, 40), CloneStage(600, 150))
    adam_lr: Annotated[float, Range(">0")] = 3e-3
    final_lr_fraction: Annotated[float, Range("[0,1]")] = 0.1  # cosine decay of the Adam rate to this fraction
    clip: Annotated[float, Range(">0")] = 1.0
    readout_weight: Annotated[float, Range(">=0")] = 1.0
    weight_range: Annotated[tuple[float, float], Range(">0")] = (0.01, 0.3)
    input_range: Annotated[tuple[float, float], Range("any")] = (-1.0, 3.0)
    bg_range: Annotated[tuple[float, float], Range("any")] = (-1.0, 0.5)
    preact_mean: Annotated[float, Range(">=0")] = 2.5
    preact_std: Annotated[float, Range(">=0")] = 2.0
    preact_clip: Annotated[float, Range(">0")] = 5.0
    error_min: Annotated[float, Range("(0,1]")] = 0.01
    max_weight: Annotated[float, Range(">0")] = (
        2.0  # pool cells whose read-out leaves [-max_weight, max_weight] are renewed
    )
    loss_floor: Annotated[float, Range(">0")] = 0.02  # per-sequence loss scale = mean w² + loss_floor²
    init: str = "handcrafted"  # "handcrafted" (vsml.cloning.handcrafted circuit) or "random"
    support_only: bool = True  # train only the parameters that are non-zero at the start
    init_from: str | None = None  # LA name/path whose cells (matched by kind) initialise ours
    bias: bool = False  # the cloned LA runs with bias units (VSMLConfig.bias): SGD with biases
    bias_share: Annotated[float, Range("[0,1)")] = (
        0.0  # share of fresh cells that see a bias unit's constant input (1, or z = 5 for tanh)
    )
    train_kinds: tuple[str, ...] | None = None  # only these kinds are trained (None: all)
    seed: Annotated[int, Range(">=0")] = 0
    checkpoint_every: Annotated[int, Range(">=1")] = 200
    eval_seq_len: Annotated[int, Range(">=1")] = 2000  # sequence length of the final per-cell report
    val_seq_len: Annotated[int, Range(">=1")] = (
        200  # validation (fixed cells and streams) at every checkpoint; the best params are kept
    )

    def __post_init__(self):
        check_ranges(self, "")
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "stages", tuple(self.stages))
        for name in ("weight_range", "input_range", "bg_range"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        if not self.name or any(ch in self.name for ch in "/\\ ."):
            raise ConfigError(f"name must be a plain file stem, got {self.name!r}")
        if not self.stages:
            raise ConfigError("need at least one stage")
        if not 0 < self.weight_range[0] < self.weight_range[1]:
            raise ConfigError(f"weight_range must be 0 < low < high, got {self.weight_range}")
        if self.init not in ("handcrafted", "random"):
            raise ConfigError(f"init must be 'handcrafted' or 'random', got {self.init!r}")
        if self.train_kinds is not None:
            object.__setattr__(self, "train_kinds", tuple(self.train_kinds))
            bad = [k for k in self.train_kinds if k not in self.kinds]
            if bad or not self.train_kinds:
                raise ConfigError(f"train_kinds must be a non-empty subset of {self.kinds}, got {self.train_kinds}")

    @property
    def kinds(self) -> tuple[str, ...]:
        """Cell kind of each layer's sub-RNN."""
        return tuple(ref.cell_kind_for_layer(k) for k in range(len(self.hidden) + 1))

    @property
    def total_iterations(self) -> int:
        return sum(s.iterations for s in self.stages)


def vsml_config(cc: CloneConfig) -> VSMLConfig:
    """The VSMLConfig a cloned LA runs with (sum reduction, backward-pass mode, one sub-RNN per layer).

    ``backward_inputs="zeros"``: the cloned circuit assumes that the forward sweep sees no backward
    input and the backward sweep no forward input (as :func:`simulate_cells` trains it).
    ``error_scale="sum"``: every example's copy of a weight takes its own SGD step with the full
    error and the batch merge averages them, so the clone is SGD with learning rate ``lr`` on the
    batch-mean loss at any batch size (``"batch_mean"`` would divide the rate by the batch size).
    """
    return VSMLConfig(
        state_size=cc.state_size,
        message_size=cc.message_size,
        micro_ticks=cc.micro_ticks,
        hidden_layers=tuple(LayerSpec(kind="dense", units=h) for h in cc.hidden),
        reduce="sum",
        per_layer_rnn=len(cc.hidden) > 0,
        backward_pass=True,
        init_c_fraction=1.0 / cc.state_size,  # only c[0] (the weight) is random
        backward_inputs="zeros",
        error_scale="sum",
        bias=cc.bias,
        hidden_bias_input=cc.preact_clip,
    )


def init_clone_params(cc: CloneConfig, key: jax.Array) -> dict:
    """Initial sub-RNN params ``{"rnn": (one cell dict per layer, in layer order)}``: copied by cell
    kind from ``cc.init_from`` when given, else the hand-constructed circuit
    (:func:`vsml.cloning.handcrafted.handcrafted_cell`, ``init="handcrafted"``) or random
    (``init="random"``, forget bias raised by :data:`FORGET_BIAS_INIT`)."""
    cells = []
    n = cc.state_size
    source = {}
    if cc.init_from:
        from vsml import pretrained

        src_cfg, src_params = pretrained.load(cc.init_from)
        if (src_cfg.state_size, src_cfg.message_size) != (cc.state_size, cc.message_size):
            raise ConfigError(
                f"init_from {cc.init_from!r} has N={src_cfg.state_size}, M={src_cfg.message_size}; "
                f"this clone needs N={cc.state_size}, M={cc.message_size}"
            )
        for i, cell in enumerate(src_params["rnn"]):
            source.setdefault(ref.cell_kind_for_layer(i), cell)
    for kind, k in zip(cc.kinds, jax.random.split(key, len(cc.kinds))):
        if kind in source:
            cells.append(dict(source[kind]))
            continue
        if cc.init == "handcrafted":
            from vsml.cloning.handcrafted import handcrafted_cell

            cells.append(handcrafted_cell(kind, cc.state_size, cc.message_size, cc.lr))
            continue
        p = init_cell_params(k, n, cc.message_size, False, "blockwise")  # the recipe's init since its first version
        p["b"] = p["b"].at[n : 2 * n].add(FORGET_BIAS_INIT)
        cells.append(p)
    return {"rnn": tuple(cells)}


# --------------------------------------------------------------------------------------------
# Random cloning data and the per-cell simulation


def fresh_cells(cc: CloneConfig, kind: str, key: jax.Array, batch: int) -> dict:
    """A pool of new cells: state ``h = 0``, ``c = (w_0, 0, …)`` and per-cell input statistics."""
    ks = jax.random.split(key, 6)
    lo, hi = math.log(cc.weight_range[0]), math.log(cc.weight_range[1])
    s_w = jnp.exp(jax.random.uniform(ks[0], (batch,), minval=lo, maxval=hi))
    w0 = s_w * jax.random.truncated_normal(ks[1], -2.5, 2.5, (batch,))
    n = cc.state_size
    if kind == "linear":
        loc = jax.random.uniform(ks[2], (batch,), minval=cc.bg_range[0], maxval=cc.bg_range[1])  # background
        spread = jax.random.uniform(ks[3], (batch,))  # probability of an "on" pixel
    else:
        loc = jax.random.uniform(ks[2], (batch,), minval=-cc.preact_mean, maxval=cc.preact_mean)
        spread = jax.random.uniform(ks[3], (batch,), maxval=cc.preact_std)
    if cc.bias_share > 0:  # bias cells: a constant input (background only, never "on"; no spread)
        is_bias = jax.random.uniform(ks[5], (batch,)) < cc.bias_share
        loc = jnp.where(is_bias, 1.0 if kind == "linear" else cc.preact_clip, loc)
        spread = jnp.where(is_bias, 0.0, spread)
    s_d = jnp.exp(jax.random.uniform(ks[4], (batch,), minval=math.log(cc.error_min), maxval=0.0))
    return {
        "h": jnp.zeros((batch, 1, n), jnp.float32),
        "c": jnp.zeros((batch, 1, n), jnp.float32).at[:, 0, 0].set(w0),
        "loc": loc,
        "spread": spread,
        "err_scale": s_d,
    }


def sample_inputs(cc: CloneConfig, kind: str, cells: dict, key: jax.Array, seq_len: int):
    """Random inputs ``x [T, batch]`` and errors ``delta [T, batch]`` for a pool of cells."""
    batch = cells["loc"].shape[0]
    k1, k2, k3 = jax.random.split(key, 3)
    if kind == "linear":
        on = jax.random.uniform(k1, (seq_len, batch), minval=cc.input_range[0], maxval=cc.input_range[1])
        x = jnp.where(jax.random.uniform(k2, (seq_len, batch)) < cells["spread"], on, cells["loc"])
    else:
        z = cells["loc"] + cells["spread"] * jax.random.normal(k1, (seq_len, batch))
        x = jnp.clip(z, -cc.preact_clip, cc.preact_clip)
    delta = cells["err_scale"] * jax.random.uniform(k3, (seq_len, batch), minval=-1.0, maxval=1.0)
    return x, delta


def reference_targets(cc: CloneConfig, kind: str, w0, x, delta):
    """Reference per-cell trajectory. Returns (fwd [T,b,M], bwd [T,b,M], w_before [T,b], w_after [T,b])."""
    m = cc.message_size

    def step(w, xd):
        xt, dt = xd
        fwd = ref.cell_forward(w, xt, kind, m)
        bwd, w_new = ref.cell_backward(w, xt, dt, kind, cc.lr, m)
        return w_new, (fwd, bwd, w, w_new)

    _, out = jax.lax.scan(step, w0, (x, delta))
    return out


def simulate_cells(cc: CloneConfig, p: dict, kind: str, h, c, x, delta):
    """Run independent VSML cells from states ``h, c [b,1,N]`` on a sequence (backward-pass mode).

    The cells are a batch of 1×1 dense layers run by the deployment kernel
    (:func:`vsml.learners.vsml.dense_layer` with the cloned LA's config). Returns ``((h, c), (fwd
    [T,b,M], bwd [T,b,M], read-out after forward sweep [T,b], after backward [T,b]))``.
    """
    m = cc.message_size
    config, geom = vsml_config(cc), DenseGeom(1, 1)
    batch = h.shape[0]
    in_ch = 0 if kind == "linear" else ref.FWD_CHANNEL
    zeros = jnp.zeros((batch, 1, m), jnp.float32)

    def step(hc, xd):
        h, c = hc
        xt, dt = xd
        h, c, fo, _ = dense_layer(p, h, c, ref.onehot_channel(xt, in_ch, m)[:, None], zeros, geom, config)
        r1 = c[:, 0, 0]
        h, c, _, bo = dense_layer(p, h, c, zeros, ref.onehot_channel(dt, ref.BWD_CHANNEL, m)[:, None], geom, config)
        return (h, c), (fo[:, 0], bo[:, 0], r1, c[:, 0, 0])

    return jax.lax.scan(step, (h, c), (x, delta))


def kind_loss(cc: CloneConfig, p: dict, kind: str, cells: dict, key: jax.Array, seq_len: int):
    """Cloning loss of one cell kind on a pool of cells over ``seq_len`` fresh random steps.

    The reference trajectory starts from each cell's current read-out (its own weight; no gradient
    through the start), so cells that already lived long (persistent pool) are judged on how well
    they keep following backprop from where they are. Returns (loss, diagnostics, advanced pool).
    """
    x, delta = sample_inputs(cc, kind, cells, key, seq_len)
    h, c = jax.lax.stop_gradient(cells["h"]), jax.lax.stop_gradient(cells["c"])
    w0 = c[:, 0, 0]
    tf, tb, wb, wa = reference_targets(cc, kind, w0, x, delta)
    (h, c), (of, ob, rb, ra) = simulate_cells(cc, p, kind, h, c, x, delta)
    scale = jnp.mean(wb**2, axis=0) + cc.loss_floor**2  # [batch]
    ef = jnp.sum((of - tf) ** 2, -1)
    eb = jnp.sum((ob - tb) ** 2, -1)
    er = (rb - wb) ** 2 + (ra - wa) ** 2
    loss = jnp.mean((ef + eb + cc.readout_weight * er) / scale)
    diag = {
        "fwd_rel": jnp.sqrt(jnp.mean(ef) / jnp.mean(jnp.sum(tf**2, -1))),
        "bwd_rel": jnp.sqrt(jnp.mean(eb) / (jnp.mean(jnp.sum(tb**2, -1)) + 1e-12)),
        "w_rel": jnp.sqrt(jnp.mean((ra - wa) ** 2) / jnp.mean(wa**2)),
        "upd_rel": jnp.sqrt(jnp.mean(((ra[-1] - w0) - (wa[-1] - w0)) ** 2) / (jnp.mean((wa[-1] - w0) ** 2) + 1e-12)),
    }
    new = {**cells, "h": jax.lax.stop_gradient(h), "c": jax.lax.stop_gradient(c)}
    return loss, diag, new


def init_pools(cc: CloneConfig, key: jax.Array) -> tuple[dict, ...]:
    """One pool of ``cc.batch`` fresh cells per cell kind."""
    return tuple(fresh_cells(cc, kind, k, cc.batch) for kind, k in zip(cc.kinds, jax.random.split(key, len(cc.kinds))))


def _renew(cc: CloneConfig, kind: str, cells: dict, key: jax.Array, reset_prob: float) -> dict:
    """Replace a random ``reset_prob`` share of the pool (and every diverged cell) with fresh cells."""
    k1, k2 = jax.random.split(key)
    batch = cells["loc"].shape[0]
    fresh = fresh_cells(cc, kind, k1, batch)
    w = cells["c"][:, 0, 0]
    bad = (
        ~jnp.all(jnp.isfinite(cells["c"]), axis=(1, 2))
        | ~jnp.all(jnp.isfinite(cells["h"]), axis=(1, 2))
        | (jnp.abs(w) > cc.max_weight)
    )
    reset = (jax.random.uniform(k2, (batch,)) < reset_prob) | bad

    def pick(a, b):
        m = reset.reshape((batch,) + (1,) * (a.ndim - 1))
        return jnp.where(m, b, a)

    return jax.tree_util.tree_map(pick, cells, fresh)


def total_loss(cc: CloneConfig, params: dict, pools, key: jax.Array, seq_len: int, reset_prob: float):
    keys = jax.random.split(key, 2 * len(cc.kinds))
    losses, diags, new_pools = [], {}, []
    for i, kind in enumerate(cc.kinds):
        cells = _renew(cc, kind, pools[i], keys[2 * i], reset_prob)
        if cc.train_kinds is not None and kind not in cc.train_kinds:
            new_pools.append(cells)
            continue
        loss, d, cells = kind_loss(cc, params["rnn"][i], kind, cells, keys[2 * i + 1], seq_len)
        losses.append(loss)
        new_pools.append(cells)
        diags |= {f"{kind}_{n}": v for n, v in d.items()}
    return sum(losses), (diags, tuple(new_pools))


def make_optimizer(cc: CloneConfig) -> optax.GradientTransformation:
    sched = optax.cosine_decay_schedule(cc.adam_lr, cc.total_iterations, alpha=cc.final_lr_fraction)
    return optax.chain(optax.clip_by_global_norm(cc.clip), optax.adam(sched))


def train_mask(cc: CloneConfig, params) -> dict:
    """1.0 where a parameter is trained: its non-zero entries at the start (``support_only``), else all.

    The hand-constructed circuit is exact only because most weights are exactly zero (e.g. nothing
    but the update path may write into the weight unit); keeping them zero keeps it stable."""
    if cc.support_only:
        return jax.tree_util.tree_map(lambda v: (v != 0).astype(jnp.float32), params)
    return jax.tree_util.tree_map(jnp.ones_like, params)


@partial(jax.jit, static_argnames=("cc", "seq_len", "reset_prob"))
def train_step(cc: CloneConfig, params, opt_state, pools, mask, key, seq_len: int, reset_prob: float):
    """One Adam step on ``seq_len`` steps of every pool (gradients times ``mask``).
    Returns (params, opt_state, pools, loss, diag)."""
    grad_fn = jax.value_and_grad(lambda p: total_loss(cc, p, pools, key, seq_len, reset_prob), has_aux=True)
    (loss, (diag, pools)), grads = grad_fn(params)
    grads = jax.tree_util.tree_map(jnp.multiply, grads, mask)
    updates, opt_state = make_optimizer(cc).update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, pools, loss, diag


@partial(jax.jit, static_argnames=("cc", "seq_len", "batch"))
def evaluate_cells(cc: CloneConfig, params, key, seq_len: int, batch: int = 256):
    """Per-kind diagnostics (relative RMS errors of messages, read-out and accumulated update) of
    fresh cells over ``seq_len`` steps in one go."""
    out = {}
    for i, (kind, k) in enumerate(zip(cc.kinds, jax.random.split(key, len(cc.kinds)))):
        k1, k2 = jax.random.split(k)
        loss, d, _ = kind_loss(cc, params["rnn"][i], kind, fresh_cells(cc, kind, k1, batch), k2, seq_len)
        out |= {f"{kind}_loss": loss} | {f"{kind}_{n}": v for n, v in d.items()}
    return out


def validation_loss(cc: CloneConfig, params, key) -> jax.Array:
    """Sum over trained kinds of the loss of fixed fresh cells over ``val_seq_len`` steps."""
    d = evaluate_cells(cc, params, key, cc.val_seq_len)
    kinds = cc.train_kinds if cc.train_kinds is not None else cc.kinds
    return sum(d[f"{k}_loss"] for k in dict.fromkeys(kinds))


# --------------------------------------------------------------------------------------------
# Checkpoints


def _stage_of(cc: CloneConfig, it: int) -> CloneStage:
    acc = 0
    for s in cc.stages:
        acc += s.iterations
        if it < acc:
            return s
    return cc.stages[-1]


def save_checkpoint(path: Path, params, bundle, iteration: int, elapsed: float) -> None:
    """Atomically write params + ``bundle`` (optimizer state, cell pools, best params) + progress
    as a ``clone-checkpoint`` artifact (:mod:`vsml.artifacts`)."""
    artifacts.save(path, "clone-checkpoint", {"state": (params, bundle)}, {"iteration": iteration, "elapsed": elapsed})


def load_checkpoint(path: Path, params, bundle):
    """Restore a checkpoint into the structure of ``(params, bundle)``. Returns (params, bundle, it, elapsed)."""
    art = artifacts.load(path, kind="clone-checkpoint")
    p, b = art.restore("state", (params, bundle))
    p, b = jax.tree_util.tree_map(jnp.asarray, (p, b))
    return p, b, int(art.meta["iteration"]), float(art.meta.get("elapsed", 0.0))


# --------------------------------------------------------------------------------------------
# The run


def run_clone(
    cc: CloneConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    command: str | None = None,
    log=print,
    stop_after: int | None = None,
    checkpoint_dir: str | Path | None = None,
) -> Path | None:
    """Clone backprop into the sub-RNN; write ``<out_dir>/<name>.npz`` + ``.json``. Returns the npz path.

    Checkpoints go to ``<checkpoint_dir or out_dir>/<name>.ckpt.npz`` every ``checkpoint_every`` iterations (atomic);
    ``resume=True`` continues from it (the data stream is a function of (seed, iteration), so a
    resumed run reproduces an uninterrupted one). ``stop_after=k`` stops (with a checkpoint) once
    iteration k is done and returns None — for time-boxed runs and tests. At every checkpoint the
    parameters are validated (fixed cells and streams, ``val_seq_len`` steps); the saved LA is the
    best validated one (the start counts too).

    The loop is :class:`vsml.training.TrainingLoop` (shared with meta-training): both folders are
    locked for the run (:class:`vsml.runs.RunLock`); a fresh run refuses folders that hold this
    clone's checkpoint or LA unless ``overwrite`` (which removes ``<name>.ckpt.npz``,
    ``<name>.metrics.csv``, ``<name>.npz`` and ``<name>.json``); SIGINT / SIGTERM stop after the
    current step with a checkpoint and raise :class:`vsml.runs.StopRequested`.
    """
    out_dir = Path(out_dir)
    ckpt_dir = Path(checkpoint_dir or out_dir)
    ckpt = ckpt_dir / f"{cc.name}.ckpt.npz"
    loop = TrainingLoop(ckpt_dir, "cloning", command=command or "vsml clone", log=log)
    with contextlib.ExitStack() as stack:
        loop.lock(stack, out_dir)
        la = [out_dir / f"{cc.name}.npz", out_dir / f"{cc.name}.json"]
        loop.preflight(
            resume=resume,
            overwrite=overwrite,
            newest=ckpt if ckpt.exists() else None,
            checkpoints=str(ckpt),
            foreign=[str(p) for p in la if p.exists()],
            owned=[ckpt, ckpt_dir / f"{cc.name}.metrics.csv", *la],
        )
        return _run_clone(
            cc, out_dir, ckpt, loop, resume=resume, progress=progress, command=command, log=log, stop_after=stop_after
        )


def _run_clone(
    cc: CloneConfig, out_dir: Path, ckpt: Path, loop: TrainingLoop, *, resume, progress, command, log, stop_after
):
    from vsml import pretrained

    root = jax.random.PRNGKey(cc.seed)
    params = init_clone_params(cc, jax.random.fold_in(root, 0))
    opt_state = make_optimizer(cc).init(params)
    pools = init_pools(cc, jax.random.fold_in(root, 3))
    mask = train_mask(cc, params)
    val_key = jax.random.fold_in(root, 4)
    best = (params, validation_loss(cc, params, val_key))
    start_val = float(best[1])
    log(f"validation loss at the start: {start_val:.3e}")
    start, elapsed = 0, 0.0
    if resume:
        params, (opt_state, pools, best), start, elapsed = load_checkpoint(ckpt, params, (opt_state, pools, best))
        log(f"resuming {cc.name} at iteration {start}/{cc.total_iterations}")
    data_key = jax.random.fold_in(root, 1)
    t0 = time.time() - elapsed
    last = {}
    logger = RunLogger(
        ckpt.parent,
        f"clone {cc.name}",
        ("iteration", "seq_len", "loss", "validation_loss"),
        progress=progress,
        metrics_name=f"{cc.name}.metrics",
        every=cc.checkpoint_every,
        log=log,
        info=lambda r: f"T={r['seq_len']} loss={r['loss']:.2e}",
    )
    step_out = {}

    def step(it: int) -> None:
        nonlocal params, opt_state, pools
        stage = _stage_of(cc, it)
        params, opt_state, pools, loss, diag = train_step(
            cc, params, opt_state, pools, mask, jax.random.fold_in(data_key, it), stage.seq_len, stage.reset_prob
        )
        step_out.update(seq_len=stage.seq_len, loss=loss, diag=diag)

    def record(iteration: int) -> dict:
        """The metrics row of ``iteration`` (every 25 and at checkpoints: reading the loss waits for the step)."""
        nonlocal last
        loss = float(step_out["loss"])
        if not math.isfinite(loss):
            raise CloningError(f"cloning loss became {loss} at iteration {iteration - 1}")
        last = {k: float(v) for k, v in step_out["diag"].items()} | {"loss": loss}
        return {"iteration": iteration, "seq_len": step_out["seq_len"], "loss": loss, "validation_loss": ""}

    def checkpoint(iteration: int) -> Path:
        nonlocal best
        step_out["row"] = rec = record(iteration)
        val = validation_loss(cc, params, val_key)
        if float(val) < float(best[1]):
            best = (params, val)
        rec["validation_loss"] = float(val)
        loop.write(
            f"checkpoint {ckpt}",
            iteration,
            lambda: save_checkpoint(ckpt, params, (opt_state, pools, best), iteration, time.time() - t0),
            lambda: ckpt if ckpt.exists() else None,
        )
        return ckpt

    def after(iteration: int, saved: bool) -> None:
        if saved or iteration % 25 == 0:
            rec = step_out.pop("row") if saved else record(iteration)
            loop.write(
                f"{cc.name}.metrics.csv",
                iteration,
                lambda: logger.iteration(rec),
                lambda: ckpt if ckpt.exists() else None,
            )

    if (
        loop.run(
            logger,
            start,
            cc.total_iterations,
            resumed=resume and start > 0,
            step=step,
            due=lambda i: i % cc.checkpoint_every == 0,
            checkpoint=checkpoint,
            after=after,
            stop_after=stop_after,
        )
        is not None
    ):
        return None
    wall = time.time() - t0
    params = best[0]
    log(f"validation loss of the kept parameters: {float(best[1]):.3e}")
    report = {k: float(v) for k, v in evaluate_cells(cc, params, jax.random.fold_in(root, 2), cc.eval_seq_len).items()}
    log(
        f"cloned {cc.name} in {wall:.0f} s; per-cell check over {cc.eval_seq_len} steps: "
        + ", ".join(f"{k}={v:.4f}" for k, v in report.items())
    )
    meta = {
        "clone_config": _to_plain(cc),
        "validation_loss": float(best[1]),
        "validation_loss_start": start_val,
        "command": command or " ".join(sys.argv),
        "seed": cc.seed,
        "wall_clock_s": round(wall, 1),
        "iterations": cc.total_iterations,
        "cell_report": report,
        "train_diagnostics": last,
        "jax_version": jax.__version__,
    }
    return loop.write(
        f"{out_dir / cc.name}.npz",
        cc.total_iterations,
        lambda: pretrained.save(out_dir / f"{cc.name}.npz", vsml_config(cc), params, meta),
        lambda: ckpt if ckpt.exists() else None,
    )


def _to_plain(obj):
    from vsml.config import to_dict

    return to_dict(obj)
