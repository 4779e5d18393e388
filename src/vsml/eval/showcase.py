"""The README's main job: meta-test learners on the built-in 8x8 digits and show table + plot.

    from vsml.eval.showcase import run_showcase
    report = run_showcase("runs/showcase", learners={"vsml": (VSML(VSMLConfig()), params)})

Always includes online SGD (lr 0.01) and Adam (lr 1e-3); every learner sees the same held-out
(test-split) episodes and per-episode keys. Defaults (16 episodes x 300 steps) run in well under
3 minutes on 2 CPU cores.
"""

from __future__ import annotations

from pathlib import Path

from vsml.data.episodes import DatasetSpec, SamplerConfig, draw_episodes
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
    baselines: tuple[str, ...] = ("sgd", "adam"),
    progress: bool = True,
    console=None,
) -> EvalReport:
    """Evaluate ``learners`` (label -> ``(learner, params)``) plus ``baselines`` on digits.

    Prints the summary table and writes ``curves.png``, ``curves.csv``, ``table.md`` and
    ``results.json`` under ``out_dir``. Returns the :class:`EvalReport`.
    """
    entries = dict(learners or {})
    for name in baselines:
        entries.setdefault(name, (make_learner(name), None))
    eps = draw_episodes(SamplerConfig(datasets=(DatasetSpec("digits", "test"),), steps=steps), seed, episodes)
    report = evaluate(entries, {"digits": eps}, seed=seed, progress=progress)
    out_dir = Path(out_dir)
    paths = write_all(report, out_dir, json_path=out_dir / "results.json")
    print_table(report, console=console)
    (console.print if console is not None else print)(f"plot: {paths['plot']}")
    return report
