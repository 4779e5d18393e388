"""Record what the authors' VSML implementation computes, as fixtures for tests/test_fidelity.py.

    python tools/record_fidelity_fixtures.py AUTHORS_CHECKOUT [OUT_DIR]   # OUT_DIR: tests/fixtures/fidelity

``AUTHORS_CHECKOUT`` is a checkout of github.com/louiskirsch/vsml-neurips2021 (the code of Kirsch &
Schmidhuber, NeurIPS 2021). Its modules are imported from there and run under Haiku; nothing of
it is copied. They need an older JAX and Haiku than this package, so run this script with its own
environment (docs/vsml.md, "Fidelity to the authors' code")::

    python3.11 -m venv /tmp/authors-venv
    /tmp/authors-venv/bin/pip install "jax==0.4.30" "jaxlib==0.4.30" "dm-haiku==0.0.12" chex "optax<0.2.3" "numpy<2"
    /tmp/authors-venv/bin/python tools/record_fidelity_fixtures.py /path/to/vsml-neurips2021

For each tiny configuration (CASES) it writes ``<case>.npz`` holding numbers only:

* ``meta``: JSON with the configuration (``theirs``: their model options; ``ours``: the matching
  ``VSMLConfig`` fields), the batch size, classes, steps and input shape;
* ``param:<haiku module>:<name>``: their (randomly perturbed, so that every parameter matters)
  Haiku parameters, in their layout (LSTM kernel over ``[fwd, bwd, h]``, gate order i, g, f, o);
* ``state:<layer>:hidden`` / ``state:<layer>:cell``: their initial LSTM state of every layer
  (``[in, out, N]`` dense, ``[k, k, C_in, C_out, N]`` conv), drawn with the same Haiku RNG key the
  model run uses;
* ``xs [T, B, *input]``, ``ys [T, B]`` (int labels; their model gets them one-hot) and
  ``logits [T, B, C]``, their per-step outputs;

plus ``init_stats.npz``: standard deviations of their freshly initialised parameters and initial
cell states at default sizes (for the init-distribution tests).

Haiku >= 0.0.7 requires ``split_rng`` in ``hk.vmap``; their code predates it. The script passes
``split_rng=False`` (the older behaviour); their vmapped functions draw no random numbers, so this
changes nothing they compute.
"""

from __future__ import annotations

import json
import sys
import zlib
from pathlib import Path

M, N = 4, 6  # message and state size of the tiny cases

#: name -> (their sub_rnn options, their vsml_rnn options, layer specs, input shape, classes, batch, steps)
CASES = {
    "dense_b1": ({}, {}, [{"type": "dense"}], (6,), 3, 1, 6),
    "dense_b2": ({}, {}, [{"type": "dense"}], (6,), 3, 2, 6),
    "dense_ticks1_label": ({}, {"num_micro_ticks": 1, "feed_label": True}, [{"type": "dense"}], (6,), 3, 1, 6),
    "dense_ticks3_b2": ({}, {"num_micro_ticks": 3}, [{"type": "dense"}], (6,), 3, 2, 6),
    "odd_state_b2": ({"slow_size": 7}, {}, [{"type": "dense"}], (6,), 3, 2, 6),
    "hidden_b2_label": ({}, {"feed_label": True}, [{"type": "dense", "out_size": 5}, {"type": "dense"}], (6,), 3, 2, 6),
    "hidden_layerwise": (
        {},
        {"layerwise_rnns": True},
        [{"type": "dense", "out_size": 5}, {"type": "dense"}],
        (6,),
        3,
        1,
        6,
    ),
    "layer_norm_b2": ({"layer_norm": True}, {}, [{"type": "dense", "out_size": 5}, {"type": "dense"}], (6,), 3, 2, 6),
    "backward_pass_1layer": ({}, {"backward_pass": True}, [{"type": "dense"}], (6,), 3, 1, 8),
    "backward_pass_b2_label": (
        {},
        {"backward_pass": True, "feed_label": True},
        [{"type": "dense", "out_size": 5}, {"type": "dense", "out_size": 4}, {"type": "dense"}],
        (6,),
        3,
        2,
        8,
    ),
    "backward_pass_separate_layerwise": (
        {"layer_norm": True},
        {"backward_pass": True, "separate_backward_rnn": True, "layerwise_rnns": True},
        [{"type": "dense", "out_size": 5}, {"type": "dense"}],
        (6,),
        3,
        1,
        8,
    ),
    "conv_s1_conv_s1": (
        {},
        {},
        [
            {"type": "conv", "kernel_size": 3, "stride": 1, "out_channels": 2},
            {"type": "conv", "kernel_size": 3, "stride": 1, "out_channels": 2},
            {"type": "dense"},
        ],
        (4, 4, 1),
        3,
        1,
        5,
    ),
    "conv_s1_conv_s1_ln_b2": (
        {"layer_norm": True},
        {"feed_label": True},
        [
            {"type": "conv", "kernel_size": 3, "stride": 1, "out_channels": 2},
            {"type": "conv", "kernel_size": 3, "stride": 1, "out_channels": 2},
            {"type": "dense"},
        ],
        (3, 3, 2),
        3,
        2,
        5,
    ),
    "conv_s1_backward_pass_b2": (
        {},
        {"backward_pass": True},
        [{"type": "conv", "kernel_size": 3, "stride": 1, "out_channels": 2}, {"type": "dense"}],
        (4, 4, 2),
        3,
        2,
        5,
    ),
    "conv_s2_ln_bp_label": (  # the shape of their conv experiment (configs/conv.yaml), tiny
        {"layer_norm": True},
        {"backward_pass": True, "feed_label": True},
        [{"type": "conv", "kernel_size": 3, "stride": 2, "out_channels": 2}, {"type": "dense"}],
        (5, 5, 1),
        3,
        2,
        5,
    ),
}

