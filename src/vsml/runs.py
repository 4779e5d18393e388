"""Safe run folders: exclusive locks, output folders that never mix, graceful stops.

    with RunLock(out, "meta-train").acquire(log=print):      # a second writer fails at once
        ...
    out = prepare_output(args.out, default="runs/evaluate", owned=EVAL_FILES, overwrite=args.overwrite)
    with GracefulStop(log) as stop:                           # SIGINT / SIGTERM set stop.signal
        for it in ...:
            ...
            if stop.signal: raise StopRequested(stop.signal, it + 1, checkpoint)

**Locks.** A run folder that a command writes into (meta-training, cloning) holds ``.vsml.lock``.
The writer takes an exclusive ``flock`` on it (released by the kernel when the process ends,
``kill -9`` included; on NFS the lock is held on the file server, so it also excludes writers on
other hosts) and writes its host, PID, start time and command into it. A second writer fails at
once with :class:`RunLockError` naming that holder. A lock file that still names a process that
no longer holds the lock (it was killed) is taken over with a message. Where the file system
offers no ``flock``, the record alone decides: a holder on this host that is no longer alive is
taken over, one on another host is refused (remove the file by hand once that run is gone). The
file is emptied, never deleted, when the writer ends (deleting a lock file races with a waiter).

**Output folders.** :func:`prepare_output` checks that a folder can be written before any compute
and refuses a non-empty one unless ``overwrite`` (which removes only the files the command owns);
without an explicit folder a fresh numbered sibling of the default is used instead.

**Graceful stop.** :class:`GracefulStop` turns the first SIGINT or SIGTERM into a flag the loop
polls after each step (it then checkpoints and raises :class:`StopRequested`, exit code 130 or
143); the handlers are reset at once, so a second signal ends the process immediately.
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

from vsml.errors import VSMLError

LOCK_NAME = ".vsml.lock"


class RunLockError(VSMLError, RuntimeError):
    """The run folder is being written by another process."""


class OutputError(VSMLError, RuntimeError):
    """An output folder cannot be written, or holds an earlier run's files."""


# --------------------------------------------------------------------------------------------
# Writability


def check_writable(folder: str | os.PathLike, what: str = "output folder") -> Path:
    """Create ``folder`` (and parents) and write + remove a probe file in it; :class:`OutputError`
    naming the folder and the reason when that fails."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".vsml-probe-{os.getpid()}-{threading.get_ident()}"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"x")
            os.fsync(fd)
        finally:
            os.close(fd)
            probe.unlink(missing_ok=True)
    except OSError as e:
        raise OutputError(
            f"cannot write to {what} {folder}: {e.strerror or e}; choose another folder (nothing was computed)"
        ) from None
    return folder


def visible_entries(folder: Path) -> list[str]:
    """Names in ``folder`` that are not hidden (``.``-prefixed)."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def prepare_output(
    out: str | os.PathLike | None,
    *,
    default: str | os.PathLike,
    owned: Iterable[str],
    overwrite: bool = False,
    option: str = "-o",
    log: Callable[[str], None] | None = None,
) -> Path:
    """The folder a command writes its report files into, checked before any compute.

    ``out``: the folder the user named (``None``: use ``default``). A non-empty named folder is
    refused (:class:`OutputError`) unless ``overwrite``, which removes the files in ``owned`` (the
    names this command writes) and keeps everything else. When ``out`` is ``None`` and ``default``
    is not empty, a fresh sibling ``<default>-2``, ``-3``, ... is used (and logged).
    """
    owned = tuple(owned)
    if out is None:
        folder = Path(default)
        n = 1
        while visible_entries(folder) and not overwrite:
            n += 1
            folder = Path(f"{default}-{n}")
        if n > 1 and log is not None:
            log(
                f"note: {default} holds an earlier run; writing to {folder} "
                f"(pass {option} DIR to choose the folder, --overwrite to replace a run)"
            )
    else:
        folder = Path(out)
    check_writable(folder)
    present = visible_entries(folder)
    if present and not overwrite:
        ours = [n for n in present if n in owned]
        raise OutputError(
            f"output folder {folder} is not empty ({', '.join(present[:6])}{', ...' if len(present) > 6 else ''}); "
            + ("it holds an earlier run's results. " if ours else "")
            + f"Choose an empty folder with {option}, or pass --overwrite to replace this command's files "
            f"({', '.join(owned)}) and keep the rest (nothing was computed)"
        )
    if overwrite:
        for name in owned:
            try:
                (folder / name).unlink()
            except FileNotFoundError:
                pass
            except OSError as e:
                raise OutputError(f"--overwrite: cannot remove {folder / name}: {e.strerror or e}") from None
    return folder


def check_output_file(
    path: str | os.PathLike | None, *, overwrite: bool = False, option: str = "--json"
) -> Path | None:
    """An explicit output file: its folder must be writable; an existing file is refused unless ``overwrite``."""
    if path is None:
        return None
    path = Path(path)
    check_writable(path.parent if str(path.parent) else Path("."), f"folder of {option}")
    if path.exists() and not overwrite:
        raise OutputError(
            f"{option} {path} already exists; choose another path or pass --overwrite (nothing was computed)"
        )
    return path


# --------------------------------------------------------------------------------------------
# Run folder locks


