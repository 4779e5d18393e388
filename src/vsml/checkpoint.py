"""Run folders of meta-training, and loading a learner from anything that stores one.

Checkpoints are :mod:`vsml.artifacts` of kind ``checkpoint`` named ``ckpt_<iteration:08d>.npz``
(groups ``params``, ``opt_state``, ``inner``; meta: iteration, seed, curriculum position, the full
run config, the learner's name and options), pruned to the newest ``keep``::

    mgr = CheckpointManager("runs/meta/x/checkpoints", keep=3)
    mgr.save(iteration, {"params": p, "opt_state": o, "inner": i}, meta)
    art = mgr.load(mgr.latest())                       # verified artifact; art.restore("params", template)
    learner, params = load_learner("runs/meta/x")      # run folder, artifact file or shipped LA name

A corrupt file, or one whose structure does not match, raises :class:`CheckpointError` naming the
file and the mismatch; such a file is never overwritten or deleted.
"""

from __future__ import annotations

import re
from pathlib import Path

import jax
import numpy as np

from vsml import artifacts, pretrained
from vsml.artifacts import Artifact, ArtifactError
from vsml.config import ConfigError
from vsml.learners.registry import learner_from_record

#: Errors of checkpoints and learner files (the artifact layer's error type).
CheckpointError = ArtifactError

_NAME = re.compile(r"^ckpt_(\d+)\.npz$")


class CheckpointManager:
    """Periodic checkpoints ``<folder>/ckpt_<iteration:08d>.npz``, keeping the newest ``keep``."""

    def __init__(self, folder, keep: int = 3):
        if keep < 1:
            raise CheckpointError(f"checkpoint keep must be >= 1, got {keep}")
        self.folder, self.keep = Path(folder), keep

    def paths(self) -> list[Path]:
        """Existing checkpoints, oldest first."""
        if not self.folder.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.folder.iterdir() if (m := _NAME.match(p.name))]
        return [p for _, p in sorted(found)]

    def latest(self) -> Path | None:
        paths = self.paths()
        return paths[-1] if paths else None

    def save(self, iteration: int, groups: dict, meta: dict) -> Path:
        path = self.folder / f"ckpt_{iteration:08d}.npz"
        artifacts.save(path, "checkpoint", groups, {**meta, "iteration": iteration})
        for old in self.paths()[: -self.keep]:
            old.unlink(missing_ok=True)
        return path

    @staticmethod
    def load(path) -> Artifact:
        return artifacts.load(path, kind="checkpoint")


# --------------------------------------------------------------------------------------------
# Loading a learner


def learner_artifact(path) -> Artifact:
    """The artifact holding a learner: a run folder (its ``learner.npz``, else the newest
    checkpoint), an artifact file, or the name of a shipped LA (:mod:`vsml.pretrained`)."""
    p = Path(path)
    if p.is_dir():
        for cand in (
            p / "learner.npz",
            *reversed(CheckpointManager(p / "checkpoints").paths()),
            *reversed(CheckpointManager(p).paths()),
        ):
            if cand.is_file():
                return artifacts.load(cand, kind=("learner", "checkpoint"))
        raise CheckpointError(f"{p} holds no learner.npz or checkpoints/ckpt_*.npz")
    if p.suffix == ".npz" or p.is_file():
        return artifacts.load(p, kind=("learner", "checkpoint"))
    return artifacts.load(pretrained.path(str(path)), kind="learner")


def stored_learner_record(art: Artifact) -> dict:
    """``{"name", "options"}`` of the learner an artifact was made with."""
    spec = art.meta.get("learner")
    if not isinstance(spec, dict) or "name" not in spec:
        raise CheckpointError(f"{art.path} does not record which learner it belongs to")
    return {"name": spec["name"], "options": dict(spec.get("options") or {})}


def load_learner(path):
    """``(learner, params)`` from a run folder, an artifact file or a shipped LA name (see
    :func:`learner_artifact`). Errors are :class:`CheckpointError` with a one-line reason."""
    art = learner_artifact(path)
    try:
        learner = learner_from_record(stored_learner_record(art))
    except ConfigError as e:
        raise CheckpointError(f"{art.path}: its learner cannot be built here: {e}") from None
    params = art.restore("params", learner.param_shapes())
    for leaf in jax.tree_util.tree_leaves(params):
        if not np.all(np.isfinite(leaf)):
            raise CheckpointError(f"{art.path}: its parameters contain non-finite values")
    return learner, jax.tree_util.tree_map(jax.numpy.asarray, params)
