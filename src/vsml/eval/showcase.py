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
) -> EvalReport:
    """Evaluate ``learners`` (label -> ``(learner, params)``) plus ``baselines`` on digits, with the
    oracle best backprop as the reference of paired differences (``oracle=False``: no reference).

    Prints the tables and writes ``curves.png``, ``curves.csv``, ``table.md`` and ``results.json``
    under ``out_dir``. Returns the :class:`EvalReport`.
    """
    entries = dict(learners or {})
    for name in baselines:
        entries.setdefault(name, (make_learner(name), None))
    eps = {"digits": draw_episodes(SamplerConfig(datasets=(DatasetSpec("digits", "test"),), steps=steps), seed, episodes)}
    report = evaluate(entries, eps, seed=seed, progress=progress)
    if oracle:
        grid = ", ".join(f"{k} {{{', '.join(f'{v:g}' for v in lrs)}}}" for k, lrs in ORACLE_LRS.items())
        say = console.print if console is not None else print
        say(f"Reference: oracle best backprop = online SGD/Adam, linear or 160-tanh hidden layer, learning rates {grid}; "
            f"for each figure the best of these 22 configurations on these same episodes (favours backprop).")
        report.oracles = oracle_backprop(eps, seed=seed, progress=progress)
        report.reference = "oracle"
    out_dir = Path(out_dir)
    paths = write_all(report, out_dir, json_path=out_dir / "results.json")
    print_table(report, console=console)
    (console.print if console is not None else print)(f"plot: {paths['plot']}")
    return report
