"""``vsml evaluate`` and ``vsml introspect`` sub-commands (argparse wiring only; what they do is
:mod:`vsml.eval.commands`).

The main CLI calls ``register(subparsers)`` and then ``args.func(args)``; each ``func`` returns an
exit code, expected errors (bad learner/dataset/options) becoming one line on stderr
(:func:`vsml.errors.command`).
"""

from __future__ import annotations

import argparse

from vsml.errors import command
from vsml.limits import ranged


def _add_learner_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-l",
        "--learner",
        action="append",
        default=None,
        metavar="NAME[:k=v,...]",
        help="learner from the registry with options, e.g. 'adam:lr=3e-4,layers=2' (repeatable; default: sgd, adam)",
    )
    p.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="PATH",
        help="a saved/shipped learning algorithm (repeatable)",
    )


def _add_episode_args(p: argparse.ArgumentParser, episodes: int, steps: int, datasets: list[str]) -> None:
    """Episode options: each maps onto a :class:`vsml.data.episodes.SamplerConfig` field (see --help)."""
    p.add_argument(
        "-d",
        "--dataset",
        action="append",
        default=None,
        help=f"registered dataset name or path to your own data (repeatable; default: {', '.join(datasets)})",
    )
    p.add_argument(
        "-n",
        "--episodes",
        type=ranged(int, ">=1"),
        default=episodes,
        help=f"episodes per dataset (default {episodes}; with 1, confidence intervals are undefined)",
    )
    p.add_argument(
        "-T",
        "--steps",
        type=ranged(int, ">=1"),
        default=steps,
        help=f"steps per episode (SamplerConfig.steps; default {steps})",
    )
    p.add_argument(
        "--batch-size", type=ranged(int, ">=1"), default=1, help="examples per step (SamplerConfig.batch_size)"
    )
    p.add_argument(
        "--seed", type=ranged(int, ">=0"), default=0, help="seed of the episodes and of the learners' per-episode keys"
    )
    p.add_argument(
        "--split", default="test", help="dataset split to draw episodes from (default test; slices like test[:80%%])"
    )
    p.add_argument(
        "--classes",
        "--num-classes",
        dest="num_classes",
        type=ranged(int, ">=2"),
        default=None,
        help="random class subset of this size per episode (SamplerConfig.num_classes)",
    )
    p.add_argument(
        "--resize",
        "--image-size",
        dest="image_size",
        type=ranged(int, ">=1"),
        default=None,
        help="resize images to SxS, e.g. 14, 21, 32, 48 (SamplerConfig.image_size)",
    )
    p.add_argument(
        "--grayscale",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="RGB -> one channel (SamplerConfig.grayscale; default on)",
    )
    p.add_argument(
        "--permutation",
        choices=("none", "episode", "fixed"),
        default=None,
        help="pixel permutation per episode / fixed (SamplerConfig.permutation)",
    )
    p.add_argument(
        "--permute", dest="permutation", action="store_const", const="episode", help="same as --permutation episode"
    )
    p.add_argument(
        "--projection",
        choices=("none", "episode", "fixed"),
        default=None,
        help="random Glorot-uniform projection of the input (SamplerConfig.projection)",
    )
    p.add_argument(
        "--project", dest="projection", action="store_const", const="episode", help="same as --projection episode"
    )
    p.add_argument(
        "--sampler",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other SamplerConfig field, e.g. balanced=true or 'pad_to=[32, 32]' (repeatable)",
    )
    p.add_argument("--data-dir", default=None, help="data directory (default $VSML_DATA_DIR)")
    p.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="skip the checksum / fingerprint check of dataset files (SamplerConfig.verify)",
    )
    p.add_argument("--chunk", type=ranged(int, ">=1"), default=None, help="episodes run in parallel (default: all)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--ignore-contract",
        action="store_true",
        help="run saved LAs on the episodes as given, even where they break the LA's input contract "
        "(size, channels, normalisation it was meta-trained with)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a non-empty output folder, replacing this command's files there (others are kept)",
    )


