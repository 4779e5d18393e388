"""Shipped learning algorithms (LAs): VSML sub-RNN parameters plus the config they run with.

    from vsml import pretrained
    pretrained.names()                                  # ['cloned_sgd_1layer', 'cloned_sgd_hidden']
    config, params = pretrained.load("cloned_sgd_1layer")
    learner = VSML(config)                              # then run_episode(learner, params, ...)
    pretrained.info("cloned_sgd_1layer")["command"]     # how it was made

Each LA is ``<name>.npz`` (arrays ``rnn.<i>.<field>`` and optionally ``bwd_rnn.<i>.<field>``) next to
``<name>.json`` (``{"format": 1, "vsml_config": {...}, "meta": {...command, seed, wall clock...}}``).
``save`` writes every ``VSMLConfig`` field; ``load`` reads a sidecar that lacks a semantic option
(written before it existed) with that option's legacy value (:func:`vsml.learners.vsml.vsml_config_from_record`).
``load`` also accepts a path to such an ``.npz`` file. See this folder's README.md for the manifest.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

FORMAT_VERSION = 1
HERE = Path(__file__).resolve().parent
_FIELDS = ("wx", "wh", "b", "wf", "bf", "wb", "bb")


class PretrainedError(ValueError):
    """Unknown LA name, or a missing / corrupt / inconsistent LA file."""


def names() -> list[str]:
    """Names of the LAs shipped in this package (sorted)."""
    return sorted(p.stem for p in HERE.glob("*.npz") if (HERE / f"{p.stem}.json").is_file())


def _resolve(name_or_path: str | os.PathLike) -> tuple[Path, Path]:
    s = str(name_or_path)
    if s.endswith(".npz") or os.sep in s or "/" in s:
        npz = Path(s)
        if not npz.suffix:
            npz = npz.with_suffix(".npz")
        if not npz.is_file():
            raise PretrainedError(f"LA file {npz} does not exist")
    else:
        npz = HERE / f"{s}.npz"
        if not npz.is_file():
            avail = ", ".join(names()) or "none"
            raise PretrainedError(f"unknown LA {s!r}; shipped LAs: {avail} (or pass a path to an .npz file)")
    side = npz.with_suffix(".json")
    if not side.is_file():
        raise PretrainedError(f"LA {npz} has no sidecar {side.name} (config and provenance)")
    return npz, side


def info(name_or_path: str | os.PathLike) -> dict:
    """The sidecar JSON of an LA (``vsml_config``, ``meta`` with command, seed, wall clock, ...)."""
    _, side = _resolve(name_or_path)
    try:
        data = json.loads(side.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise PretrainedError(f"LA sidecar {side} is not valid JSON: {e}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT_VERSION or "vsml_config" not in data:
        raise PretrainedError(f"LA sidecar {side} is not a format-{FORMAT_VERSION} LA description")
    return data


def load(name_or_path: str | os.PathLike):
    """``name`` (shipped) or path to ``.npz`` -> ``(VSMLConfig, params)`` ready for ``VSML(config)``."""
    from vsml.config import ConfigError
    from vsml.learners.vsml import VSML, vsml_config_from_record

    npz, _ = _resolve(name_or_path)
    data = info(npz)
    try:  # options missing from an older sidecar take their legacy values (docs/vsml.md)
        config = vsml_config_from_record(data["vsml_config"])
    except ConfigError as e:
        raise PretrainedError(f"LA {npz}: bad vsml_config: {e}") from None
    try:
        with np.load(npz, allow_pickle=False) as z:
            arrays = {k: np.asarray(z[k]) for k in z.files}
    except Exception as e:  # zipfile / format errors
        raise PretrainedError(f"LA file {npz} is corrupt or not an npz archive: {e}") from None
    params = {}
    template = VSML(config).init_params(jax.random.PRNGKey(0))
    for group, cells in template.items():
        loaded = []
        for i, cell in enumerate(cells):
            d = {}
            for field, ref in cell.items():
                key = f"{group}.{i}.{field}"
                if key not in arrays:
                    raise PretrainedError(f"LA file {npz} lacks array {key!r}")
                arr = arrays[key]
                if arr.shape != ref.shape or not np.all(np.isfinite(arr)):
                    raise PretrainedError(
                        f"LA file {npz}: array {key!r} has shape {arr.shape} (expected {ref.shape}) or non-finite values"
                    )
                d[field] = jnp.asarray(arr, jnp.float32)
            loaded.append(d)
        params[group] = tuple(loaded)
    return config, params


def save(path: str | os.PathLike, config, params: dict, meta: dict | None = None) -> Path:
    """Write ``path`` (.npz) and its ``.json`` sidecar atomically (temp + ``os.replace``). Returns the npz path."""
    from vsml.config import to_dict

    npz = Path(path).with_suffix(".npz")
    npz.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        f"{group}.{i}.{field}": np.asarray(v, np.float32)
        for group, cells in params.items()
        for i, cell in enumerate(cells)
        for field, v in cell.items()
    }
    tmp = npz.with_name(npz.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, npz)
    side = npz.with_suffix(".json")
    tmp = side.with_name(side.name + ".tmp")
    tmp.write_text(json.dumps({"format": FORMAT_VERSION, "vsml_config": to_dict(config), "meta": meta or {}}, indent=2))
    os.replace(tmp, side)
    return npz
