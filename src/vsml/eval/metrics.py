"""Summary statistics with 95 % confidence intervals over episodes.

Intervals are Student-t intervals of the mean over independent episodes:
``mean ± t_{0.975, E-1} · sd / sqrt(E)``. With a single episode the interval is undefined: its
bounds are NaN (printed as "n/a", written as empty / null).
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

import numpy as np


class Estimate(NamedTuple):
    """Mean with a two-sided confidence interval ``[lo, hi]`` over ``n`` episodes."""

    mean: float
    lo: float
    hi: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.hi - self.lo) / 2

    def as_dict(self) -> dict:
        return {"mean": self.mean, "ci_low": self.lo, "ci_high": self.hi, "n": self.n}


def t_quantile(n: int, confidence: float = 0.95) -> float:
    """Two-sided Student-t quantile for ``n`` samples (``n - 1`` degrees of freedom)."""
    if n < 2:
        return 0.0
    from scipy.stats import t

    return float(t.ppf(0.5 + confidence / 2, n - 1))


def mean_ci(values, confidence: float = 0.95) -> Estimate:
    """``values [E]`` (one number per episode) -> :class:`Estimate`."""
    v = np.asarray(values, np.float64).reshape(-1)
    if v.size == 0:
        raise ValueError("mean_ci needs at least one value")
    mean = float(v.mean())
    if v.size < 2:
        return Estimate(mean, math.nan, math.nan, 1)
    half = t_quantile(v.size, confidence) * float(v.std(ddof=1)) / math.sqrt(v.size)
    return Estimate(mean, mean - half, mean + half, int(v.size))


def curve_ci(values, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``values [E, T]`` -> ``(mean, lo, hi)``, each ``[T]``: a pointwise interval over episodes."""
    v = np.asarray(values, np.float64)
    if v.ndim != 2 or v.shape[0] == 0:
        raise ValueError(f"curve_ci needs values of shape [episodes, T], got {v.shape}")
    mean = v.mean(axis=0)
    if v.shape[0] < 2:
        return mean, np.full_like(mean, np.nan), np.full_like(mean, np.nan)
    half = t_quantile(v.shape[0], confidence) * v.std(axis=0, ddof=1) / math.sqrt(v.shape[0])
    return mean, mean - half, mean + half


def smooth(values, window: int) -> np.ndarray:
    """Trailing running mean along the last axis (``window`` steps; shorter at the start)."""
    v = np.asarray(values, np.float64)
    if window <= 1:
        return v
    c = np.cumsum(v, axis=-1)
    out = c.copy()
    out[..., window:] = c[..., window:] - c[..., :-window]
    counts = np.minimum(np.arange(1, v.shape[-1] + 1), window)
    return out / counts


# Figures of the summary table, in column order, with their column headers.
METRIC_LABELS = {
    "online_acc": "online acc",
    "first_100_acc": "acc first 100",
    "first_1000_acc": "acc first 1000",
    "final_acc": "final acc (last 100)",
    "online_loss": "online loss",
}


_WINDOW = re.compile(r"steps_(\d+)_(\d+)_acc")


def window_key(start: int, stop: int) -> str:
    """Figure name of the accuracy over steps ``[start, stop)`` (0-based, as a Python slice)."""
    return f"steps_{start}_{stop}_acc"


def parse_window(spec: str) -> tuple[int, int]:
    """``"A:B"`` -> ``(A, B)``: the steps ``A … B-1`` (0-based, a Python slice; ``"100:200"`` is the
    101st to the 200th step). Raises ``ValueError`` with the expected form otherwise."""
    a, sep, b = str(spec).partition(":")
    try:
        start, stop = int(a), int(b)
    except ValueError:
        start = stop = -1
    if not sep or start < 0 or stop <= start:
        raise ValueError(f"window {spec!r}: expected START:STOP with 0 <= START < STOP (steps START … STOP-1, 0-based)")
    return start, stop


def metric_label(key: str) -> str:
    """Column header of a figure (``"steps_0_50_acc"`` -> ``"acc steps 0:50"``)."""
    if key in METRIC_LABELS:
        return METRIC_LABELS[key]
    m = _WINDOW.fullmatch(key)
    return f"acc steps {m[1]}:{m[2]}" if m else key


def ordered_metrics(keys) -> list[str]:
    """The figures among ``keys`` in table order: the fixed accuracy figures, step windows (by start),
    then the loss."""
    keys = set(keys)
    fixed = [m for m in METRIC_LABELS if m in keys and m != "online_loss"]
    windows = sorted(
        (k for k in keys if _WINDOW.fullmatch(k)), key=lambda k: tuple(map(int, _WINDOW.fullmatch(k).groups()))
    )
    return fixed + windows + (["online_loss"] if "online_loss" in keys else [])


def episode_summaries(correct, loss, windows=()) -> dict[str, np.ndarray]:
    """Per-episode figures from ``correct, loss [E, T]`` (batch already averaged).

    Returns ``{'online_acc', 'first_100_acc', 'first_1000_acc', 'final_acc', 'online_loss'}`` plus,
    per ``(start, stop)`` of ``windows``, the accuracy over those steps (:func:`window_key`), each
    ``[E]``; windows longer than the episode are omitted (``first_100_acc`` and ``final_acc``, the
    last 100 steps, too: a table of 10-step episodes shows only what they have).
    """
    correct = np.asarray(correct, np.float64)
    loss = np.asarray(loss, np.float64)
    t = correct.shape[1]
    out = {"online_acc": correct.mean(1)}
    for w in (100, 1000):
        if t >= w:
            out[f"first_{w}_acc"] = correct[:, :w].mean(1)
    if t >= 100:  # a shorter episode has no "last 100 steps": its whole-episode figure is online_acc
        out["final_acc"] = correct[:, -100:].mean(1)
    for start, stop in windows:
        if stop <= t:
            out[window_key(start, stop)] = correct[:, start:stop].mean(1)
    out["online_loss"] = loss.mean(1)
    return out


def summarize(correct, loss, confidence: float = 0.95, windows=()) -> dict[str, Estimate]:
    """:func:`episode_summaries` reduced to :class:`Estimate` over episodes."""
    return {k: mean_ci(v, confidence) for k, v in episode_summaries(correct, loss, windows).items()}
