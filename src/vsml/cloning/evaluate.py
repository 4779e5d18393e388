"""Evaluate cloned LAs against real online SGD on the same online episodes (docs/results.md).

    VSML_DATA_DIR=/path/to/data vsml clone-evaluate \\
        --la cloned_sgd_1layer --la cloned_sgd_hidden -d mnist -d fashion_mnist \\
        -n 16 -T 2000 --seed 0 -o docs/results/cloning

For every LA (name or .npz path) and dataset (test split) it runs, on identical episodes and keys:
``<LA>`` — the cloned VSML RNN, no further training; ``sgd`` — :class:`~vsml.learners.backprop.Backprop`
(online SGD with biases, same learning rate and architecture); for an LA cloned without bias units
also ``sgd-nobias`` — the reference per-cell LA (:class:`~vsml.cloning.backprop_la.ReferenceBackprop`,
``use_bias=False``), i.e. exactly what was cloned (with bias units that is ``sgd`` itself).
``--hidden N`` runs a hidden-layer LA (and its SGD) with N hidden units instead of its default. Writes
``results.json``, ``curves.csv``, ``curves.png`` and ``table.md`` to the
output folder (tables and curves via :mod:`vsml.eval`) and prints the table.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from vsml.errors import command


def learners_for(la: str, hidden_units: int | None = None):
    """``{label: (learner, params)}`` for one LA: the clone and its SGD reference(s); ``hidden_units``
    replaces the size of a hidden-layer LA's hidden layer."""
    import dataclasses

    from vsml import pretrained
    from vsml.cloning.backprop_la import ReferenceBackprop
    from vsml.learners.backprop import Backprop
    from vsml.learners.vsml import VSML, LayerSpec

    config, params = pretrained.load(la)
    if hidden_units is not None and config.hidden_layers:
        config = dataclasses.replace(config, hidden_layers=(LayerSpec(units=hidden_units),) * len(config.hidden_layers))
    meta = pretrained.info(la).get("meta", {})
    lr = float(meta.get("clone_config", {}).get("lr", 0.01))
    hidden = tuple(spec.units for spec in config.hidden_layers)
    if len(hidden) > 1:
        raise ValueError(f"{la}: the SGD comparison supports at most one hidden layer, got {hidden}")
    tag = f"{Path(la).stem}"
    arch = f"{len(hidden) + 1}L" + (f"-h{hidden[0]}" if hidden else "")
    out = {
        tag: (VSML(config), params),
        f"sgd {arch} lr={lr:g}": (
            Backprop(optimizer="sgd", lr=lr, layers=len(hidden) + 1, hidden=hidden[0] if hidden else 160),
            {},
        ),
    }
    if not config.bias:
        out[f"sgd-nobias {arch} lr={lr:g}"] = (ReferenceBackprop(lr=lr, hidden=hidden, use_bias=False), {})
    return out


OWNED = ("curves.csv", "table.md", "curves.png", "results.json")  # what the command writes (--overwrite replaces these)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The options of ``vsml clone-evaluate`` (also ``python -m vsml.cloning.evaluate``)."""
    from vsml.limits import ranged

    ap.add_argument("--la", action="append", required=True, help="LA name or .npz path (repeatable)")
    ap.add_argument(
        "-d", "--dataset", action="append", default=None, help="dataset (repeatable; default mnist, fashion_mnist)"
    )
    ap.add_argument("-n", "--episodes", type=ranged(int, ">=1"), default=16)
    ap.add_argument("-T", "--steps", type=ranged(int, ">=1"), default=2000)
    ap.add_argument("--seed", type=ranged(int, ">=0"), default=0)
    ap.add_argument("--chunk", type=ranged(int, ">=1"), default=8, help="episodes per vmapped batch")
    ap.add_argument(
        "--resize", type=ranged(int, ">=1"), default=None, help="resize images to S×S (default: native size)"
    )
    ap.add_argument(
        "--hidden",
        type=ranged(int, ">=1"),
        default=None,
        help="hidden units of hidden-layer LAs (default: each LA's own)",
    )
    ap.add_argument(
        "-o",
        "--out",
        default=None,
        help="output folder; must be empty unless --overwrite (default runs/clone_eval, or a fresh runs/clone_eval-N)",
    )
    ap.add_argument("--overwrite", action="store_true", help="replace this command's files in a non-empty --out folder")
    ap.add_argument("--no-progress", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m vsml.cloning.evaluate", description=__doc__.split("\n\n")[0])
    add_arguments(ap)
    return ap


def run_command(args, argv=None, prog: str = "vsml clone-evaluate") -> int:
    """Evaluate for parsed ``args``; errors are one line on stderr and exit status 2 (:func:`vsml.errors.command`)."""
    return command(prog)(lambda a: _run(a, argv, prog))(args)


def _run(args, argv, prog: str) -> int:
    from vsml import runs
    from vsml.data.episodes import DatasetSpec, SamplerConfig, draw_episodes
    from vsml.eval.evaluate import evaluate
    from vsml.eval.report import markdown_table, write_all

    argv = list(sys.argv[1:] if argv is None else argv)
    out = runs.prepare_output(
        args.out,
        default="runs/clone_eval",
        owned=OWNED,
        overwrite=args.overwrite,
        log=lambda m: print(m, file=sys.stderr),
    )
    datasets = args.dataset or ["mnist", "fashion_mnist"]
    size = {} if args.resize is None else {"image_size": (args.resize, args.resize)}
    eps = {
        d: draw_episodes(
            SamplerConfig(datasets=(DatasetSpec(d, "test"),), steps=args.steps, **size), args.seed, args.episodes
        )
        for d in datasets
    }
    learners = {}
    for la in args.la:
        learners |= learners_for(la, args.hidden)
    t0 = time.time()
    report = evaluate(learners, eps, seed=args.seed, chunk=args.chunk, progress=not args.no_progress)
    wall = time.time() - t0
    report.meta["command"] = f"{prog} " + " ".join(shlex.quote(a) for a in argv)
    report.meta["wall_clock_s"] = round(wall, 1)
    paths = write_all(report, out, json_path=out / "results.json")
    table = markdown_table(report)
    print(table)
    print(f"wall clock {wall:.0f} s; wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def register(subparsers) -> None:
    """``vsml clone-evaluate``."""
    p = subparsers.add_parser(
        "clone-evaluate",
        help="cloned LAs against real online SGD on the same online episodes",
        description=__doc__.split("\n\n")[0],
    )
    add_arguments(p)
    p.set_defaults(func=lambda args: run_command(args, getattr(args, "argv", None)))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return run_command(build_parser().parse_args(argv), argv, prog="python -m vsml.cloning.evaluate")


if __name__ == "__main__":
    import os

    os.environ.setdefault("MPLBACKEND", "Agg")  # a command: write the PNGs, open no window
    sys.exit(main())
