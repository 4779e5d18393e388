"""Our VSML with default options computes what the authors' VSMLRNN computes.

Fixtures (numbers only) were recorded by running the authors' code (github.com/louiskirsch/vsml-neurips2021)
under Haiku with tools/record_fidelity_fixtures.py: their parameters, initial states, inputs,
labels and per-step logits for tiny configurations (dense and conv, batch 1 and 2, 1–3 micro
ticks, label feeding, hidden layers, per-layer and separate backward sub-RNNs, LayerNorm,
backward-pass mode, an odd state size). Here their parameters are mapped onto ours (their LSTM
kernel acts on ``[fwd, bwd, h]`` with gate order i, g, f, o; ours splits it into ``wx``/``wh`` with
gate order i, f, g, o), their initial states are injected, and our logits must equal theirs to
float32 precision (observed: ≤ 4e-7 of the largest logit). Controls show that the comparison can
fail (by 2e-2 to 1.3 of the largest logit): wrong labels, swapped message heads, an unmapped gate
order, and our legacy ``error_scale``, ``layer_norm_placement`` and ``backward_inputs``; the legacy
``fraction_rounding``, ``conv_padding``, ``conv_init_c_std`` and ``param_init`` are checked against
their initial states and initialisers (layout and distribution tests below).
"""

from __future__ import annotations

import json
import math
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vsml.config import from_dict
from vsml.learners.base import InputError, TaskSpec, run_steps
from vsml.learners.vsml import VSML, VSMLConfig

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "fidelity"
CASES = sorted(p.stem for p in FIXTURES.glob("*.npz") if p.stem != "init_stats")
RTOL, ATOL = 1e-4, 1e-5  # float32, different summation orders over 5–8 steps
TRUNC = 0.8796256610342398  # std of a standard normal truncated to ±2 (Haiku's TruncatedNormal does not rescale)


def load_case(name: str) -> dict:
    with np.load(FIXTURES / f"{name}.npz") as z:
        d = {k: np.asarray(z[k]) for k in z.files}
    d["meta"] = json.loads(d["meta"].tobytes().decode())
    return d


def _gates_to_ours(w: np.ndarray, n: int) -> np.ndarray:
    """Last axis: their gate blocks (i, g, f, o) -> ours (i, f, g, o)."""
    i, g, f, o = (w[..., k * n : (k + 1) * n] for k in range(4))
    return np.concatenate([i, f, g, o], axis=-1)


def sub_rnn_params(d: dict, module: str, n: int, m: int, layer_norm: bool, *, map_gates=True, swap_heads=False) -> dict:
    """One of their SubRNN modules (``vsmlrnn/~/sub_rnn_<k>``) as one of our cell parameter dicts."""
    p = lambda path, leaf: d[f"param:{module}/~/{path}:{leaf}"]  # noqa: E731
    w, b = p("custom_lstm/linear", "w"), p("custom_lstm/linear", "b")  # [2M + N, 4N] over [fwd, bwd, h]
    if map_gates:
        w, b = _gates_to_ours(w, n), _gates_to_ours(b, n)
    f_head, b_head = ("linear_1", "linear") if swap_heads else ("linear", "linear_1")
    out = {
        "wx": w[: 2 * m],
        "wh": w[2 * m :],
        "b": b,
        "wf": p(f_head, "w"),
        "bf": p(f_head, "b"),
        "wb": p(b_head, "w"),
        "bb": p(b_head, "b"),
    }
    if layer_norm:
        out |= {
            "ln_f_scale": p("layer_norm", "scale"),
            "ln_f_bias": p("layer_norm", "offset"),
            "ln_b_scale": p("layer_norm_1", "scale"),
            "ln_b_bias": p("layer_norm_1", "offset"),
        }
    return {k: jnp.asarray(v) for k, v in out.items()}


def our_params(d: dict, config: VSMLConfig, **kw) -> dict:
    """Their modules in creation order: the forward sub-RNN(s) (one, or one per layer), then the
    backward ones (with ``separate_backward_rnn``)."""
    n_rnn = config.num_layers if config.per_layer_rnn else 1
    modules = sorted(
        {k.split(":")[1].split("/~/")[1] for k in d if k.startswith("param:")},
        key=lambda s: int(s.rpartition("_")[2]) if s != "sub_rnn" else 0,
    )
    cells = [
        sub_rnn_params(d, f"vsmlrnn/~/{mod}", config.state_size, config.message_size, config.layer_norm, **kw)
        for mod in modules
    ]
    params = {"rnn": tuple(cells[:n_rnn])}
    if config.separate_backward_rnn:
        params["bwd_rnn"] = tuple(cells[n_rnn : 2 * n_rnn])
    assert len(cells) == n_rnn * (2 if config.separate_backward_rnn else 1)
    return params


def config_of(d: dict, **options) -> VSMLConfig:
    return from_dict(VSMLConfig, {**d["meta"]["ours"], **options})