SUB_RNN = {"msg_size": M, "slow_size": N, "init_rand_proportion": 0.5, "layer_norm": False}
VSML_RNN = {
    "num_micro_ticks": 2,
    "tanh_bound": 100,
    "output_idx": 1,
    "backward_pass": False,
    "separate_backward_rnn": False,
    "feed_label": False,
    "layerwise_rnns": False,
}


def ours(sub: dict, rnn: dict, specs: list[dict]) -> dict:
    """The VSMLConfig fields (semantic options at their defaults) that describe the same model."""
    hidden = []
    for s in specs[:-1]:
        if s["type"] == "dense":
            hidden.append({"kind": "dense", "units": s["out_size"]})
        else:
            hidden.append(
                {"kind": "conv", "channels": s["out_channels"], "kernel": s["kernel_size"], "stride": s["stride"]}
            )
    return {
        "state_size": sub["slow_size"],
        "message_size": sub["msg_size"],
        "micro_ticks": rnn["num_micro_ticks"],
        "hidden_layers": hidden,
        "reduce": "mean",
        "layer_norm": sub["layer_norm"],
        "per_layer_rnn": rnn["layerwise_rnns"],
        "backward_pass": rnn["backward_pass"],
        "separate_backward_rnn": rnn["separate_backward_rnn"],
        "label_feeding": rnn["feed_label"],
        "init_c_fraction": sub["init_rand_proportion"],
        "merge_fraction": 0.5,
        "output_bound": float(rnn["tanh_bound"]),
    }


def _import_theirs(checkout: Path):
    sys.path.insert(0, str(checkout))
    import haiku as hk

    vmap = hk.vmap
    hk.vmap = lambda fun, *a, split_rng=False, **k: vmap(fun, *a, split_rng=split_rng, **k)
    import config as their_config  # noqa: E402  (their modules, from the checkout)
    import models as their_models  # noqa: E402

    return hk, their_config, their_models


