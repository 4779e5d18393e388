"""Shipped learning algorithms (LAs): VSML sub-RNN parameters plus the config they run with.

    from vsml import pretrained
    pretrained.names()                                  # ['cloned_sgd_1layer', 'cloned_sgd_hidden', ...]
    config, params = pretrained.load("cloned_sgd_1layer")
    learner = VSML(config)                              # then run_episode(learner, params, ...)
    pretrained.info("cloned_sgd_1layer")["meta"]["command"]     # how it was made

Each LA is a learner artifact (:mod:`vsml.artifacts`, kind ``learner``) ``<name>.npz`` with a
human-readable copy of its record in ``<name>.json``: the learner (``vsml`` and its
``VSMLConfig``), and provenance (command, seed, data, wall clock, ...). ``load`` also accepts a
path to any learner artifact of a VSML learner, e.g. a meta-training run's ``learner.npz``. See
this folder's README.md for the manifest.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from vsml import artifacts
from vsml.artifacts import ArtifactError

HERE = Path(__file__).resolve().parent


class PretrainedError(ArtifactError):
    """Unknown LA name, or a missing / corrupt / inconsistent LA file."""


def names() -> list[str]:
    """Names of the LAs shipped in this package (sorted)."""
    return sorted(p.stem for p in HERE.glob("*.npz"))


def path(name_or_path: str | os.PathLike) -> Path:
    """The file of a shipped LA name, or ``name_or_path`` itself when it is a path."""
    s = str(name_or_path)
    if s.endswith(".npz") or os.sep in s or "/" in s:
        npz = Path(s)
        if not npz.is_file():
            raise PretrainedError(f"LA file {npz} does not exist")
        return npz
    npz = HERE / f"{s}.npz"
    if not npz.is_file():
        raise PretrainedError(
            f"unknown LA {s!r}; shipped LAs: {', '.join(names()) or 'none'} (or pass a path to an .npz file)"
        )
    return npz


def _artifact(name_or_path):
    try:
        art = artifacts.load(path(name_or_path), kind="learner")
    except PretrainedError:
        raise
    except ArtifactError as e:
        raise PretrainedError(str(e)) from None
    spec = art.meta.get("learner") or {}
    if spec.get("name") != "vsml":
        raise PretrainedError(f"{art.path} holds learner {spec.get('name')!r}, not a VSML LA")
    return art


def info(name_or_path: str | os.PathLike) -> dict:
    """``{"vsml_config": {...}, "meta": {command, seed, wall clock, ...}}`` of an LA."""
    art = _artifact(name_or_path)
    return {"vsml_config": dict(art.meta["learner"].get("options") or {}), "meta": dict(art.meta.get("info") or {})}


def load(name_or_path: str | os.PathLike):
    """``name`` (shipped) or path to an LA ``.npz`` -> ``(VSMLConfig, params)`` ready for ``VSML(config)``."""
    from vsml.config import ConfigError
    from vsml.learners.registry import learner_from_record

    art = _artifact(name_or_path)
    try:
        learner = learner_from_record(art.meta["learner"])
    except ConfigError as e:
        raise PretrainedError(f"LA {art.path}: bad vsml_config: {e}") from None
    try:
        params = art.restore("params", learner.param_shapes())
    except ArtifactError as e:
        raise PretrainedError(str(e)) from None
    for leaf in jax.tree_util.tree_leaves(params):
        if not np.all(np.isfinite(leaf)):
            raise PretrainedError(f"LA {art.path}: parameters contain non-finite values")
    return learner.config, jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float32), params)


def save(path: str | os.PathLike, config, params: dict, meta: dict | None = None) -> Path:
    """Write an LA (learner artifact ``path`` as .npz plus its ``.json`` copy) atomically. Returns the npz path."""
    from vsml.config import to_dict

    npz = Path(path).with_suffix(".npz")
    record = {"learner": {"name": "vsml", "options": to_dict(config, stored=True)}, "info": meta or {}}
    return artifacts.save(npz, "learner", {"params": params}, record, sidecar=True)
