"""Meta-test evaluation: same episodes for every learner, curves, tables, plots, introspection.

- :mod:`vsml.eval.evaluate` — :func:`evaluate` over :class:`~vsml.data.episodes.Episodes` (drawn with
  :func:`vsml.data.episodes.draw_episodes`, the one episode pipeline)
- :mod:`vsml.eval.metrics` — confidence intervals and summary figures
- :mod:`vsml.eval.report` — CSV / markdown / JSON / console table
- :mod:`vsml.eval.plots` — PNG figures (Agg)
- :mod:`vsml.eval.introspect` — fast association, state norms
- :mod:`vsml.eval.showcase` — :func:`run_showcase` on the built-in digits
- :mod:`vsml.eval.cli` — ``vsml evaluate`` / ``vsml introspect`` (argparse wiring; their work:
  :mod:`vsml.eval.commands`)
"""

from vsml.data.episodes import Episodes, draw_episodes
from vsml.eval.evaluate import EvalError, EvalReport, episode_keys, evaluate

__all__ = ["Episodes", "EvalError", "EvalReport", "draw_episodes", "episode_keys", "evaluate"]
