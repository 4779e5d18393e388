"""Command-line interface: ``vsml <command> …`` (see ``vsml --help``)."""

from __future__ import annotations

import argparse
import os
import sys

from vsml.config import ConfigError
from vsml.errors import command
from vsml.limits import ranged

HEADLINE_LA = "general"  # the shipped LA that `vsml run` leads with


@command("vsml run")
def _cmd_run(args: argparse.Namespace) -> int:
    """Main job: meta-test the shipped learning algorithms against tuned backprop on digits."""
    from vsml import contract, pretrained, runs
    from vsml.eval.report import OWNED
    from vsml.eval.showcase import headline, run_showcase
    from vsml.learners.vsml import VSML

    out = runs.prepare_output(
        args.out, default="runs/showcase", owned=OWNED, overwrite=args.overwrite, option="--out", log=print
    )
    shipped = pretrained.names()
    unknown = [n for n in args.la or () if n not in shipped]
    if unknown:
        raise ConfigError(f"--la {', '.join(unknown)}: not a shipped LA ({', '.join(shipped)})")
    chosen = [n for n in shipped if not args.la or n in args.la]
    chosen.sort(key=lambda n: n != HEADLINE_LA)  # the headline LA first
    learners, contracts = {}, {}
    for name in chosen:
        config, params = pretrained.load(name)
        learners[f"vsml:{name}"] = (VSML(config), params)
        contracts[f"vsml:{name}"] = contract.of_learner(name, owner=name)
    resized = {k: c for k, c in contracts.items() if c is not None and c.image_size is not None}
    print(
        f"Meta-testing {len(learners)} shipped VSML learning algorithm(s) ({', '.join(chosen) or 'none'}) "
        f"against tuned online backprop on held-out 8×8 digits: {args.episodes} episodes × {args.steps} steps, "
        f"batch 1, same episodes for every learner (seed {args.seed})."
    )
    for k, c in resized.items():
        print(
            f"{k} needs {c.describe()} (its input contract): it runs, with its own tuned-backprop reference, on the "
            f"same digits "
            f"episodes resized to {c.image_size[0]}x{c.image_size[1]}."
        )
    report = run_showcase(
        out,
        learners,
        episodes=args.episodes,
        steps=args.steps,
        seed=args.seed,
        progress=not args.no_progress,
        contracts=contracts,
    )
    line = headline(report, f"vsml:{HEADLINE_LA}")
    if line:
        data = (
            ", ".join((pretrained.info(HEADLINE_LA)["meta"].get("data") or {}).get("datasets", [])) or "see its sidecar"
        )
        print(
            f"\nHeadline: {HEADLINE_LA!r} is one LA for any input size and class count, meta-trained on {data} "
            f"(never on digits, KMNIST, EMNIST or Fashion-MNIST). {line}"
        )
    return 0


@command("vsml convert")
def _cmd_convert(args: argparse.Namespace) -> int:
    """Rewrite checkpoints / learners / LAs of earlier vsml versions in the current artifact format."""
    from vsml import artifacts

    if args.out and len(args.paths) > 1:
        raise ConfigError("-o/--out takes one input file")
    for src in args.paths:
        if args.slim:
            art = artifacts.load(src)
            if art.kind != "checkpoint":
                raise ConfigError(f"--slim: {src} is not a meta-training checkpoint")
            out = artifacts.drop_groups(art, args.out or src, ("inner",), {"slim": True})
            print(
                f"{src} -> {out} (slim checkpoint: meta-parameters and optimizer state, "
                f"{out.stat().st_size / 1e3:.0f} kB)"
            )
            continue
        out = artifacts.convert(src, args.out)
        print(f"{src} -> {out} ({artifacts.load(out).kind}, format version {artifacts.VERSION})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from vsml import __version__

    parser = argparse.ArgumentParser(prog="vsml", description="Variable Shared Meta Learning in JAX")
    parser.add_argument("--version", action="version", version=f"vsml {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="main job: meta-test the shipped LAs vs tuned backprop on the embedded digits")
    run.add_argument("--episodes", type=ranged(int, ">=1"), default=16)
    run.add_argument("--steps", type=ranged(int, ">=1"), default=300)
    run.add_argument("--seed", type=ranged(int, ">=0"), default=0)
    run.add_argument(
        "--out",
        default=None,
        help="folder for the table, curves (CSV, PNG) and JSON; must be empty unless "
        "--overwrite (default runs/showcase, or a fresh runs/showcase-N when that holds an earlier run)",
    )
    run.add_argument(
        "--overwrite", action="store_true", help="replace this command's files in a non-empty --out folder"
    )
    run.add_argument(
        "--la",
        action="append",
        metavar="NAME",
        help="meta-test only this shipped LA (repeatable; default: every shipped LA)",
    )
    run.add_argument("--no-progress", action="store_true")
    run.set_defaults(func=_cmd_run)
    conv = sub.add_parser(
        "convert", help="rewrite checkpoints / learner files of earlier vsml versions in the current format"
    )
    conv.add_argument("paths", nargs="+", help="artifact files (.npz) to convert in place")
    conv.add_argument("-o", "--out", default=None, help="write here instead (one input only)")
    conv.add_argument(
        "--slim",
        action="store_true",
        help="drop a meta-training checkpoint's persistent inner-loop state (PES/TBPTT particles): keeps "
        "the meta-parameters and optimizer state, small enough to commit; a run resumed from it "
        "restarts its lifetimes",
    )
    conv.set_defaults(func=_cmd_convert)

    from vsml.cloning import cli as clone_cli
    from vsml.cloning import evaluate as clone_evaluate
    from vsml.data import cli as data_cli
    from vsml.eval import cli as eval_cli
    from vsml.eval import figures, protocol
    from vsml.meta import cli as meta_cli

    data_cli.register(sub)
    eval_cli.register(sub)
    protocol.register(sub)
    figures.register(sub)
    clone_cli.register(sub)
    clone_evaluate.register(sub)
    meta_cli.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one ``vsml`` command; its errors are one line on stderr and an exit code (:func:`vsml.errors.command`)."""
    os.environ.setdefault("MPLBACKEND", "Agg")  # the command writes PNGs, never opens a window (vsml/eval/plots.py)
    parser = build_parser()
    args = parser.parse_args(argv)
    full = list(sys.argv[1:] if argv is None else argv)
    # the command's own arguments (after its name), recorded by commands that write their command line
    args.argv = full[full.index(args.command) + 1 :] if args.command in full else full
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
