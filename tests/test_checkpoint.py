"""The artifact layer and checkpoints: atomic writes, checksums, keep-last-k, corrupt/incompatible
files, earlier formats, conversion, load_learner."""

import json
import os

import jax
import numpy as np
import pytest

from vsml import artifacts
from vsml.artifacts import ArtifactError
from vsml.checkpoint import CheckpointError, CheckpointManager, load_learner


def _tree():
    return {"a": np.arange(3, dtype=np.float32), "b": (np.ones((2, 2), np.float32),)}


def test_roundtrip_keep_and_errors(tmp_path):
    mgr = CheckpointManager(tmp_path / "ck", keep=2)
    for it in (1, 2, 3):
        mgr.save(it, {"params": _tree(), "opt_state": {"count": np.int32(it)}}, {"curriculum": [0, 0, float("nan")]})
    assert [p.name for p in mgr.paths()] == ["ckpt_00000002.npz", "ckpt_00000003.npz"]
    assert not list((tmp_path / "ck").glob("*.tmp"))
    art = mgr.load(mgr.latest())
    params, opt = art.restore("params", _tree()), art.restore("opt_state", {"count": np.int32(0)})
    assert art.meta["iteration"] == 3 and int(opt["count"]) == 3
    np.testing.assert_array_equal(params["b"][0], np.ones((2, 2)))
    np.testing.assert_array_equal(art.tree("params")["a"], np.arange(3))  # rebuilt from key paths
    assert isinstance(art.tree("params")["b"], tuple)
    # Permissions follow the umask (mkstemp alone would give 0600).
    old = os.umask(0o022)
    try:
        mgr.save(4, {"params": _tree()}, {})
    finally:
        os.umask(old)
    assert (mgr.latest().stat().st_mode & 0o777) == 0o644
    # Incompatible structure / shapes: clear error.
    with pytest.raises(CheckpointError, match="does not fit.*\\['a'\\]"):
        art.restore("params", {"a": np.zeros(4, np.float32), "b": (np.zeros((2, 2), np.float32),)})
    with pytest.raises(CheckpointError, match="does not fit"):
        art.restore("params", {"a": np.zeros(3, np.float32)})
    with pytest.raises(ArtifactError, match="expected learner"):
        artifacts.load(mgr.latest(), kind="learner")
    # Corrupt file: clear error, file left alone.
    bad = tmp_path / "ck" / "ckpt_00000009.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="corrupt"):
        artifacts.load(bad)
    assert bad.read_bytes() == b"not a zip"
    with pytest.raises(CheckpointError, match="does not exist"):
        artifacts.load(tmp_path / "nope.npz")


def test_checksum_catches_a_flipped_bit(tmp_path):
    path = artifacts.save(tmp_path / "x.npz", "learner", {"params": {"w": np.zeros(64, np.float32)}}, {"k": 1})
    with np.load(path) as z:
        arrays = {k: np.array(z[k]) for k in z.files}
    arrays["params/0"][5] = 1e-30  # a valid archive whose contents changed
    np.savez(path, **arrays)
    with pytest.raises(ArtifactError, match="checksum"):
        artifacts.load(path)


def test_earlier_formats_load_and_convert(tmp_path):
    from vsml.learners.registry import make_learner
    from vsml.learners.vsml import LEGACY_SEMANTICS

    options = {"state_size": 4, "message_size": 2}
    learner = make_learner("vsml", {**options, **LEGACY_SEMANTICS})  # what files of vsml 0.1 computed
    params = learner.init_params(jax.random.PRNGKey(1))
    leaves = jax.tree_util.tree_leaves(params)
    # vsml 0.1 shipped-LA layout: rnn.<i>.<field> arrays + a format-1 sidecar
    old = tmp_path / "old_la.npz"
    np.savez(old, **{f"rnn.0.{k}": np.asarray(v) for k, v in params["rnn"][0].items()})
    old.with_suffix(".json").write_text(
        json.dumps({"format": 1, "vsml_config": {"state_size": 4, "message_size": 2}, "meta": {"seed": 3}})
    )
    # vsml 0.1 meta-training checkpoint layout
    ck = tmp_path / "ckpt_00000001.npz"
    meta = {
        "format": "vsml-meta-checkpoint",
        "version": 1,
        "iteration": 1,
        "params_shapes": [list(x.shape) for x in leaves],
        "opt_shapes": [],
        "learner": {"name": "vsml", "options": {"state_size": 4, "message_size": 2}},
    }
    np.savez(
        ck,
        **{f"p/{i}": np.asarray(x) for i, x in enumerate(leaves)},
        __meta__=np.frombuffer(json.dumps(meta).encode(), np.uint8),
    )
    for path in (old, ck):
        got_learner, got = load_learner(path)
        assert got_learner == learner
        for a, b in zip(jax.tree_util.tree_leaves(got), leaves):
            np.testing.assert_array_equal(a, b)
        new = artifacts.convert(path, tmp_path / f"new_{path.name}")
        assert artifacts.load(new).version == artifacts.VERSION
        for a, b in zip(jax.tree_util.tree_leaves(load_learner(new)[1]), leaves):
            np.testing.assert_array_equal(a, b)
    assert json.loads((tmp_path / "new_old_la.json").read_text())["meta"]["info"] == {"seed": 3}


def test_load_learner_from_run_folder_and_file(tmp_path):
    from vsml.learners.registry import learner_record, make_learner
    from vsml.learners.vsml import LEGACY_SEMANTICS

    options = {"state_size": 4, "message_size": 2}
    learner = make_learner("vsml", options)
    params = learner.init_params(jax.random.PRNGKey(1))
    record = learner_record("vsml", learner, options)  # what is stored: every field
    assert set(LEGACY_SEMANTICS) <= set(record["options"])
    artifacts.save(tmp_path / "learner.npz", "learner", {"params": params}, {"learner": record})
    for path in (tmp_path, tmp_path / "learner.npz"):
        got_learner, got = load_learner(path)
        assert got_learner == learner
        for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(params)):
            np.testing.assert_array_equal(a, b)
    # a record written before the semantic options existed keeps the semantics it was made with
    artifacts.save(
        tmp_path / "old" / "learner.npz",
        "learner",
        {"params": params},
        {"learner": {"name": "vsml", "options": options}},
    )
    old_learner, _ = load_learner(tmp_path / "old")
    assert old_learner == make_learner("vsml", {**options, **LEGACY_SEMANTICS}) != learner
    with pytest.raises(CheckpointError):
        load_learner(tmp_path / "missing_dir_or_la.npz")
    with pytest.raises(CheckpointError, match="unknown LA"):
        load_learner("no_such_shipped_la")
