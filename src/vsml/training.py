"""The one loop of long training runs (meta-training :mod:`vsml.meta.trainer`, cloning
:mod:`vsml.cloning.clone`): run folder, lock, output preflight, graceful stop, logging, atomic
checkpoints, resume. What a run computes per iteration and what its checkpoints hold is the
caller's; everything around that is here, so both commands refuse, stop and resume alike::

    loop = TrainingLoop(out, "cloning", command="vsml clone ...", log=print)
    with contextlib.ExitStack() as stack:
        loop.lock(stack, ckpt_dir)                             # exclusive; stale temp files removed
        loop.preflight(resume=resume, overwrite=overwrite, newest=ckpt if ckpt.exists() else None,
                       checkpoints=str(ckpt), foreign=[...], owned=[...])
        state = restore(ckpt) if resume else init()
        logger = RunLogger(...)
        stopped = loop.run(logger, start, total, resumed=resume, step=step, due=due, checkpoint=save)

**Preflight** (before any compute): ``--resume`` needs a checkpoint; a fresh run refuses a folder
that holds checkpoints or another run's files (``foreign``) unless ``overwrite``, which removes
the files the command owns (``owned``) and keeps everything else; ``--resume`` with
``--overwrite`` is refused. **The loop** calls ``step(i)`` for iteration ``i`` (0-based), then,
when a checkpoint is due (``due(i + 1)``, the last iteration, a stop signal or ``stop_after``),
``checkpoint(i + 1) -> path``, then ``after(i + 1, saved)``; the first SIGINT / SIGTERM ends the
run after that with :class:`~vsml.runs.StopRequested` naming the checkpoint and the command that
resumes it (exit code 130 / 143). **Writes** go through :meth:`TrainingLoop.write`, which turns an
``OSError`` (disk full, read-only) into an :class:`~vsml.runs.OutputError` saying that nothing
earlier is lost and how to continue.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Callable, ContextManager, Iterable, Sequence

from vsml import runs
from vsml.artifacts import ArtifactError
from vsml.config import ConfigError


class TrainingLoop:
    """See the module docstring. ``what``: the run's name in messages ("meta-training", "cloning");
    ``command``: the command line that started it (lock record, resume hints); ``main``: this
    process writes (only the main process of a multi-process run locks, removes and writes);
    ``lock_wait``: seconds to wait for another run holding the folder."""

    def __init__(
        self,
        folder: str | Path,
        what: str,
        *,
        command: str,
        log: Callable[[str], None],
        main: bool = True,
        lock_wait: float = 0.0,
    ):
        self.folder, self.what, self.command = Path(folder), what, command
        self.log, self.main, self.lock_wait = log, main, lock_wait

    @property
    def resume_command(self) -> str:
        """The command that continues this run."""
        return self.command if "--resume" in self.command.split() else f"{self.command} --resume"

    # ---- before the run ----------------------------------------------------------------------

    def lock(self, stack: contextlib.ExitStack, *folders: str | Path, temps: Iterable[str | Path] = ()) -> None:
        """Lock ``folder`` and ``folders`` for the run (:class:`vsml.runs.RunLock`, released when
        ``stack`` closes) and remove the temp files a writer killed mid-write left in them and in
        ``temps`` (folders written under the lock of another)."""
        if not self.main:
            return
        locked = list(dict.fromkeys(Path(f) for f in (self.folder, *folders)))
        for f in locked:
            stack.enter_context(runs.RunLock(f, self.command).acquire(log=self.log, wait=self.lock_wait))
        runs.remove_stale_temps(*locked, *temps)

    def preflight(
        self,
        *,
        resume: bool,
        overwrite: bool,
        newest: Path | None,
        checkpoints: str,
        foreign: Sequence[str] = (),
        owned: Iterable[Path] = (),
    ) -> None:
        """Refuse what would lose or mix results (see the module docstring). ``newest``: the newest
        checkpoint present (or ``None``); ``checkpoints``: where they are looked for (for messages);
        ``foreign``: files that a fresh run must not write next to; ``owned``: the files and folders
        ``overwrite`` removes."""
        if resume and overwrite:
            raise ConfigError("--resume continues the run in the folder, --overwrite starts a new one there: pass one")
        if resume:
            if newest is None:
                raise ArtifactError(f"--resume: no checkpoint {checkpoints}")
            return
        if overwrite:
            if self.main:
                self.remove(owned)
            return
        if newest is not None:
            raise ArtifactError(
                f"{self.folder} already holds checkpoints (newest {newest.name}); pass --resume "
                "to continue, --overwrite to start again, or choose another out folder (nothing was "
                "overwritten)"
            )
        if foreign:
            raise runs.OutputError(
                f"out folder {self.folder} holds other files ({', '.join(list(foreign)[:6])}); a new run there would "
                "mix two experiments: choose an empty folder, or pass --overwrite to replace this command's files "
                "(nothing was written)"
            )

    def remove(self, paths: Iterable[Path]) -> None:
        """Remove files and folders (``--overwrite``); an :class:`~vsml.runs.OutputError` when one cannot be."""
        for p in paths:
            try:
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                else:
                    p.unlink(missing_ok=True)
            except OSError as e:
                raise runs.OutputError(f"--overwrite: cannot remove {p}: {e.strerror or e}") from None
        self.log(f"note: --overwrite: removed the files of the earlier run in {self.folder}")

    # ---- during the run ----------------------------------------------------------------------

    def write(self, what: str, iteration: int, fn: Callable, newest: Callable[[], Path | None]):
        """Run a write; an ``OSError`` becomes an :class:`~vsml.runs.OutputError` naming the newest
        checkpoint (``newest()``) and the command that continues from it."""
        try:
            return fn()
        except OSError as e:
            ckpt = newest()
            raise runs.OutputError(
                f"cannot write {what} (iteration {iteration}): "
                f"{e.strerror or e}{f' ({e.filename})' if e.filename else ''}. "
                f"Nothing earlier is lost: the newest checkpoint is {ckpt or 'none'}. Fix the cause (free space, "
                f"permissions) and continue with: {self.resume_command}"
            ) from None

    def run(
        self,
        logger,
        start: int,
        total: int,
        *,
        resumed: bool,
        step: Callable[[int], None],
        due: Callable[[int], bool],
        checkpoint: Callable[[int], Path],
        after: Callable[[int, bool], None] | None = None,
        before: Callable[[], None] | None = None,
        agree: Callable[[int], int] | None = None,
        guard: ContextManager | None = None,
        stop_after: int | None = None,
    ) -> int | None:
        """Iterations ``start`` … ``total - 1`` (see the module docstring). ``logger``: a
        :class:`vsml.runlog.RunLogger` (started here, closed at the end); ``before()``: called once
        the logger runs; ``agree(signal) -> signal``: makes every process of a multi-process run stop
        at the same iteration; ``guard``: a context around the loop. ``stop_after=k``: stop, with a
        checkpoint, once iteration ``k`` is done and return ``k`` (time-boxed runs, tests). Returns
        ``None`` when the run is complete."""
        try:
            with runs.GracefulStop(logger.message, self.what) as stop, guard or contextlib.nullcontext():
                logger.start(start, total, resume=resumed)
                if before is not None:
                    before()
                for it in range(start, total):
                    step(it)
                    signum = stop.signal or 0
                    if agree is not None:
                        signum = agree(signum)
                    halt = stop_after is not None and it + 1 >= stop_after
                    saved = None
                    if due(it + 1) or it + 1 == total or signum or halt:
                        saved = checkpoint(it + 1)
                    if after is not None:
                        after(it + 1, saved is not None)
                    if it + 1 < total and signum:
                        raise runs.StopRequested(signum, it + 1, saved, self.what, resume=self.resume_command)
                    if it + 1 < total and halt:
                        logger.message(f"stopped after iteration {it + 1}; continue with --resume")
                        return it + 1
        finally:
            logger.close()
        return None
