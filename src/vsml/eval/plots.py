"""Figures (matplotlib): learning curves, fast association, state norms.

Plots use matplotlib's active backend: a notebook shows each figure inline (it stays open after
it is written), a script on a desktop may ``plt.show()`` them; with a file-only backend (Agg,
which matplotlib picks itself where there is no display) each figure is closed once written. The
``vsml`` command selects Agg (``MPLBACKEND``, unless set), so it writes its PNGs without a display
and opens no window."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from vsml.eval.metrics import curve_ci
from vsml.eval.metrics import smooth as running_mean

_FILE_BACKENDS = ("agg", "cairo", "pdf", "pgf", "ps", "svg", "template")


def pyplot():
    """matplotlib.pyplot on the active backend (module docstring)."""
    import matplotlib.pyplot as plt

    return plt


def shows_figures() -> bool:
    """Whether the active backend displays figures (inline in a notebook, or a GUI), so that a
    written figure is left open for it; False for file-only backends such as Agg."""
    import matplotlib

    return matplotlib.get_backend().lower() not in _FILE_BACKENDS


def default_window(steps: int) -> int:
    """Running-mean window for a curve of ``steps`` points (~5 % of the episode, 1..100)."""
    return max(1, min(100, steps // 20))


def plot_learning_curves(
    report, path: str | Path, *, smooth: int | None = None, confidence: float = 0.95, log_x: bool = False
) -> Path:
    """One panel per dataset; per learner the running-mean accuracy over steps with a CI band.

    Each episode's per-step accuracy is smoothed with a trailing window of ``smooth`` steps
    (default :func:`default_window`), then the band is the pointwise interval over episodes. When
    the report has an oracle for a dataset (``vsml run``, ``vsml evaluate --reference oracle``), its
    best-online configuration is drawn on that panel too (black, dashed), as the table reports it.
    """
    plt = pyplot()
    datasets = report.datasets
    cols = 2 if len(datasets) == 4 else min(3, len(datasets))
    rows = math.ceil(len(datasets) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.4 * rows), squeeze=False)
    for ax, dname in zip(axes.flat, datasets):
        for r in report.results:
            if r.dataset != dname:
                continue
            w = smooth or default_window(r.correct.shape[1])
            mean, lo, hi = curve_ci(running_mean(r.correct, w), confidence)
            steps = np.arange(1, len(mean) + 1)
            (line,) = ax.plot(steps, 100 * mean, label=r.learner, lw=1.4)
            ax.fill_between(
                steps, np.clip(100 * lo, 0, 100), np.clip(100 * hi, 0, 100), color=line.get_color(), alpha=0.2, lw=0
            )
        oracle = getattr(report, "oracles", {}).get(dname)
        if oracle is not None and oracle.online_curves is not None:
            correct = np.asarray(oracle.online_curves[0])
            mean, lo, hi = curve_ci(running_mean(correct, smooth or default_window(correct.shape[1])), confidence)
            steps = np.arange(1, len(mean) + 1)
            ax.plot(
                steps,
                100 * mean,
                color="black",
                ls="--",
                lw=1.4,
                label=f"oracle best backprop ({oracle.best['online_acc'][0]})",
            )
            ax.fill_between(
                steps, np.clip(100 * lo, 0, 100), np.clip(100 * hi, 0, 100), color="black", alpha=0.08, lw=0
            )
        ax.set_title(dname)
        ax.set_xlabel("step (examples seen)")
        ax.set_ylabel("online accuracy (%)")
        if log_x:
            ax.set_xscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    for ax in list(axes.flat)[len(datasets) :]:
        ax.axis("off")
    return save_figure(fig, path)


def save_figure(fig, path: str | Path) -> Path:
    """Lay out ``fig``, write it to ``path`` atomically (format from the suffix; 120 dpi) and close it
    (left open where the backend displays figures: :func:`shows_figures`)."""
    import io

    from vsml.artifacts import atomic_write_bytes

    fig.tight_layout()
    buf = io.BytesIO()
    try:
        fig.savefig(buf, dpi=120, format=Path(path).suffix.lstrip(".") or "png")
    finally:
        if not shows_figures():
            pyplot().close(fig)
    return atomic_write_bytes(path, buf.getvalue())  # never a half-written figure


def plot_fast_association(results: dict, path: str | Path, title: str = "fast association") -> Path:
    """``results``: learner -> dict with ``shots``, ``prob_mean``, ``prob_lo``, ``prob_hi`` (see introspect)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for name, r in results.items():
        shots = np.asarray(r["shots"])
        (line,) = ax.plot(shots, r["prob_mean"], marker="o", ms=3, label=name)
        ax.fill_between(shots, r["prob_lo"], r["prob_hi"], color=line.get_color(), alpha=0.2, lw=0)
    ax.set_xlabel("labelled examples of the class seen before")
    ax.set_ylabel("p(correct class) at its next occurrence")
    ax.set_title(title)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_state_norms(norms: dict, path: str | Path, title: str = "state norms") -> Path:
    """``norms``: learner -> ``(leaf_names, values [T + 1, n_leaves])``; one panel per learner."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(norms), figsize=(4.6 * len(norms), 3.4), squeeze=False)
    for ax, (name, (leaves, values)) in zip(axes.flat, norms.items()):
        values = np.asarray(values)
        steps = np.arange(values.shape[0])
        for i, leaf in enumerate(leaves):
            ax.plot(steps, values[:, i], label=leaf, lw=1.2)
        ax.set_title(f"{name}: {title}")
        ax.set_xlabel("step (0 = initial state)")
        ax.set_ylabel("L2 norm")
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def plot_episode_outputs(probs: dict, ys, path: str | Path, title: str = "predictions over one episode") -> Path:
    """The paper's introspection picture: ``probs``: learner -> ``[T, C]`` predicted class
    probabilities at each step of one episode (before that step's label is revealed); ``ys [T]``
    the labels. One heat map per learner (x: step, y: class); a dot marks each step's true class,
    a ring the first labelled example of a class. A learner that associates after one example
    lights up the true class at its second occurrence."""
    from vsml.eval.introspect import first_occurrences

    plt = pyplot()
    ys = np.asarray(ys)
    steps = len(ys)
    first = first_occurrences(ys)
    fig, axes = plt.subplots(
        len(probs),
        1,
        figsize=(
            max(6.0, 0.22 * steps + 1.5),
            1.0 + 0.35 * np.asarray(next(iter(probs.values()))).shape[1] * len(probs),
        ),
        squeeze=False,
    )
    t = np.arange(1, steps + 1)
    for ax, (name, p) in zip(axes[:, 0], probs.items()):
        p = np.asarray(p)[:steps]
        im = ax.imshow(
            p.T,
            aspect="auto",
            origin="lower",
            cmap="viridis",
            vmin=0,
            vmax=1,
            extent=(0.5, steps + 0.5, -0.5, p.shape[1] - 0.5),
            interpolation="nearest",
        )
        ax.scatter(t[~first], ys[~first], s=10, c="white", edgecolors="black", linewidths=0.5, label="true class")
        ax.scatter(
            t[first],
            ys[first],
            s=42,
            facecolors="none",
            edgecolors="red",
            linewidths=1.2,
            label="first example of its class",
        )
        ax.set_ylabel(f"{name}\nclass")
        ax.set_yticks(range(p.shape[1]))
        fig.colorbar(im, ax=ax, fraction=0.02, pad=0.01, label="p")
    axes[0, 0].set_title(title)
    axes[0, 0].legend(fontsize=7, loc="upper right", bbox_to_anchor=(1.0, 1.35), ncol=2, frameon=False)
    axes[-1, 0].set_xlabel("step")
    return save_figure(fig, path)