def _proc_start(pid: int) -> str | None:
    """Start time of ``pid`` in clock ticks since boot (Linux ``/proc``), to tell a reused PID apart."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    current = _proc_start(pid)
    return start is None or current is None or current == start


def describe_holder(info: dict) -> str:
    when = info.get("started")
    return f"host {info.get('host', '?')}, PID {info.get('pid', '?')}, started {when or '?'}" + (
        f", command: {info['command']}" if info.get("command") else ""
    )


class RunLock:
    """Exclusive lock of a run folder (see module docstring). ``acquire`` returns ``self``;
    use it as a context manager or call :meth:`release`."""

    def __init__(self, folder: str | os.PathLike, command: str = ""):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.command = command
        self._fd: int | None = None

    def _read(self, fd: int | None = None) -> dict:
        try:
            if fd is not None:
                os.lseek(fd, 0, os.SEEK_SET)
                raw = b""
                while chunk := os.read(fd, 65536):
                    raw += chunk
            else:
                raw = self.path.read_bytes()
            info = json.loads(raw.decode() or "{}")
        except (OSError, ValueError, UnicodeDecodeError):
            return {}
        return info if isinstance(info, dict) else {}

    def _refuse(self, info: dict):
        raise RunLockError(
            f"{self.folder} is in use by another vsml run ({describe_holder(info)}). Two writers would mix their "
            "checkpoints and logs: wait for it to finish, stop it, or choose another output folder. "
            f"If that process is gone for good (e.g. its node died), delete {self.path}."
        )

    def acquire(self, log: Callable[[str], None] | None = None, wait: float = 0.0) -> "RunLock":
        """Take the lock (waiting up to ``wait`` seconds for a live holder); :class:`RunLockError`
        naming the holder when another live process has it, :class:`OutputError` when the folder
        cannot be written."""
        import fcntl

        check_writable(self.folder)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            raise OutputError(f"cannot create the lock file {self.path}: {e.strerror or e}") from None
        deadline = time.monotonic() + max(0.0, wait)
        flock = True
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.5)
                    continue
                info = self._read(fd)
                os.close(fd)
                self._refuse(info)
            except OSError as e:
                if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    os.close(fd)
                    raise OutputError(f"cannot lock {self.path}: {e.strerror or e}") from None
                flock = False  # a file system without flock: the record decides
                break
        previous = self._read(fd)
        if previous.get("pid") is not None:
            same_host = previous.get("host") == socket.gethostname()
            if not flock and (not same_host or _alive(int(previous["pid"]), previous.get("proc_start"))):
                os.close(fd)
                self._refuse(previous)
            if log is not None:
                log(
                    f"note: taking over the lock of {self.folder} left by a process that is gone "
                    f"({describe_holder(previous)})"
                )
        info = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "proc_start": _proc_start(os.getpid()),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "command": self.command,
        }
        try:
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, (json.dumps(info) + "\n").encode())
            os.fsync(fd)
        except OSError as e:
            os.close(fd)
            raise OutputError(f"cannot write the lock file {self.path}: {e.strerror or e}") from None
        self._fd = fd
        return self

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Empty the lock file and release the lock (idempotent)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        os.close(fd)  # closing the last descriptor releases the flock

    def __enter__(self) -> "RunLock":
        if self._fd is None:
            self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def remove_stale_temps(*folders: str | os.PathLike) -> list[Path]:
    """Remove the temp files of atomic writes (``.<name>.*.tmp``) that a killed writer left in
    ``folders``; call it only while holding the folders' lock."""
    removed = []
    for folder in folders:
        for p in Path(folder).glob(".*.tmp"):
            try:
                p.unlink()
                removed.append(p)
            except OSError:
                pass
    return removed


# --------------------------------------------------------------------------------------------
# Graceful stop


SIGNAL_NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


class StopRequested(VSMLError):
    """A run stopped on SIGINT / SIGTERM after writing a checkpoint (exit code 128 + signal).
    ``resume``: the command that continues it (named in the message)."""

    label = ""  # a stop, not an error: "<prog>: <what> stopped by SIGTERM after iteration ..."

    def __init__(
        self, signum: int, iteration: int, checkpoint: Path | None, what: str = "run", resume: str | None = None
    ):
        self.signum, self.iteration, self.checkpoint = int(signum), int(iteration), checkpoint
        name = SIGNAL_NAMES.get(self.signum, f"signal {self.signum}")
        where = f"; checkpoint {checkpoint}" if checkpoint is not None else ""
        then = f"; continue with: {resume}" if resume else ""
        super().__init__(f"{what} stopped by {name} after iteration {iteration}{where}{then}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class GracefulStop:
    """Within the ``with`` block the first SIGINT/SIGTERM sets :attr:`signal` (and is logged); the
    handlers are then reset to the system default, so a second signal ends the process at once.
    Outside the main thread it does nothing (signals are only delivered there)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, log: Callable[[str], None] | None = None, what: str = "the run"):
        self.log, self.what = log, what
        self.signal: int | None = None
        self._old: dict = {}

    def _handle(self, signum, frame) -> None:
        for s in self.SIGNALS:
            signal.signal(s, signal.SIG_DFL)
        if self.signal is None:
            self.signal = signum
            if self.log is not None:
                self.log(
                    f"{SIGNAL_NAMES.get(signum, signum)} received: {self.what} stops after the current step and "
                    "writes a checkpoint (a second signal stops at once)"
                )

    def __enter__(self) -> "GracefulStop":
        if threading.current_thread() is threading.main_thread():
            self._old = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, old in self._old.items():
            signal.signal(s, old if old is not None else signal.SIG_DFL)
        self._old = {}


_code_version: str | None = None


def code_version() -> str:
    """A digest of this vsml installation's Python sources (two processes with different code
    would compute different things under the same version number)."""
    global _code_version
    if _code_version is None:
        import hashlib

        root = Path(__file__).resolve().parent
        h = hashlib.sha256()
        for path in sorted(root.rglob("*.py")):
            h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
        _code_version = h.hexdigest()[:16]
    return _code_version


def command_line(prog: str, args: Iterable[str]) -> str:
    """``prog`` followed by ``args``, shell-quoted."""
    return " ".join([prog, *(shlex.quote(str(a)) for a in args)])
