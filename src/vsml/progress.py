"""Progress display: rich's live bar on a terminal, periodic plain lines anywhere else.

A live bar draws nothing until the run ends when the output is not a terminal (CI logs, SLURM
output files, pipes, notebooks). There :func:`progress_bar` returns a :class:`PlainProgress`
instead, which prints one line per task at most every ``VSML_PROGRESS_EVERY`` seconds (default
30) and when the task completes, to stderr::

    episodes: 120/400 (30%), 0:01:02 elapsed, ~0:02:25 left

Both offer the part of rich's ``Progress`` API vsml uses: ``add_task``, ``update``, ``start``,
``stop``, the context manager and ``console.print``. Whether the output is a terminal is rich's
own test (``rich.console.Console().is_terminal``).
"""

from __future__ import annotations

import os
import sys
import time


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def is_terminal() -> bool:
    """Whether rich can draw a live display on stdout (rich's terminal test)."""
    from rich.console import Console

    return Console().is_terminal


class PlainProgress:
    """Periodic plain progress lines (module docstring). ``every``: seconds between lines of a task."""

    def __init__(self, every: float | None = None, file=None):
        from rich.console import Console

        if every is None:
            try:
                every = float(os.environ.get("VSML_PROGRESS_EVERY", 30))
            except ValueError:
                every = 30.0
        self.every, self.file = max(0.0, every), file
        self.console = Console(soft_wrap=True)  # messages printed "above the bar", as rich's Progress does
        self._tasks: dict[int, dict] = {}

    def add_task(self, description: str, total: float | None = None, completed: float = 0, **fields) -> int:
        now = time.monotonic()
        tid = len(self._tasks)
        self._tasks[tid] = {
            "description": description,
            "total": total,
            "completed": completed,
            "fields": fields,
            "start": now,
            "printed": now,
            "done_printed": False,
        }
        return tid

    def update(
        self,
        task_id: int,
        *,
        advance: float | None = None,
        completed: float | None = None,
        total: float | None = None,
        description: str | None = None,
        **fields,
    ) -> None:
        t = self._tasks[task_id]
        if completed is not None:
            t["completed"] = completed
        if advance is not None:
            t["completed"] += advance
        if total is not None:
            t["total"] = total
        if description is not None:
            t["description"] = description
        t["fields"].update(fields)
        now = time.monotonic()
        finished = t["total"] is not None and t["completed"] >= t["total"]
        if (finished and not t["done_printed"]) or now - t["printed"] >= self.every:
            self._line(t, now)
            t["done_printed"] = finished

    def _line(self, t: dict, now: float) -> None:
        done, total = t["completed"], t["total"]
        elapsed = now - t["start"]
        parts = [f"{t['description']}: {done:g}" + (f"/{total:g} ({100 * done / total:.0f}%)" if total else "")]
        parts.append(f"{_clock(elapsed)} elapsed")
        if total and 0 < done < total:
            parts.append(f"~{_clock(elapsed / done * (total - done))} left")
        info = " ".join(str(v) for v in t["fields"].values() if v not in ("", None))
        line = ", ".join(parts) + (f" | {info}" if info else "")
        print(line, file=self.file or sys.stderr, flush=True)
        t["printed"] = now

    def start(self) -> None:
        pass

    def stop(self) -> None:
        """Print the last state of every task that changed since its last line."""
        now = time.monotonic()
        for t in self._tasks.values():
            if not t["done_printed"] and t["printed"] < now and t["completed"]:
                self._line(t, now)
                t["done_printed"] = True

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()


def progress_bar(*columns, transient: bool = False):
    """rich's ``Progress(*columns)`` on a terminal, else a :class:`PlainProgress`."""
    if is_terminal():
        from rich.progress import Progress

        return Progress(*columns, transient=transient)
    return PlainProgress()