def injected_state(learner: VSML, d: dict) -> dict:
    """Our state pytree with their initial LSTM states (every example starts from the same copy)."""
    meta = d["meta"]
    task = TaskSpec(tuple(meta["input_shape"]), meta["classes"], meta["batch"])
    state = learner.init_state(None, jax.random.PRNGKey(0), task)
    hs, cs = [], []
    for k, h in enumerate(state["h"]):
        for name, out in (("hidden", hs), ("cell", cs)):
            theirs = d[f"state:{k}:{name}"]
            flat = theirs.reshape(-1, theirs.shape[-1])
            assert flat.shape == h.shape[1:], (k, flat.shape, h.shape)
            out.append(jnp.broadcast_to(jnp.asarray(flat), h.shape))
    return {**state, "h": tuple(hs), "c": tuple(cs)}


@partial(jax.jit, static_argnames="learner")
def _run(learner, params, state, xs, ys):
    return run_steps(learner, params, state, xs, ys)[1].logits


def our_logits(d: dict, config: VSMLConfig | None = None, ys=None, **param_kw) -> np.ndarray:
    config = config or config_of(d)
    learner = VSML(config)
    state = injected_state(learner, d)
    params = our_params(d, config, **param_kw)
    ys = d["ys"] if ys is None else ys
    return np.asarray(_run(learner, params, state, jnp.asarray(d["xs"]), jnp.asarray(ys)))


def _rel_diff(a, b) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("name", CASES)
def test_default_semantics_match_authors(name):
    d = load_case(name)
    assert VSMLConfig() == from_dict(VSMLConfig, {})  # the fixtures' configs use only the defaults below
    got = our_logits(d)
    assert got.shape == d["logits"].shape
    assert float(np.abs(d["logits"]).max()) > 1e-2  # not trivially zero
    np.testing.assert_allclose(got, d["logits"], rtol=RTOL, atol=ATOL)


def test_fixtures_cover_the_options():
    metas = [load_case(n)["meta"]["ours"] | {"batch": load_case(n)["meta"]["batch"]} for n in CASES]
    assert len(CASES) >= 12
    assert {m["batch"] for m in metas} == {1, 2}
    assert {m["micro_ticks"] for m in metas} == {1, 2, 3}
    for flag in ("label_feeding", "layer_norm", "per_layer_rnn", "backward_pass", "separate_backward_rnn"):
        assert any(m[flag] for m in metas), flag
    kinds = [tuple((h["kind"], h.get("stride", 1)) for h in m["hidden_layers"]) for m in metas]
    assert any(("conv", 2) in k for k in kinds) and any(k.count(("conv", 1)) == 2 for k in kinds)
    assert any(m["state_size"] % 2 for m in metas)


# ---- controls: the comparison detects a wrong mapping or a non-default option ------------------

CONTROLS = {
    # name: (case, what to change, kwargs) -> must differ from their logits by more than CONTROL_MIN
    # (relative to their largest logit; the fixtures themselves match to ~2e-7)
    "labels_shifted": ("dense_b2", "ys", None),
    "message_heads_swapped": ("hidden_b2_label", "param", {"swap_heads": True}),
    "gate_order_unmapped": ("dense_b1", "param", {"map_gates": False}),
    "error_scale_sum": ("dense_ticks3_b2", "config", {"error_scale": "sum"}),
    "layer_norm_reduced": ("layer_norm_b2", "config", {"layer_norm_placement": "reduced"}),
    "backward_inputs_zeros": ("conv_s1_backward_pass_b2", "config", {"backward_inputs": "zeros"}),
}


CONTROL_MIN = 100 * RTOL


@pytest.mark.parametrize("control", sorted(CONTROLS))
def test_controls_differ_clearly(control):
    case, kind, kw = CONTROLS[control]
    d = load_case(case)
    if kind == "ys":
        got = our_logits(d, ys=(d["ys"] + 1) % d["meta"]["classes"])
    elif kind == "param":
        got = our_logits(d, **kw)
    else:
        got = our_logits(d, config=config_of(d, **kw))
    diff = _rel_diff(got, d["logits"])
    print(f"{control}: max |ours - theirs| / max |theirs| = {diff:.3g}")
    assert diff > CONTROL_MIN, diff
    # and the fixture itself matches to float32 precision (relative)
    assert _rel_diff(our_logits(d), d["logits"]) < 1e-4


# ---- initial states and distributions ---------------------------------------------------------