def record(checkout: Path, out: Path) -> None:
    import jax
    import jax.numpy as jnp
    import numpy as np

    hk, their_config, their_models = _import_theirs(checkout)

    def mean_cross_entropy(logits, onehot):  # their inner loss: cross-entropy averaged over the batch
        return jnp.mean(-jnp.sum(onehot * jax.nn.log_softmax(logits), axis=-1))

    def build(sub, rnn, specs_cfg, input_shape, classes):
        their_config.GLOBAL_CONFIG.clear()
        their_config.GLOBAL_CONFIG["model"] = {"sub_rnn": dict(sub), "vsml_rnn": dict(rnn, layer_specs=None)}
        specs = their_models.complete_specs([their_models.create_spec(s) for s in specs_cfg], input_shape, classes)

        def model():
            return their_models.VSMLRNN(layer_specs=specs, loss_func=mean_cross_entropy)

        run = hk.transform(lambda xs, ys: model()(xs, ys))
        # the initial states, drawn exactly as the model's call draws them (first RNG keys of the call)
        states = hk.transform(lambda: [model()._create_layer_state(s) for s in specs])
        return run, states

    out.mkdir(parents=True, exist_ok=True)
    for name, (sub_o, rnn_o, specs_cfg, input_shape, classes, batch, steps) in CASES.items():
        idx = zlib.crc32(name.encode()) % 10_000  # seeds per case name (adding a case changes no other)
        sub, rnn = {**SUB_RNN, **sub_o}, {**VSML_RNN, **rnn_o}
        run, states = build(sub, rnn, specs_cfg, input_shape, classes)
        rng = np.random.default_rng(100 + idx)
        xs = rng.standard_normal((steps, batch, *input_shape)).astype(np.float32)
        ys = rng.integers(0, classes, (steps, batch)).astype(np.int32)
        onehot = jax.nn.one_hot(ys, classes)
        params = run.init(jax.random.PRNGKey(idx), xs, onehot)
        # perturb every parameter (biases and LayerNorm offsets start at zero, scales at one)
        params = jax.tree_util.tree_map(lambda p: p + 0.2 * rng.standard_normal(p.shape).astype(np.float32), params)
        key = jax.random.PRNGKey(1000 + idx)
        logits = run.apply(params, key, xs, onehot)
        arrays = {"xs": xs, "ys": ys, "logits": np.asarray(logits)}
        for module, leaves in params.items():
            for leaf, value in leaves.items():
                arrays[f"param:{module}:{leaf}"] = np.asarray(value)
        for k, ls in enumerate(states.apply({}, key)):
            arrays[f"state:{k}:hidden"] = np.asarray(ls.lstm_state.hidden)
            arrays[f"state:{k}:cell"] = np.asarray(ls.lstm_state.cell)
        meta = {
            "case": name,
            "theirs": {"sub_rnn": sub, "vsml_rnn": rnn, "layer_specs": specs_cfg},
            "ours": ours(sub, rnn, specs_cfg),
            "input_shape": list(input_shape),
            "classes": classes,
            "batch": batch,
            "steps": steps,
        }
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
        np.savez_compressed(out / f"{name}.npz", **arrays)
        print(f"{name}: logits {tuple(logits.shape)}, max |logit| {float(np.abs(logits).max()):.3f}")

    # init distribution at default sizes (N 16, M 8): parameter stds and initial-c stds
    stats = {}
    sub = {**SUB_RNN, "msg_size": 8, "slow_size": 16}
    for name, specs_cfg, input_shape in (
        ("dense", [{"type": "dense"}], (20,)),
        ("conv", [{"type": "conv", "kernel_size": 3, "stride": 1, "out_channels": 8}, {"type": "dense"}], (6, 6, 8)),
    ):
        run, states = build(sub, VSML_RNN, specs_cfg, input_shape, 10)
        xs = np.zeros((1, 1, *input_shape), np.float32)
        lstm_w, head_w = [], []
        for seed in range(8):
            p = run.init(jax.random.PRNGKey(seed), xs, jax.nn.one_hot(np.zeros((1, 1), np.int32), 10))
            lstm_w.append(np.asarray(p["vsmlrnn/~/sub_rnn/~/custom_lstm/linear"]["w"]))
            head_w.append(np.asarray(p["vsmlrnn/~/sub_rnn/~/linear"]["w"]))
        cell = np.asarray(states.apply({}, jax.random.PRNGKey(0))[0].lstm_state.cell)
        stats[f"{name}.cell_random_std"] = np.float32(cell[..., : cell.shape[-1] // 2].std())
        stats[f"{name}.cell_random_units"] = np.int32(int((np.abs(cell).reshape(-1, cell.shape[-1]) > 0).any(0).sum()))
        if name == "dense":
            stats["lstm_kernel_std"] = np.float32(np.std(lstm_w))
            stats["lstm_kernel_shape"] = np.asarray(lstm_w[0].shape, np.int32)
            stats["head_std"] = np.float32(np.std(head_w))
    np.savez(out / "init_stats.npz", **stats)
    print("init stats:", {k: v.tolist() for k, v in stats.items()})


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    record(Path(sys.argv[1]).resolve(), Path(sys.argv[2] if len(sys.argv) == 3 else "tests/fixtures/fidelity"))
