"""``vsml meta-train CONFIG [key=value ...]`` (argparse wiring only).

The main CLI calls ``register(subparsers)`` and then ``args.func(args)`` (an exit code). Also
runnable alone: ``python -m vsml.meta.cli CONFIG ...``.
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    """Add the ``meta-train`` sub-command."""
    p = subparsers.add_parser(
        "meta-train", help="meta-train a learning algorithm (gradient or ES) from a YAML config",
        description="Meta-train the meta-parameters of a learner. CONFIG is a YAML file (see configs/meta_*.yaml); "
                    "key.sub=value overrides follow it, e.g. iterations=200 gradient.lr=3e-3.",
    )
    _add_args(p)
    p.set_defaults(func=cmd_meta_train)


def _add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config file")
    p.add_argument("overrides", nargs="*", help="dotted overrides key.sub=value (values parsed as YAML)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in the out folder")
    p.add_argument("--out", default=None, help="output folder (default: config 'out', else runs/meta/<name>)")
    p.add_argument("--no-progress", action="store_true", help="plain log lines instead of a progress bar")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")


def cmd_meta_train(args) -> int:
    from vsml.checkpoint import CheckpointError
    from vsml.config import ConfigError, to_dict
    from vsml.data.integrity import DataError
    from vsml.learners.base import InputError
    from vsml.meta.distributed import DistributedError
    from vsml.meta.trainer import MetaTrainer, MetaTrainingError, load_meta_config

    try:
        overrides = list(args.overrides)
        if args.no_progress:
            overrides.append("log.progress=false")
        if args.out:
            overrides.append(f"out={args.out}")
        cfg = load_meta_config(args.config, overrides)
        if args.print_config:
            import yaml

            print(yaml.safe_dump(to_dict(cfg), sort_keys=False))
            return 0
        trainer = MetaTrainer(cfg)
        result = trainer.run(resume=args.resume)
    except (ConfigError, CheckpointError, MetaTrainingError, DataError, InputError, DistributedError) as e:
        print(f"vsml meta-train: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vsml meta-train: interrupted; continue with --resume from the last checkpoint", file=sys.stderr)
        return 130
    if trainer.main:
        print(f"done: {result.iteration} iterations; learner saved in {result.out_dir}/learner.npz")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="vsml meta-train")
    _add_args(parser)
    return cmd_meta_train(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
