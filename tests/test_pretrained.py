"""Shipped LAs: every one that is not a cloned-SGD one (those are tested in test_cloning.py) loads and
learns held-out digits online clearly above chance; every one reproduces its recorded logits."""

import dataclasses
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import TEST_XLA_FLAGS

from vsml import kernels, pretrained
from vsml.data.episodes import DatasetSpec, SamplerConfig, draw_episodes
from vsml.learners.base import run_episode, run_episodes
from vsml.learners.vsml import VSML

META = [n for n in pretrained.names() if not n.startswith("cloned_")]


def test_meta_trained_la_is_shipped():
    assert "meta_digits" in META
    assert "meta-train" in pretrained.info("meta_digits")["meta"]["command"]


@pytest.mark.parametrize("name", META)
def test_meta_trained_la_learns_heldout_digits(name):
    config, params = pretrained.load(name)
    # LAs with a summed reduction are tied to the input size they were meta-trained at (like an
    # SGD learning rate to the input scale): show them the digits at that size.
    resize = (pretrained.info(name)["meta"].get("input_size") or [None])[0]
    size = None if resize is None else (resize, resize)
    eps = draw_episodes(SamplerConfig(datasets=(DatasetSpec("digits", "test"),), steps=150, image_size=size), 1, 4)
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    res = run_episodes(VSML(config), params, keys, eps.xs, eps.ys, eps.num_classes)
    acc = np.asarray(res.correct)
    assert acc[:, 100:].mean() > 0.5, acc[:, 100:].mean()  # chance is 0.1


FIXTURE = Path(__file__).resolve().parent / "fixtures" / "shipped_la_logits.npz"
ACROSS_HOSTS_ATOL = 1e-4  # of the largest logit: float32 rounding over 30 steps with other SIMD widths


@pytest.mark.parametrize("name", pretrained.names())
def test_shipped_la_reproduces_recorded_logits(name):
    """Every shipped LA computes what it computed when it was made: logits recorded by
    tools/record_shipped_la_logits.py when it was shipped (or, for those shipped earlier, before the
    VSML semantics got options; 30 steps, batch 2, random normal inputs, state key PRNGKey(0)) on a
    fixed episode, on the XLA kernels. To float32
    rounding on any host; bit for bit where the fixture holds a recording for this host's SIMD
    features (XLA's vector widths, hence its rounding, follow them). The fused CPU kernel (the
    default where it is built) rounds differently again and must agree to float32 tolerance."""
    with np.load(FIXTURE) as z:
        xs, ys, want = z[f"{name}.xs"], z[f"{name}.ys"], z[f"{name}.logits"]
        exact = z.get(f"{name}.logits@{kernels.host_isa()}")
    config, params = pretrained.load(name)
    learner = VSML(dataclasses.replace(config, kernel="xla"))
    logits = jax.jit(lambda p: run_episode(learner, p, jax.random.PRNGKey(0), xs, ys, 10).logits)
    # compiled at XLA's default optimisation and code generation, as recorded (the suite otherwise
    # compiles without the expensive passes and with the older CPU emitters, tests/conftest.py)
    defaults = {"xla_backend_optimization_level": 2, "xla_llvm_disable_expensive_passes": False}
    if "xla_cpu_use_fusion_emitters" in TEST_XLA_FLAGS:
        defaults["xla_cpu_use_fusion_emitters"] = True
    got = np.asarray(logits.lower(params).compile(defaults)(params))
    assert want.shape == got.shape == (30, 2, 10)
    scale = np.abs(want).max()
    np.testing.assert_allclose(got, want, rtol=0, atol=ACROSS_HOSTS_ATOL * scale)
    if exact is not None:
        np.testing.assert_array_equal(got, exact)
    if kernels.available():
        fused = run_episode(
            VSML(dataclasses.replace(config, kernel="fused")), params, jax.random.PRNGKey(0), xs, ys, 10
        )
        np.testing.assert_allclose(np.asarray(fused.logits), want, rtol=1e-3, atol=1e-4 * scale)


def test_sidecar_without_semantic_options_loads_legacy_values(tmp_path):
    """A sidecar written before the semantic options existed gets their legacy values."""
    import json
    import shutil

    from vsml.learners.vsml import LEGACY_SEMANTICS, VSMLConfig

    src = Path(pretrained.__file__).parent / "meta_digits"
    shutil.copy(src.with_suffix(".npz"), tmp_path / "old.npz")
    side = json.loads(src.with_suffix(".json").read_text())
    for k in LEGACY_SEMANTICS:
        assert side["vsml_config"].pop(k) == LEGACY_SEMANTICS[k]  # the shipped sidecars name them
    (tmp_path / "old.json").write_text(json.dumps(side))
    config, _ = pretrained.load(tmp_path / "old.npz")
    assert config == pretrained.load("meta_digits")[0]
    assert config.error_scale == "sum" and config != VSMLConfig(label_feeding=True)


@pytest.mark.parametrize("input_shape,num_classes", [((64,), 2), ((196,), 62), ((784,), 10), ((3072,), 10)])
def test_one_parameter_set_runs_at_any_input_size_class_count_and_scale(input_shape, num_classes):
    """The shipped general LA (no shape assumption in VSML: every weight is the shared LSTM) learns
    online from flattened 8x8, 14x14, 28x28 and 32x32x3 inputs with 2 to 62 classes, at input
    scales 1 and 10 (a label seen repeatedly becomes the prediction), and stays finite at scale 100
    (where it no longer learns in 12 steps: it was meta-trained on scales 0.7-1.4; docs/results.md)."""
    config, params = pretrained.load("general")
    learner = VSML(dataclasses.replace(config, kernel="xla"))
    rng = np.random.default_rng(0)
    x = rng.standard_normal(input_shape).astype(np.float32)
    xs = np.broadcast_to(np.stack([x, 10 * x, 100 * x]), (12, 3, *input_shape))  # batch: the input at scales 1, 10, 100
    ys = np.ones((12, 3), np.int32)  # always labelled 1
    res = run_episode(learner, params, jax.random.PRNGKey(0), xs, ys, num_classes)
    logits = np.asarray(res.logits)
    assert logits.shape == (12, 3, num_classes) and np.all(np.isfinite(logits))
    np.testing.assert_array_equal(np.argmax(logits[-1, :2], -1), [1, 1])


def test_ship_tool_stores_the_learner_unchanged_with_its_provenance(tmp_path):
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("ship_la", Path(__file__).parents[1] / "tools" / "ship_la.py")
    ship_la = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ship_la)
    src = pretrained.path("meta_digits")
    out = ship_la.ship(str(src), "mine", "vsml meta-train x.yaml", "a note", out_dir=tmp_path)
    config, params = pretrained.load(out)
    want_config, want = pretrained.load("meta_digits")
    assert config == want_config
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(want)):
        np.testing.assert_array_equal(a, b)
    meta = pretrained.info(out)["meta"]
    assert meta["command"] == "vsml meta-train x.yaml" and meta["note"] == "a note" and meta["source"] == str(src)
    assert json.loads(out.with_suffix(".json").read_text())["meta"]["info"]["command"] == "vsml meta-train x.yaml"
