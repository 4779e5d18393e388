"""The README's main job: meta-test learners on the built-in 8x8 digits against tuned backprop.

    from vsml.eval.showcase import run_showcase
    report = run_showcase("runs/showcase", learners={"vsml": (VSML(VSMLConfig()), params)})

Every learner sees the same held-out (test-split) episodes and per-episode keys. The reference is
the *oracle best backprop* (:mod:`vsml.eval.compare`): online SGD and Adam, linear and with a
160-unit tanh hidden layer, over a learning-rate grid, the best configuration per figure chosen on
these same episodes — tuned in a way that favours backprop. Each learner's paired difference to it
(same episodes, 95 % t-interval) is printed and saved. Defaults (16 episodes × 300 steps) run in
a few minutes on 2 CPU cores.
"""

from __future__ import annotations

from pathlib import Path

from vsml.data.episodes import DatasetSpec, SamplerConfig, draw_episodes
from vsml.eval.compare import ORACLE_LRS, oracle_backprop
from vsml.eval.evaluate import EvalReport, evaluate
from vsml.eval.report import print_table, write_all
from vsml.learners.registry import make_learner


def run_showcase(
    out_dir: str | Path = "runs/showcase",
    learners: dict | None = None,
    *,
    episodes: int = 16,
    steps: int = 300,
    seed: int = 0,
    baselines: tuple[str, ...] = (),
    oracle: bool = True,
    progress: bool = True,
    console=None,
    contracts: dict | None = None,
) -> EvalReport:
    """Evaluate ``learners`` (label -> ``(learner, params)``) plus ``baselines`` on digits, with the
    oracle best backprop as the reference of paired differences (``oracle=False``: no reference).

    Prints the tables and writes ``curves.png``, ``curves.csv``, ``table.md`` and ``results.json``
    under ``out_dir`` (checked for writability before any compute). Returns the :class:`EvalReport`.

    ``contracts``: label -> :class:`vsml.contract.InputContract` of learners that need other
    inputs than the native 8×8 digits (e.g. ``meta_mnist``: 14×14). Each such learner runs, with
    the baselines and its own oracle, on the same episodes (same seed, examples and labels) resized
    as its contract says, reported as the dataset ``digits HxW``.
    """
    from vsml.runs import check_writable

    out_dir = check_writable(out_dir)
    entries = dict(learners or {})
    base = {name: (make_learner(name), None) for name in baselines}
    sized = {k for k, c in (contracts or {}).items() if c is not None and c.image_size is not None}
    groups: dict = {None: {**base, **{k: v for k, v in entries.items() if k not in sized}}}
    for label, c in (contracts or {}).items():
        if label in entries and c is not None and c.image_size is not None:
            groups.setdefault(tuple(c.image_size), dict(base))[label] = entries[label]
    report = EvalReport([], {"seed": seed, "datasets": {}})
    if oracle:
        grid = ", ".join(f"{k} {{{', '.join(f'{v:g}' for v in lrs)}}}" for k, lrs in ORACLE_LRS.items())
        say = console.print if console is not None else print
        say(
            f"Reference: oracle best backprop = online SGD/Adam, linear or 160-tanh hidden layer, learning rates "
            f"{grid}; "
            f"for each figure the best of these 22 configurations on these same episodes (favours backprop)."
        )
        report.reference = "oracle"
    for size, group in groups.items():
        if not group:
            continue
        name = "digits" if size is None else f"digits {size[0]}x{size[1]}"
        cfg = SamplerConfig(datasets=(DatasetSpec("digits", "test"),), steps=steps, image_size=size)
        eps = {name: draw_episodes(cfg, seed, episodes)}
        part = evaluate(group, eps, seed=seed, progress=progress)
        report.results.extend(part.results)
        report.meta["datasets"].update(part.meta["datasets"])
        report.meta.setdefault("learners", [])
        report.meta["learners"] += [n for n in part.meta["learners"] if n not in report.meta["learners"]]
        if oracle:
            report.oracles.update(oracle_backprop(eps, seed=seed, progress=progress))
    paths = write_all(report, out_dir, json_path=out_dir / "results.json")
    print_table(report, console=console)
    (console.print if console is not None else print)(f"plot: {paths['plot']}")
    return report


def headline(report: EvalReport, label: str, confidence: float = 0.95) -> str | None:
    """One sentence on ``label`` against the oracle best backprop: its online accuracy, the oracle's,
    and the paired difference (mean ± CI half-width, points) over all steps, the first 100 and the
    last 100 (where the episodes are that long). ``None`` when ``label`` or the oracle is not in the report."""
    from vsml.eval.report import ORACLE, _fmt_diff, paired_rows, summary_rows

    if report.reference != "oracle":
        return None
    rows = summary_rows(report, confidence)
    mine = next((r for r in rows if r["learner"] == label), None)
    diff = next((r for r in paired_rows(report, confidence) if r["learner"] == label), None)
    if mine is None or diff is None:
        return None
    oracle = next(r for r in rows if r["learner"] == ORACLE and r["dataset"] == mine["dataset"])
    return (
        f"{label} on {mine['dataset']} ({mine['episodes']} episodes × {mine['steps']} steps): online accuracy "
        f"{mine['online_acc'].mean * 100:.1f} % against {oracle['online_acc'].mean * 100:.1f} % for the oracle best "
        f"backprop; paired difference {_fmt_diff(diff.get('online_acc'))} points over all steps"
        + "".join(
            f", {_fmt_diff(diff[k])} over the {name}"
            for k, name in (("first_100_acc", "first 100"), ("final_acc", "last 100"))
            if k in diff
        )  # windows that fit
        + f" ({int(confidence * 100)} % CI)."
    )