def test_initial_state_layout_matches_authors():
    """Our own initial states (not injected) have their shapes and their count of random c units
    (⌊N·fraction⌋: 3 of N = 7); ``fraction_rounding="round"`` (ours before) would draw 4."""
    for name in CASES:
        d = load_case(name)
        meta = d["meta"]
        task = TaskSpec(tuple(meta["input_shape"]), meta["classes"], meta["batch"])
        for options, same in (({}, True), ({"fraction_rounding": "round"}, meta["ours"]["state_size"] % 2 == 0)):
            state = VSML(config_of(d, **options)).init_state(None, jax.random.PRNGKey(0), task)
            for k, c in enumerate(state["c"]):
                theirs = d[f"state:{k}:cell"].reshape(-1, d[f"state:{k}:cell"].shape[-1])
                assert c.shape[1:] == theirs.shape and not np.any(d[f"state:{k}:hidden"])
                random_units = lambda a: int(np.any(np.asarray(a).reshape(-1, a.shape[-1]) != 0, axis=0).sum())  # noqa: E731
                assert (random_units(c) == random_units(theirs)) == same, (name, options, k)
        if any(h["kind"] == "conv" for h in meta["ours"]["hidden_layers"]):  # VALID: other layer sizes, or none
            try:
                state = VSML(config_of(d, conv_padding="valid")).init_state(None, jax.random.PRNGKey(0), task)
            except InputError:
                continue
            assert [c.shape[1] for c in state["c"]] != [
                d[f"state:{k}:cell"][..., 0].size for k in range(len(state["c"]))
            ]


def test_param_init_distribution_matches_authors():
    """Default ``param_init="joint"``: the LSTM kernel over [fwd, bwd, h] has std parameter
    1/√(2M + N), as their Haiku initialiser; message heads 1/√N. ``"blockwise"`` (ours before) differs."""
    with np.load(FIXTURES / "init_stats.npz") as z:
        stats = {k: np.asarray(z[k]) for k in z.files}
    n, m = 16, 8
    assert tuple(stats["lstm_kernel_shape"]) == (2 * m + n, 4 * n)
    want = TRUNC / math.sqrt(2 * m + n)
    assert abs(stats["lstm_kernel_std"] / want - 1) < 0.03  # their 8 draws of 2,048 entries
    keys = jax.random.split(jax.random.PRNGKey(0), 8)
    joint = [VSML(VSMLConfig()).init_params(k)["rnn"][0] for k in keys]
    kernel = np.concatenate([np.concatenate([np.asarray(p["wx"]), np.asarray(p["wh"])]) for p in joint])
    assert abs(kernel.std() / want - 1) < 0.03
    for part in ("wx", "wh"):
        assert abs(np.std([np.asarray(p[part]) for p in joint]) / want - 1) < 0.04
    heads = np.std([np.asarray(p["wf"]) for p in joint])
    assert abs(heads / (TRUNC / math.sqrt(n)) - 1) < 0.05 and abs(stats["head_std"] / (TRUNC / math.sqrt(n)) - 1) < 0.05
    block = [VSML(VSMLConfig(param_init="blockwise")).init_params(k)["rnn"][0] for k in keys]
    assert abs(np.std([np.asarray(p["wx"]) for p in block]) / (TRUNC / math.sqrt(2 * m)) - 1) < 0.04
    assert np.std([np.asarray(p["wx"]) for p in block]) / want > 1.3  # the deviation is clearly visible


def test_initial_cell_state_distribution_matches_authors():
    """Random part of c: ⌊N·fraction⌋ units, std parameter 1/√A (dense) and 1/√k (conv, default
    ``conv_init_c_std="kernel"``); ``"fan_in"`` (ours before) uses 1/√(k·k·C_in)."""
    from vsml.learners.vsml import LayerSpec

    with np.load(FIXTURES / "init_stats.npz") as z:
        stats = {k: np.asarray(z[k]) for k in z.files}
    conv = (LayerSpec(kind="conv", channels=8, kernel=3),)
    for name, cfg, shape, want in (
        ("dense", VSMLConfig(), (20,), TRUNC / math.sqrt(20)),
        ("conv", VSMLConfig(hidden_layers=conv), (6, 6, 8), TRUNC / math.sqrt(3)),
    ):
        c = np.asarray(VSML(cfg).init_state(None, jax.random.PRNGKey(0), TaskSpec(shape, 10, 1))["c"][0][0])
        assert int(stats[f"{name}.cell_random_units"]) == 8 and bool(np.all(c[:, 8:] == 0)) and np.all(c[:, :8] != 0)
        assert abs(c[:, :8].std() / want - 1) < 0.06, (name, c[:, :8].std(), want)
        assert abs(stats[f"{name}.cell_random_std"] / want - 1) < 0.06, (name, stats[f"{name}.cell_random_std"], want)
    legacy = VSMLConfig(hidden_layers=conv, conv_init_c_std="fan_in")
    c = np.asarray(VSML(legacy).init_state(None, jax.random.PRNGKey(0), TaskSpec((6, 6, 8), 10, 1))["c"][0][0])
    assert abs(c[:, :8].std() / (TRUNC / math.sqrt(72)) - 1) < 0.06
