"""Checkpoints of meta-training runs, and loading a meta-trained learner.

A checkpoint is one ``.npz`` file (no pickles): the leaves of the meta-parameters (``p/<i>``) and
of the optimizer state (``o/<i>``) plus a JSON record ``__meta__`` (format version, iteration,
RNG seed, curriculum position, the full run config, the learner's name and options, the pytree
structures and leaf shapes). Files are written atomically (temp file in the same folder, fsync,
``os.replace``), named ``ckpt_<iteration>.npz`` and pruned to the last ``keep``.

    mgr = CheckpointManager("runs/meta/x/checkpoints", keep=3)
    mgr.save(iteration, params, opt_state, meta)
    params, opt_state, meta = restore(mgr.latest(), params_template, opt_template)
    learner, params = load_learner("runs/meta/x")     # run folder, checkpoint file, LA file or name

A corrupt file, or one whose structure does not match, raises :class:`CheckpointError` naming the
file and the mismatch; such a file is never overwritten or deleted.
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
from pathlib import Path

import jax
import numpy as np

FORMAT = "vsml-meta-checkpoint"
VERSION = 1
_NAME = re.compile(r"^ckpt_(\d+)\.npz$")


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, or does not fit the run."""


def _leaves(tree):
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return [np.asarray(x) for x in leaves], str(treedef)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_checkpoint(path, params, opt_state, meta: dict) -> Path:
    """Write ``params``, ``opt_state`` (pytrees of arrays) and the JSON-able ``meta`` atomically."""
    p_leaves, p_def = _leaves(params)
    o_leaves, o_def = _leaves(opt_state)
    record = {
        **meta,
        "format": FORMAT,
        "version": VERSION,
        "params_tree": p_def,
        "opt_tree": o_def,
        "params_shapes": [list(x.shape) for x in p_leaves],
        "opt_shapes": [list(x.shape) for x in o_leaves],
    }
    arrays = {f"p/{i}": x for i, x in enumerate(p_leaves)}
    arrays.update({f"o/{i}": x for i, x in enumerate(o_leaves)})
    arrays["__meta__"] = np.frombuffer(json.dumps(record).encode(), np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)


def read_checkpoint(path) -> tuple[dict, list[np.ndarray], list[np.ndarray]]:
    """``(meta, params_leaves, opt_leaves)`` of a checkpoint file; :class:`CheckpointError` if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: np.asarray(z[k]) for k in z.files}
        meta = json.loads(arrays.pop("__meta__").tobytes().decode())
    except Exception as e:  # noqa: BLE001 - zip, npz, JSON and key errors all mean "corrupt"
        raise CheckpointError(f"checkpoint {path} is corrupt or not a vsml checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a vsml meta-training checkpoint")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {path} has format version {meta.get('version')}; this vsml reads {VERSION}")
    try:
        p = [arrays[f"p/{i}"] for i in range(len(meta["params_shapes"]))]
        o = [arrays[f"o/{i}"] for i in range(len(meta["opt_shapes"]))]
    except KeyError as e:
        raise CheckpointError(f"checkpoint {path} is corrupt: array {e} missing") from None
    return meta, p, o


def _fill(template, leaves, what: str, path) -> object:
    t_leaves, t_def = jax.tree_util.tree_flatten(template)
    if len(t_leaves) != len(leaves):
        raise CheckpointError(
            f"checkpoint {path} does not fit this run: {what} has {len(leaves)} arrays, the run expects {len(t_leaves)} "
            "(different learner or optimizer config?)"
        )
    out = []
    for i, (t, x) in enumerate(zip(t_leaves, leaves)):
        if tuple(np.shape(t)) != tuple(x.shape):
            raise CheckpointError(
                f"checkpoint {path} does not fit this run: {what} array {i} has shape {list(x.shape)}, "
                f"the run expects {list(np.shape(t))} (different learner config?)"
            )
        out.append(np.asarray(x, dtype=np.asarray(t).dtype))
    return jax.tree_util.tree_unflatten(t_def, out)


def restore(path, params_template, opt_template):
    """Load ``path`` into the structures of the templates. Returns ``(params, opt_state, meta)`` (NumPy leaves)."""
    meta, p, o = read_checkpoint(path)
    return _fill(params_template, p, "params", path), _fill(opt_template, o, "optimizer state", path), meta


class CheckpointManager:
    """Periodic checkpoints ``<folder>/ckpt_<iteration:08d>.npz``, keeping the newest ``keep``."""

    def __init__(self, folder, keep: int = 3):
        if keep < 1:
            raise CheckpointError("checkpoint keep must be >= 1")
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

    def save(self, iteration: int, params, opt_state, meta: dict) -> Path:
        path = self.folder / f"ckpt_{iteration:08d}.npz"
        save_checkpoint(path, params, opt_state, {**meta, "iteration": iteration})
        for old in self.paths()[: -self.keep]:
            old.unlink(missing_ok=True)
        return path


# --------------------------------------------------------------------------------------------
# Loading a learner for evaluation


def _resolve_checkpoint(path: Path) -> Path | None:
    if path.is_dir():
        for cand in (path / "learner.npz", *reversed(CheckpointManager(path / "checkpoints").paths()),
                     *reversed(CheckpointManager(path).paths())):
            if cand.is_file():
                return cand
        raise CheckpointError(f"{path} holds no learner.npz or checkpoints/ckpt_*.npz")
    if path.suffix == ".npz" and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                if "__meta__" in z.files:
                    return path
        except Exception as e:  # noqa: BLE001
            raise CheckpointError(f"{path} is corrupt or not an npz archive ({type(e).__name__}: {e})") from None
    return None


def load_learner(path):
    """``(learner, params)`` from a meta-training run folder, a checkpoint file, or a shipped LA.

    Accepts: a run folder (its ``learner.npz``, else the newest checkpoint), a ``ckpt_*.npz`` /
    ``learner.npz`` file, a :mod:`vsml.pretrained` LA file (``.npz`` with ``.json`` sidecar), or the
    name of a shipped LA. Errors are :class:`CheckpointError` with a one-line reason.
    """
    from vsml.config import ConfigError
    from vsml.learners.registry import make_learner_from_record

    p = Path(path)
    ckpt = _resolve_checkpoint(p)
    if ckpt is None:
        try:
            from vsml import pretrained
            from vsml.learners.vsml import VSML

            config, params = pretrained.load(path)
        except ImportError:
            raise CheckpointError(f"{path} is not a meta-training checkpoint") from None
        except ValueError as e:
            raise CheckpointError(str(e)) from None
        return VSML(config), params
    meta, leaves, _ = read_checkpoint(ckpt)
    spec = meta.get("learner") or {}
    try:  # a VSML record without the semantic options predates them: legacy values (docs/vsml.md)
        learner = make_learner_from_record(spec)
    except ConfigError as e:
        raise CheckpointError(f"checkpoint {ckpt}: its learner cannot be built here: {e}") from None
    template = learner.init_params(jax.random.PRNGKey(0))
    params = _fill(template, leaves, "params", ckpt)
    params = jax.tree_util.tree_map(jax.numpy.asarray, params)
    return learner, params
