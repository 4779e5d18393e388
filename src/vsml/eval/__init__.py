"""Meta-test evaluation: same episodes for every learner, curves, tables, plots, introspection.

- :mod:`vsml.eval.evaluate` — :class:`Episodes`, :func:`make_episodes`, :func:`evaluate`
- :mod:`vsml.eval.metrics` — confidence intervals and summary figures
- :mod:`vsml.eval.report` — CSV / markdown / JSON / console table
- :mod:`vsml.eval.plots` — PNG figures (Agg)
- :mod:`vsml.eval.introspect` — fast association, state norms
- :mod:`vsml.eval.showcase` — :func:`run_showcase` on the built-in digits
- :mod:`vsml.eval.cli` — ``vsml evaluate`` / ``vsml introspect``
"""

from vsml.eval.evaluate import EpisodeOptions, Episodes, EvalError, EvalReport, episode_keys, evaluate, make_episodes

__all__ = ["EpisodeOptions", "Episodes", "EvalError", "EvalReport", "episode_keys", "evaluate", "make_episodes"]
