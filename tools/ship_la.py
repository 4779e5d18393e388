"""Ship a meta-trained learner as a named LA of ``vsml.pretrained`` (``src/vsml/pretrained/<name>.npz``
plus its ``.json`` sidecar), with the provenance its sidecar must carry.

    PYTHONPATH=src python tools/ship_la.py runs/meta/general_pilot7/best.npz general \\
        --command "vsml meta-train configs/general_pilot7.yaml" --note "what it is, how to use it"

The source is a learner artifact of a meta-training run (``learner.npz`` or ``best.npz``); its
record gives the seed, the iteration, the wall clock of the run up to that iteration, the method,
the starting point and the meta-training data (datasets, splits and task families), all copied
into the sidecar beside ``--command`` and ``--note``. A run started (``init:``) from another run's
learner file is followed back: iterations and wall clock are summed over the chain, listed in
``lineage``. The parameters are stored unchanged (checked
by reloading them).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import numpy as np

from vsml import artifacts, pretrained
from vsml.config import from_dict
from vsml.learners.vsml import VSMLConfig

HERE = Path(pretrained.__file__).resolve().parent


def _data_summary(config: dict) -> dict:
    data = config.get("data") or {}
    return {
        "datasets": [f"{d['name']}:{d.get('split', 'train')}" for d in data.get("datasets", [])],
        "families": config.get("families") or [{}],
        "sampler": {k: data.get(k) for k in ("image_size", "flatten", "projection", "num_classes", "input_scale")},
    }


def lineage(source: str) -> list[dict]:
    """The runs that made ``source``, newest first: each run's name, method, iterations and wall
    clock, following ``init:`` while it names another run's learner file; the last entry's ``init``
    is where the chain started (a shipped LA name or ``random``)."""
    chain, path = [], source
    while True:
        meta = artifacts.load(path, kind="learner").meta
        config = meta.get("config") or {}
        init = config.get("init")
        chain.append(
            {
                "run": config.get("name"),
                "method": meta.get("method", config.get("method")),
                "iterations": meta.get("iteration"),
                "wall_clock_s": round(float(meta.get("elapsed", 0.0)), 1),
                "source": str(path),
                "init": init,
            }
        )
        if not (isinstance(init, str) and init.endswith(".npz") and Path(init).is_file()):
            return chain
        path = init


def ship(source: str, name: str, command: str, note: str, out_dir: Path = HERE) -> Path:
    art = artifacts.load(source, kind="learner")
    meta = art.meta
    spec = meta.get("learner") or {}
    if spec.get("name") != "vsml":
        raise SystemExit(f"{source} holds learner {spec.get('name')!r}, not a VSML LA")
    config = from_dict(VSMLConfig, spec.get("options") or {})
    params = art.tree("params")
    run_config = meta.get("config") or {}
    chain = lineage(source)
    info = {
        "command": command,
        "seed": meta.get("seed", run_config.get("seed")),
        "iterations": sum(step["iterations"] or 0 for step in chain),
        "wall_clock_s": round(sum(step["wall_clock_s"] for step in chain), 1),
        "lineage": chain,
        "method": meta.get("method", run_config.get("method")),
        "init": chain[-1]["init"],
        "data": _data_summary(run_config),
        "input_size": None,
        "source": str(source),
        "selection": meta.get("best_eval"),
        "note": note,
    }
    path = pretrained.save(out_dir / name, config, params, info)
    _, again = pretrained.load(path)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(again)):
        np.testing.assert_array_equal(np.asarray(a, np.float32), np.asarray(b))
    return path


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", help="learner artifact of a meta-training run (learner.npz or best.npz)")
    p.add_argument("name", help="name of the shipped LA")
    p.add_argument("--command", required=True, help="the command that made the run")
    p.add_argument("--note", required=True, help="what the LA is and how to use it")
    p.add_argument("--out-dir", type=Path, default=HERE)
    args = p.parse_args(argv)
    path = ship(args.source, args.name, args.command, args.note, args.out_dir)
    print(f"shipped {path} (+ {path.with_suffix('.json').name})")


if __name__ == "__main__":
    main()
