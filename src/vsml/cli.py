"""Command-line interface: ``vsml <command> …`` (see ``vsml --help``)."""

from __future__ import annotations

import argparse
import sys

from vsml.config import ConfigError


def _cmd_run(args: argparse.Namespace) -> int:
    """Main job: run VSML RNN episodes on the embedded 8×8 digits and summarise online accuracy."""
    import jax
    import numpy as np
    from sklearn.datasets import load_digits

    from vsml.config import apply_overrides, from_dict, load_yaml
    from vsml.learners.base import run_episodes
    from vsml.learners.vsml import VSML, VSMLConfig

    data = load_yaml(args.config) if args.config else {}
    config = from_dict(VSMLConfig, apply_overrides(data, args.overrides))
    digits = load_digits()
    images = (digits.images.reshape(len(digits.images), -1) / 16.0).astype(np.float32)
    images = (images - images.mean()) / images.std()
    labels = digits.target.astype(np.int32)
    rng = np.random.default_rng(args.seed)
    idx = rng.integers(0, len(images), size=(args.episodes, args.steps, 1))
    xs, ys = images[idx], labels[idx]
    learner = VSML(config)
    key = jax.random.PRNGKey(args.seed)
    params = learner.init_params(key)
    keys = jax.random.split(jax.random.fold_in(key, 1), args.episodes)
    result = run_episodes(learner, params, keys, xs, ys, num_classes=10)
    acc = np.asarray(result.correct).mean(axis=(0, 2))  # [T]
    print(f"VSML RNN (random meta-parameters, seed {args.seed}) on 8×8 digits: "
          f"{args.episodes} episodes × {args.steps} steps, batch 1, 10 classes")
    windows = np.array_split(np.arange(args.steps), min(5, args.steps))
    for w in windows:
        print(f"  steps {w[0] + 1:4d}–{w[-1] + 1:4d}: online accuracy {acc[w].mean():.3f}")
    print(f"  whole episode: online accuracy {acc.mean():.3f} (chance 0.100), mean loss {float(result.losses.mean()):.3f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vsml", description="Variable Shared Meta Learning in JAX")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="main job: run VSML on the embedded digits data and summarise")
    run.add_argument("--config", help="YAML file of VSMLConfig options")
    run.add_argument("--episodes", type=int, default=8)
    run.add_argument("--steps", type=int, default=200)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("overrides", nargs="*", help="dotted config overrides, e.g. micro_ticks=3")
    run.set_defaults(func=_cmd_run)

    from vsml.data import cli as data_cli
    from vsml.eval import cli as eval_cli

    data_cli.register(sub)
    eval_cli.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ConfigError, ValueError, FileNotFoundError) as e:
        print(f"vsml {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
