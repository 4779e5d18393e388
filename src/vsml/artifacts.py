"""The one artifact layer: every file that stores learned parameters or training state.

Meta-training checkpoints, final learners, shipped learning algorithms (``vsml.pretrained``) and
cloning checkpoints are all one format: a NumPy ``.npz`` archive (no pickles) holding

- the leaves of one or more named pytrees ("groups", e.g. ``params``, ``opt_state``, ``inner``) as
  arrays ``<group>/<i>`` in ``jax.tree_util`` leaf order, and
- ``__meta__``: a JSON record ``{"format": "vsml-artifact", "version": 2, "kind", "groups":
  {group: {"tree", "paths", "shapes", "dtypes"}}, "meta": {...}, "sha256"}`` where ``sha256``
  covers every array (name, dtype, shape, bytes) and the rest of the record.

::

    save("run/ckpt.npz", "checkpoint", {"params": params, "opt_state": opt}, {"iteration": 10})
    art = load("run/ckpt.npz", kind="checkpoint")         # checksum verified
    params = art.restore("params", template)              # shapes checked against a template
    params = art.tree("params")                            # or rebuilt from the stored key paths
    art.meta["iteration"]

Writes are atomic (temp file in the same folder, fsync, ``os.replace``) and keep the umask's
permissions. ``sidecar=True`` also writes ``<name>.json``, a human-readable copy of the record
(the archive's embedded record is what is loaded). Files of earlier vsml versions still load:
meta-training checkpoints ``vsml-meta-checkpoint`` v1, shipped-LA files (arrays ``rnn.<i>.<field>``
with a format-1 ``.json`` sidecar) and cloning checkpoints (``leaf_<i>`` arrays); ``vsml convert``
rewrites any of them in the current format. Every problem is an :class:`ArtifactError` naming the
file and what is wrong.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
import tempfile
from pathlib import Path

import jax
import numpy as np

from vsml.errors import VSMLError
from vsml.pytree import PyTree

FORMAT = "vsml-artifact"
VERSION = 2
KINDS = ("checkpoint", "learner", "clone-checkpoint", "online")


class ArtifactError(VSMLError, ValueError):
    """A stored artifact is missing, corrupt, of another kind, or does not fit what it is loaded into."""


# --------------------------------------------------------------------------------------------
# Writing


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temp file in the same folder, fsync and ``os.replace``;
    the file gets the permissions a plain ``open()`` would give it (0666 minus the umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _digest(arrays: dict[str, np.ndarray], record: dict) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}\n".encode())
        h.update(a.tobytes())
    h.update(json.dumps(record, sort_keys=True).encode())
    return h.hexdigest()


def _describe(tree) -> tuple[dict, list[np.ndarray]]:
    flat, treedef = jax.tree_util.tree_flatten_with_path(tree)
    leaves = [np.asarray(x) for _, x in flat]
    return {
        "tree": str(treedef),
        "paths": [jax.tree_util.keystr(p) for p, _ in flat],
        "shapes": [list(x.shape) for x in leaves],
        "dtypes": [x.dtype.str for x in leaves],
    }, leaves


def save(
    path: str | os.PathLike, kind: str, groups: dict[str, PyTree], meta: dict | None = None, *, sidecar: bool = False
) -> Path:
    """Write the pytrees ``groups`` and the JSON-able ``meta`` as one artifact of ``kind`` (atomic)."""
    if kind not in KINDS:
        raise ArtifactError(f"unknown artifact kind {kind!r}; known: {', '.join(KINDS)}")
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    described = {}
    for group, tree in groups.items():
        if "/" in group:
            raise ArtifactError(f"group names cannot contain '/': {group!r}")
        described[group], leaves = _describe(tree)
        arrays.update({f"{group}/{i}": x for i, x in enumerate(leaves)})
    record = {"format": FORMAT, "version": VERSION, "kind": kind, "groups": described, "meta": meta or {}}
    return _write(path, arrays, record, sidecar)


def _write(path: Path, arrays: dict[str, np.ndarray], record: dict, sidecar: bool) -> Path:
    try:
        json.dumps(record)
    except TypeError as e:
        raise ArtifactError(f"artifact {path}: meta is not JSON-serialisable ({e})") from None
    record["sha256"] = _digest(arrays, record)
    buf = io.BytesIO()
    np.savez(buf, **arrays, __meta__=np.frombuffer(json.dumps(record).encode(), np.uint8))
    atomic_write_bytes(path, buf.getvalue())
    if sidecar:
        atomic_write_bytes(path.with_suffix(".json"), (json.dumps(record, indent=2) + "\n").encode())
    return path


# --------------------------------------------------------------------------------------------
# Reading


@dataclasses.dataclass
class Artifact:
    """A loaded artifact: ``kind``, user ``meta``, and the stored leaves of each group."""

    path: Path
    kind: str
    meta: dict
    groups: dict[str, dict]  # group -> {"tree", "paths", "shapes", "dtypes"}
    arrays: dict[str, list[np.ndarray]]  # group -> leaves
    version: int = VERSION

    def leaves(self, group: str) -> list[np.ndarray]:
        if group not in self.arrays:
            raise ArtifactError(
                f"artifact {self.path} has no {group!r} (it holds: {', '.join(self.arrays) or 'nothing'})"
            )
        return self.arrays[group]

    def restore(self, group: str, template: PyTree) -> PyTree:
        """The stored ``group`` in the structure of ``template`` (leaf count and shapes checked;
        dtypes cast to the template's). The template's leaves may be arrays or shape structs
        (``jax.eval_shape`` of an init function: nothing is computed)."""
        leaves = self.leaves(group)
        t_leaves, t_def = jax.tree_util.tree_flatten(template)
        if len(t_leaves) != len(leaves):
            raise ArtifactError(
                f"{self.path} does not fit: its {group} has {len(leaves)} arrays, {len(t_leaves)} expected "
                "(different learner, optimizer or estimator config?)"
            )
        out = []
        for i, (t, x) in enumerate(zip(t_leaves, leaves)):
            if tuple(np.shape(t)) != tuple(x.shape):
                raise ArtifactError(
                    f"{self.path} does not fit: {group} array {i} ({self._path_of(group, i)}) has shape "
                    f"{list(x.shape)}, {list(np.shape(t))} expected (different learner config?)"
                )
            out.append(np.asarray(x, dtype=t.dtype if hasattr(t, "dtype") else np.asarray(t).dtype))
        return jax.tree_util.tree_unflatten(t_def, out)

    def _path_of(self, group: str, i: int) -> str:
        paths = self.groups.get(group, {}).get("paths") or []
        return paths[i] if i < len(paths) else f"leaf {i}"

    def tree(self, group: str) -> PyTree:
        """The stored ``group`` rebuilt from its key paths (nested dicts and tuples only)."""
        leaves = self.leaves(group)
        paths = self.groups.get(group, {}).get("paths")
        if paths is None or len(paths) != len(leaves):
            raise ArtifactError(f"artifact {self.path}: {group} has no key paths; restore it into a template instead")
        root: dict = {}
        for path, leaf in zip(paths, leaves):
            keys = _parse_keystr(path, self.path)
            node = root
            for k in keys[:-1]:
                node = node.setdefault(k, {})
            node[keys[-1]] = leaf
        return _tuplify(root)


_KEY = re.compile(r"\['([^']*)'\]|\[(\d+)\]")


def _parse_keystr(path: str, where) -> list:
    keys, pos = [], 0
    for m in _KEY.finditer(path):
        if m.start() != pos:
            break
        keys.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    if pos != len(path) or not keys:
        raise ArtifactError(f"artifact {where}: cannot rebuild key path {path!r}; restore it into a template instead")
    return keys


def _tuplify(node):
    if not isinstance(node, dict):
        return node
    if node and all(isinstance(k, int) for k in node):
        return tuple(_tuplify(node[i]) for i in range(len(node)))
    return {k: _tuplify(v) for k, v in node.items()}


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise ArtifactError(f"{path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: np.asarray(z[k]) for k in z.files}
    except Exception as e:  # noqa: BLE001 - zip, npz and header errors all mean "corrupt"
        raise ArtifactError(f"{path} is corrupt or not an npz archive ({type(e).__name__}: {e})") from None


def load(path: str | os.PathLike, kind: str | tuple[str, ...] | None = None) -> Artifact:
    """Read and verify an artifact (current or earlier format); ``kind`` restricts what is accepted."""
    path = Path(path)
    arrays = _read_npz(path)
    if "__meta__" in arrays:
        try:
            record = json.loads(arrays.pop("__meta__").tobytes().decode())
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ArtifactError(f"{path} is corrupt: its metadata is not valid JSON ({e})") from None
        if not isinstance(record, dict):
            raise ArtifactError(f"{path} is corrupt: its metadata is not a mapping")
        if record.get("format") == FORMAT:
            art = _current(path, record, arrays)
        elif record.get("format") == "vsml-meta-checkpoint":
            art = _legacy_checkpoint(path, record, arrays)
        else:
            raise ArtifactError(f"{path} is not a vsml artifact (format {record.get('format')!r})")
    elif any(k.startswith("leaf_") for k in arrays) and "iteration" in arrays:
        art = _legacy_clone_checkpoint(path, arrays)
    else:
        art = _legacy_la(path, arrays)
    wanted = (kind,) if isinstance(kind, str) else kind
    if wanted and art.kind not in wanted:
        raise ArtifactError(f"{path} is a {art.kind} artifact; expected {' or '.join(wanted)}")
    return art


def _current(path: Path, record: dict, arrays: dict) -> Artifact:
    version = record.get("version")
    if version != VERSION:
        raise ArtifactError(
            f"{path} has artifact format version {version}; this vsml reads {VERSION} (upgrade vsml to read it)"
        )
    stored = record.pop("sha256", None)
    if stored != _digest(arrays, record):
        raise ArtifactError(f"{path} is corrupt: its checksum does not match its contents")
    out = {}
    for group, d in record.get("groups", {}).items():
        try:
            out[group] = [arrays[f"{group}/{i}"] for i in range(len(d["shapes"]))]
        except KeyError as e:
            raise ArtifactError(f"{path} is corrupt: array {e} missing") from None
    return Artifact(path, record.get("kind", ""), record.get("meta", {}), record.get("groups", {}), out)


def _legacy_checkpoint(path: Path, record: dict, arrays: dict) -> Artifact:
    """``vsml-meta-checkpoint`` v1 (vsml 0.1): ``p/<i>``, ``o/<i>`` and the record as meta."""
    if record.get("version") != 1:
        raise ArtifactError(
            f"checkpoint {path} has format version {record.get('version')}; this vsml reads 1 and {VERSION}"
        )
    try:
        p = [arrays[f"p/{i}"] for i in range(len(record["params_shapes"]))]
        o = [arrays[f"o/{i}"] for i in range(len(record["opt_shapes"]))]
    except KeyError as e:
        raise ArtifactError(f"checkpoint {path} is corrupt: array {e} missing") from None
    meta = {
        k: v
        for k, v in record.items()
        if k not in ("format", "version", "params_tree", "opt_tree", "params_shapes", "opt_shapes")
    }
    groups = {
        "params": {"tree": record.get("params_tree"), "shapes": record["params_shapes"]},
        "opt_state": {"tree": record.get("opt_tree"), "shapes": record["opt_shapes"]},
    }
    kind = "checkpoint" if o else "learner"
    return Artifact(path, kind, meta, groups, {"params": p, "opt_state": o}, version=1)


def _legacy_la(path: Path, arrays: dict) -> Artifact:
    """A shipped-LA file of vsml 0.1: arrays ``<group>.<i>.<field>`` and a format-1 ``.json`` sidecar."""
    side = path.with_suffix(".json")
    if not side.is_file():
        raise ArtifactError(f"{path} is neither a vsml artifact nor an LA file with a {side.name} sidecar")
    try:
        data = json.loads(side.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ArtifactError(f"LA sidecar {side} is not valid JSON: {e}") from None
    if not isinstance(data, dict) or data.get("format") != 1 or "vsml_config" not in data:
        raise ArtifactError(f"LA sidecar {side} is not a format-1 LA description")
    names = sorted(arrays, key=lambda k: [int(t) if t.isdigit() else t for t in k.split(".")])
    paths = []
    for name in names:
        parts = name.split(".")
        if len(parts) != 3 or not parts[1].isdigit():
            raise ArtifactError(f"LA file {path}: unexpected array {name!r}")
        paths.append(f"['{parts[0]}'][{parts[1]}]['{parts[2]}']")
    leaves = [arrays[n] for n in names]
    groups = {"params": {"paths": paths, "shapes": [list(x.shape) for x in leaves]}}
    meta = {"learner": {"name": "vsml", "options": data["vsml_config"]}, "info": data.get("meta", {})}
    return Artifact(path, "learner", meta, groups, {"params": leaves}, version=1)


def _legacy_clone_checkpoint(path: Path, arrays: dict) -> Artifact:
    """A cloning checkpoint of vsml 0.1: ``leaf_<i>`` of (params, (opt_state, pools, best)), iteration, elapsed."""
    n = sum(1 for k in arrays if k.startswith("leaf_"))
    leaves = [arrays[f"leaf_{i}"] for i in range(n)]
    meta = {"iteration": int(arrays["iteration"]), "elapsed": float(arrays.get("elapsed", 0.0))}
    return Artifact(
        path,
        "clone-checkpoint",
        meta,
        {"state": {"shapes": [list(x.shape) for x in leaves]}},
        {"state": leaves},
        version=1,
    )


def drop_groups(
    src: str | os.PathLike | Artifact, dst: str | os.PathLike, drop: tuple[str, ...], meta: dict | None = None
) -> Path:
    """Copy an artifact of the current format (a path, or one already loaded) without the groups
    ``drop`` (arrays and descriptors; the others byte for byte), with ``meta`` merged into its meta.
    Used for slim checkpoints."""
    art = src if isinstance(src, Artifact) else load(src)
    if art.version != VERSION:
        raise ArtifactError(f"{art.path} has an earlier format: rewrite it with `vsml convert` first")
    missing = [g for g in drop if g not in art.groups]
    if missing:
        raise ArtifactError(f"{art.path} has no {', '.join(missing)} (it holds: {', '.join(art.groups) or 'nothing'})")
    arrays = {f"{g}/{i}": x for g, leaves in art.arrays.items() if g not in drop for i, x in enumerate(leaves)}
    record = {
        "format": FORMAT,
        "version": VERSION,
        "kind": art.kind,
        "groups": {g: d for g, d in art.groups.items() if g not in drop},
        "meta": {**art.meta, **(meta or {})},
    }
    return _write(Path(dst), arrays, record, False)


def convert(src: str | os.PathLike, dst: str | os.PathLike | None = None) -> Path:
    """Rewrite an artifact of any readable format in the current one (``dst`` defaults to ``src``;
    a learner that had a ``.json`` sidecar keeps one)."""
    art = load(src)
    groups: dict[str, PyTree] = {g: list(leaves) for g, leaves in art.arrays.items()}
    if art.groups.get("params", {}).get("paths"):
        groups["params"] = art.tree("params")
    out = Path(dst) if dst is not None else art.path
    return save(out, art.kind, groups, art.meta, sidecar=art.path.with_suffix(".json").is_file())
