"""Outputs of an evaluation: per-step CSV, markdown table, JSON and a rich console table."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from vsml.artifacts import atomic_write_bytes
from vsml.eval.evaluate import EvalReport
from vsml.eval.metrics import curve_ci, metric_label, ordered_metrics

ORACLE = "oracle best backprop"


def summary_rows(report: EvalReport, confidence: float = 0.95) -> list[dict]:
    """One row per (learner, dataset): ``{'learner', 'dataset', 'episodes', 'steps', <metric>: Estimate}``;
    plus one ``oracle best backprop`` row per dataset when the report has oracles."""
    rows = []
    for r in report.results:
        row = {"learner": r.learner, "dataset": r.dataset, "episodes": r.correct.shape[0], "steps": r.correct.shape[1]}
        row.update(r.summary(confidence, report.windows))
        if "tuned_lr" in r.info:
            row["tuned_lr"] = r.info["tuned_lr"]
        rows.append(row)
    for dataset, oracle in report.oracles.items():
        first = next(r for r in report.results if r.dataset == dataset)
        row = {
            "learner": ORACLE,
            "dataset": dataset,
            "episodes": first.correct.shape[0],
            "steps": first.correct.shape[1],
            "oracle_choice": {m: label for m, (label, _) in oracle.best.items()},
        }
        row.update(oracle.summary(confidence))
        rows.append(row)
    return rows


def paired_rows(report: EvalReport, confidence: float = 0.95) -> list[dict]:
    """Paired differences against ``report.reference`` (empty when none is set)."""
    if report.reference is None:
        return []
    from vsml.eval.compare import paired_differences

    return paired_differences(report, report.reference, report.oracles, confidence)


def _paired_markdown(report: EvalReport, confidence: float) -> str:
    rows = paired_rows(report, confidence)
    if not rows:
        return ""
    metrics = [m for m in ordered_metrics(k for r in rows for k in r) if m.endswith("_acc")]
    ref = ORACLE if report.reference == "oracle" else report.reference
    lines = [
        f"\n**Paired differences: learner − {ref}** (accuracy points; mean ± half-width of the "
        f"{int(confidence * 100)} % t-interval of the per-episode difference; same episodes and keys)\n",
        "| dataset | learner | " + " | ".join(metric_label(m) for m in metrics) + " |",
        "|" + "|".join(["---"] * 2 + ["---:"] * len(metrics)) + "|",
    ]
    for r in rows:
        cells = [_fmt_diff(r.get(m)) for m in metrics]
        lines.append(f"| {r['dataset']} | {r['learner']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _fmt_diff(est) -> str:
    if est is None:
        return "—"
    if not math.isfinite(est.lo):
        return f"{est.mean * 100:+.1f} (interval undefined: 1 episode)"
    return f"{est.mean * 100:+.1f} ± {est.half_width * 100:.1f}"


def _metrics_present(rows) -> list[str]:
    return ordered_metrics(k for row in rows for k in row)


def _fmt(est, percent: bool) -> str:
    if est is None:
        return "—"
    scale = 100.0 if percent else 1.0
    digits = 1 if percent else 3
    if not math.isfinite(est.half_width):  # one episode: no interval
        return f"{est.mean * scale:.{digits}f} ± n/a"
    return f"{est.mean * scale:.{digits}f} ± {est.half_width * scale:.{digits}f}"


def markdown_table(report: EvalReport, confidence: float = 0.95) -> str:
    """Markdown table: accuracies in % (mean ± 95 % CI half-width over episodes), loss in nats."""
    rows = summary_rows(report, confidence)
    metrics = _metrics_present(rows)
    header = ["dataset", "learner"] + [metric_label(m) + (" (%)" if m.endswith("_acc") else "") for m in metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * len(metrics)) + "|"]
    order = report.learners + [ORACLE]
    for row in sorted(rows, key=lambda r: (report.datasets.index(r["dataset"]), order.index(r["learner"]))):
        name = row["learner"] + (f" = {row['tuned_lr']:g}" if "tuned_lr" in row else "")
        cells = [row["dataset"], name] + [_fmt(row.get(m), m.endswith("_acc")) for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    e = {r["episodes"] for r in rows}
    note = (
        f"\nMean ± half-width of the {int(confidence * 100)} % t-interval over {', '.join(map(str, sorted(e)))} "
        f"episode{'' if e == {1} else 's'}" + ("; final = last 100 steps." if "final_acc" in metrics else ".")
    )
    if 1 in e:
        note += " With one episode the interval is undefined (n/a)."
    for row in rows:
        if "oracle_choice" in row:
            choice = "; ".join(
                f"{metric_label(m)}: {label}" for m, label in row["oracle_choice"].items() if m in metrics
            )
            note += (
                f"\n{ORACLE} on {row['dataset']}: for each column the best of SGD/Adam × {{linear, 160-tanh}} × a "
                f"learning-rate grid, chosen on these same episodes (favours backprop) — {choice}."
            )
    return "\n".join(lines) + "\n" + note + "\n" + _paired_markdown(report, confidence)


def report_json(report: EvalReport, confidence: float = 0.95) -> dict:
    """Every figure of the table as plain JSON (means, CI bounds, n), plus the settings."""
    out = {"meta": report.meta, "confidence": confidence, "results": []}
    for row in summary_rows(report, confidence):
        entry = {
            k: v
            for k, v in row.items()
            if k in ("learner", "dataset", "episodes", "steps", "tuned_lr", "oracle_choice")
        }
        entry["metrics"] = {m: row[m].as_dict() for m in ordered_metrics(row)}
        out["results"].append(entry)
    if report.oracles:
        out["oracle_grid"] = {d: o.scores for d, o in report.oracles.items()}
    if report.reference is not None:
        out["paired"] = [
            {
                **{k: r[k] for k in ("learner", "reference", "dataset", "episodes")},
                "metrics": {m: r[m].as_dict() for m in ordered_metrics(r)},
            }
            for r in paired_rows(report, confidence)
        ]
    return _finite(out)


def _finite(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "ndim", None) == 0:
        return _finite(obj.item())
    return obj


def write_json(report: EvalReport, path: str | Path, confidence: float = 0.95) -> Path:
    return atomic_write_bytes(path, (json.dumps(report_json(report, confidence), indent=2) + "\n").encode())


def write_curves_csv(report: EvalReport, path: str | Path, confidence: float = 0.95) -> Path:
    """Per-step curves: ``learner,dataset,step,acc_mean,acc_lo,acc_hi,loss_mean,loss_lo,loss_hi,episodes``.

    ``step`` counts from 1; bounds are pointwise t-intervals over episodes.
    """
    f = io.StringIO(newline="")  # built in memory, then written atomically
    w = csv.writer(f)
    w.writerow(
        ["learner", "dataset", "step", "acc_mean", "acc_lo", "acc_hi", "loss_mean", "loss_lo", "loss_hi", "episodes"]
    )
    for r in report.results:
        am, al, ah = curve_ci(r.correct, confidence)
        lm, ll, lh = curve_ci(r.loss, confidence)
        e = r.correct.shape[0]
        for t in range(len(am)):
            w.writerow(
                [r.learner, r.dataset, t + 1] + [_cell(v) for v in (am[t], al[t], ah[t], lm[t], ll[t], lh[t])] + [e]
            )
    return atomic_write_bytes(path, f.getvalue().encode())


def _cell(v) -> str:
    return f"{v:.6g}" if math.isfinite(v) else ""  # an undefined bound (one episode) is left empty


def print_table(report: EvalReport, confidence: float = 0.95, console=None) -> None:
    """Print the summary table with rich."""
    from rich.console import Console
    from rich.table import Table

    rows = summary_rows(report, confidence)
    metrics = _metrics_present(rows)
    table = Table(title=f"online learning, mean ± {int(confidence * 100)} % CI over episodes")
    table.add_column("dataset")
    table.add_column("learner")
    for m in metrics:
        table.add_column(metric_label(m) + (" %" if m.endswith("_acc") else ""), justify="right")
    for row in rows:
        name = row["learner"] + (f" = {row['tuned_lr']:g}" if "tuned_lr" in row else "")
        table.add_row(row["dataset"], name, *[_fmt(row.get(m), m.endswith("_acc")) for m in metrics])
    if console is None:
        console = Console()
        if not console.is_terminal:  # files/pipes: do not wrap the table at 80 columns
            console = Console(width=160)
    console.print(table)
    paired = paired_rows(report, confidence)
    if paired:
        acc = [m for m in metrics if m.endswith("_acc")]
        ref = ORACLE if report.reference == "oracle" else report.reference
        pt = Table(
            title=f"paired difference: learner − {ref} (points, mean ± {int(confidence * 100)} % CI, same episodes)"
        )
        pt.add_column("dataset")
        pt.add_column("learner")
        for m in acc:
            pt.add_column(metric_label(m), justify="right")
        for r in paired:
            pt.add_row(r["dataset"], r["learner"], *[_fmt_diff(r.get(m)) for m in acc])
        console.print(pt)


#: The files :func:`write_all` writes into an output folder (what ``--overwrite`` may remove).
OWNED = ("curves.csv", "table.md", "curves.png", "results.json")


def write_all(
    report: EvalReport,
    out_dir: str | Path,
    *,
    json_path=None,
    plot: bool = True,
    smooth: int | None = None,
    confidence=0.95,
) -> dict[str, Path]:
    """Write ``curves.csv``, ``table.md``, ``curves.png`` (and JSON if ``json_path``) under ``out_dir``,
    each atomically (a failed write leaves no partial file). :data:`OWNED` names them."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"csv": write_curves_csv(report, out_dir / "curves.csv", confidence)}
    paths["table"] = atomic_write_bytes(out_dir / "table.md", markdown_table(report, confidence).encode())
    if plot:
        from vsml.eval.plots import plot_learning_curves

        paths["plot"] = plot_learning_curves(report, out_dir / "curves.png", smooth=smooth, confidence=confidence)
    if json_path is not None:
        paths["json"] = write_json(report, json_path, confidence)
    return paths
