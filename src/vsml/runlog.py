"""Logging of long runs (meta-training, cloning): progress bar, CSV tables, TensorBoard, wandb.

    log = RunLogger(out_dir, "meta-train", fields=("iteration", "loss"), progress=True)
    log.start(start=0, total=1000, resume=False)
    log.iteration({"iteration": 1, "loss": 0.7})          # metrics.csv, TensorBoard, progress bar
    log.table("eval", {"iteration": 1, "dataset": "digits:test", "online": 0.5})   # eval.csv
    log.message("stage 0 -> 1")                           # stderr (no progress bar) or above the bar
    log.close()

Only the main process of a multi-process run logs (``active=False`` elsewhere). On resume, rows
logged after the checkpoint being resumed (``iteration > start``) are dropped first: they are
redone, so every table holds each iteration once.
"""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path


def truncate_csv(path: Path, last_iteration: int) -> None:
    """Keep the header and the complete rows whose first column (iteration) is ``<= last_iteration``
    (a row cut short by a kill has no line end and is dropped); rewritten atomically."""
    from vsml.artifacts import atomic_write_bytes

    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    keep = lines[:1] + [
        ln
        for ln in lines[1:]
        if ln.endswith("\n") and ln.split(",", 1)[0].isdigit() and int(ln.split(",", 1)[0]) <= last_iteration
    ]
    atomic_write_bytes(path, "".join(keep).encode())


class RunLogger:
    """See module docstring. ``scalars``: fields sent to TensorBoard / wandb under ``<prefix>/``."""

    def __init__(
        self,
        out_dir,
        title: str,
        fields: tuple[str, ...],
        *,
        active: bool = True,
        progress: bool = True,
        csv_files: bool = True,
        tensorboard: bool = False,
        wandb_project: str | None = None,
        run_name: str = "",
        run_config: dict | None = None,
        every: int = 10,
        scalars: tuple[str, ...] = (),
        prefix: str = "meta",
        metrics_name: str = "metrics",
        info=None,
        log=None,
    ):
        self.out, self.title, self.fields = Path(out_dir), title, tuple(fields)
        self.active, self.progress_on, self.csv_on, self.tb_on = active, progress, csv_files, tensorboard
        self.wandb_project, self.run_name, self.run_config = wandb_project, run_name, run_config or {}
        self.every, self.scalars, self.prefix, self.metrics_name = (
            max(1, int(every)),
            tuple(scalars),
            prefix,
            metrics_name,
        )
        self.info = info or (lambda rec: "")
        self._log = log or (lambda msg: print(msg, file=sys.stderr))
        self.progress = self.tb = self.wandb = None
        self._files: dict[str, tuple] = {}
        self._last = (time.time(), 0)

    # ---- lifecycle

    def start(self, start: int, total: int, resume: bool = False) -> None:
        self._resume, self._start = resume, start
        self._last = (time.time(), start)
        if not self.active:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        if self.csv_on:
            self._open(self.metrics_name, self.fields)
        if self.tb_on:
            try:
                from tensorboardX import SummaryWriter

                self.tb = SummaryWriter(str(self.out / "tb"))
            except ImportError:
                self.message("note: tensorboardX is not installed; no TensorBoard scalars")
        if self.wandb_project:
            try:
                import wandb

                self.wandb = wandb.init(project=self.wandb_project, name=self.run_name, config=self.run_config)
            except ImportError:
                self.message("note: wandb logging is on but wandb is not installed; skipping")
        if self.progress_on:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

            from vsml.progress import progress_bar  # plain periodic lines when not on a terminal

            self.progress = progress_bar(
                TextColumn(self.title),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeRemainingColumn(),
            )
            self.progress.start()
            self._task = self.progress.add_task(self.title, total=total, completed=start, info="")

    def _open(self, name: str, fields) -> tuple:
        if name not in self._files:
            path = self.out / f"{name}.csv"
            if self._resume:
                truncate_csv(path, self._start)
            new = not (self._resume and path.is_file() and path.stat().st_size > 0)
            f = open(path, "w" if new else "a", newline="")
            writer = csv.DictWriter(f, tuple(fields), extrasaction="ignore")
            if new:
                writer.writeheader()
            self._files[name] = (f, writer)
        return self._files[name]

    def close(self) -> None:
        if self.progress:
            self.progress.stop()
            self.progress = None
        for f, _ in self._files.values():
            f.close()
        self._files = {}
        if self.tb:
            self.tb.close()
            self.tb = None
        if self.wandb:
            self.wandb.finish()
            self.wandb = None

    # ---- records

    def message(self, msg: str) -> None:
        if not self.active:
            return
        if self.progress:
            self.progress.console.print(msg)
        else:
            self._log(msg)

    def iteration(self, rec: dict) -> None:
        """One row of ``<metrics_name>.csv`` (and scalars, progress); ``rec["iteration"]`` is 1-based."""
        if not self.active:
            return
        it = int(rec["iteration"])
        if self.csv_on:  # flushed every row: a killed run keeps every row up to its last checkpoint
            f, writer = self._open(self.metrics_name, self.fields)
            writer.writerow(rec)
            f.flush()
        for k in self.scalars:
            if self.tb:
                self.tb.add_scalar(f"{self.prefix}/{k}", rec[k], it)
        if self.wandb and self.scalars:
            self.wandb.log({f"{self.prefix}/{k}": rec[k] for k in self.scalars}, step=it)
        now = time.time()
        t_prev, i_prev = self._last
        rate = (it - i_prev) / max(now - t_prev, 1e-9)
        if self.progress:
            self.progress.update(self._task, completed=it, info=f"{self.info(rec)} {rate:.2f} it/s")
        if it % self.every == 0:
            if not self.progress:
                self._log(f"it {it:6d}  {self.info(rec)}  {rate:.2f} it/s")
            self._last = (now, it)

    def table(self, name: str, row: dict, scalars: dict | None = None) -> None:
        """Append ``row`` to ``<name>.csv`` (columns: the first row's keys); ``scalars`` also go to
        TensorBoard/wandb."""
        if not self.active:
            return
        if self.csv_on:
            f, writer = self._open(name, tuple(row))
            writer.writerow(row)
            f.flush()
        it = int(row.get("iteration", 0))
        for k, v in (scalars or {}).items():
            if self.tb:
                self.tb.add_scalar(k, v, it)
        if self.wandb and scalars:
            self.wandb.log(dict(scalars), step=it)