def register(subparsers) -> None:
    """Add the ``evaluate`` and ``introspect`` sub-commands to an argparse ``subparsers`` object."""
    ev = subparsers.add_parser(
        "evaluate",
        help="meta-test learners on online episodes: CSV curves, markdown table, plots, JSON",
        description="Run learners on the same online episodes (test split) and report per-step curves and summary "
        "figures with 95% CIs.",
    )
    _add_learner_args(ev)
    _add_episode_args(ev, episodes=10, steps=1000, datasets=["digits"])
    ev.add_argument(
        "-o",
        "--out",
        default=None,
        help="output folder (curves.csv, table.md, curves.png); must be empty unless --overwrite "
        "(default runs/evaluate, or a fresh runs/evaluate-N when that holds an earlier run)",
    )
    ev.add_argument("--json", default=None, metavar="PATH", help="also write every figure of the table as JSON")
    ev.add_argument(
        "--tune-lr", action="store_true", help="pick SGD/Adam learning rates per dataset on separate tuning episodes"
    )
    ev.add_argument(
        "--tune-episodes", type=ranged(int, ">=1"), default=4, help="tuning episodes per dataset (default 4)"
    )
    ev.add_argument(
        "--oracle-backprop",
        action="store_true",
        help="add the 'oracle best backprop' row: per figure the best of SGD/Adam x {linear, 160-tanh} x a "
        "learning-rate grid, chosen on the reported episodes themselves (favours backprop)",
    )
    ev.add_argument(
        "--reference",
        default=None,
        metavar="LEARNER|oracle",
        help="report paired differences (learner - reference, same episodes, 95%% CI); 'oracle' implies "
        "--oracle-backprop",
    )
    ev.add_argument(
        "--window",
        action="append",
        type=_window_arg,
        default=None,
        metavar="START:STOP",
        help="also report the accuracy over steps START … STOP-1 (0-based, a Python slice; e.g. 100:200, "
        "or the query steps of a few-shot episode); repeatable; the oracle picks its best per window too",
    )
    ev.add_argument("--smooth", type=ranged(int, ">=1"), default=None, help="running-mean window of the plotted curves")
    ev.add_argument("--no-plot", action="store_true")
    ev.set_defaults(func=cmd_evaluate)

    it = subparsers.add_parser(
        "introspect",
        help="fast association (p(correct) vs examples seen per class) and per-step state norms",
        description="Measure fast association and dump per-step state norms of learners.",
    )
    _add_learner_args(it)
    _add_episode_args(it, episodes=20, steps=60, datasets=["digits"])
    it.add_argument(
        "--max-shots",
        type=ranged(int, ">=1"),
        default=10,
        help="largest number of earlier examples of a class to report (default 10)",
    )
    it.add_argument(
        "--norm-steps", type=ranged(int, ">=0"), default=100, help="steps of the state-norm episode (0: skip)"
    )
    it.add_argument(
        "--picture-steps",
        type=ranged(int, ">=1"),
        default=30,
        help="steps of episode 0 shown in episode_outputs.png (predicted probabilities per class)",
    )
    it.add_argument(
        "-o",
        "--out",
        default=None,
        help="output folder; must be empty unless --overwrite (default runs/introspect, or a fresh runs/introspect-N)",
    )
    it.add_argument("--json", default=None, metavar="PATH")
    it.set_defaults(func=cmd_introspect)


# --- commands (their work is vsml.eval.commands) --------------------------------------------------


def _window_arg(spec: str) -> tuple[int, int]:
    from vsml.eval.metrics import parse_window

    try:
        return parse_window(spec)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


@command("vsml evaluate")
def cmd_evaluate(args) -> int:
    from vsml.eval.commands import evaluate_command

    return evaluate_command(args)


@command("vsml introspect")
def cmd_introspect(args) -> int:
    from vsml.eval.commands import introspect_command

    return introspect_command(args)


def main(argv=None) -> int:
    """Stand-alone entry point (``python -m vsml.eval.cli evaluate ...``)."""
    parser = argparse.ArgumentParser(prog="vsml")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
