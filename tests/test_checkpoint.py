"""Atomic checkpoints, keep-last-k, corrupt/incompatible files, load_learner."""

import jax
import numpy as np
import pytest

from vsml.checkpoint import CheckpointError, CheckpointManager, load_learner, read_checkpoint, restore, save_checkpoint


def _tree():
    return {"a": np.arange(3, dtype=np.float32), "b": (np.ones((2, 2), np.float32),)}


def test_roundtrip_keep_and_errors(tmp_path):
    mgr = CheckpointManager(tmp_path / "ck", keep=2)
    for it in (1, 2, 3):
        mgr.save(it, _tree(), {"count": np.int32(it)}, {"curriculum": [0, 0, float("nan")]})
    assert [p.name for p in mgr.paths()] == ["ckpt_00000002.npz", "ckpt_00000003.npz"]
    assert not list((tmp_path / "ck").glob("*.tmp"))
    params, opt, meta = restore(mgr.latest(), _tree(), {"count": np.int32(0)})
    assert meta["iteration"] == 3 and int(opt["count"]) == 3
    np.testing.assert_array_equal(params["b"][0], np.ones((2, 2)))
    # Incompatible structure / shapes: clear error.
    with pytest.raises(CheckpointError, match="does not fit"):
        restore(mgr.latest(), {"a": np.zeros(4, np.float32), "b": (np.zeros((2, 2), np.float32),)}, {"count": np.int32(0)})
    with pytest.raises(CheckpointError, match="does not fit"):
        restore(mgr.latest(), {"a": np.zeros(3, np.float32)}, {"count": np.int32(0)})
    # Corrupt file: clear error, file left alone.
    bad = tmp_path / "ck" / "ckpt_00000009.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="corrupt"):
        read_checkpoint(bad)
    assert bad.read_bytes() == b"not a zip"
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "nope.npz")


def test_load_learner_from_checkpoint(tmp_path):
    from vsml.learners.registry import learner_record, make_learner
    from vsml.learners.vsml import LEGACY_SEMANTICS

    options = {"state_size": 4, "message_size": 2}
    learner = make_learner("vsml", options)
    params = learner.init_params(jax.random.PRNGKey(1))
    record = learner_record("vsml", learner, options)  # what checkpoints store now: every field
    assert set(LEGACY_SEMANTICS) <= set(record["options"])
    save_checkpoint(tmp_path / "learner.npz", params, {}, {"learner": record})
    for path in (tmp_path, tmp_path / "learner.npz"):
        got_learner, got = load_learner(path)
        assert got_learner == learner
        for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(params)):
            np.testing.assert_array_equal(a, b)
    # a record written before the semantic options existed keeps the semantics it was made with
    save_checkpoint(tmp_path / "old" / "learner.npz", params, {}, {"learner": {"name": "vsml", "options": options}})
    old_learner, _ = load_learner(tmp_path / "old")
    assert old_learner == make_learner("vsml", {**options, **LEGACY_SEMANTICS}) != learner
    with pytest.raises(CheckpointError):
        load_learner(tmp_path / "missing_dir_or_la.npz")
