"""File integrity: published checksums, verification and a small verification cache.

Hashing a 30 MB file costs ~0.1 s, so results are cached in ``<cache dir>/verified.json``
(``VSML_CACHE_DIR``, default ``~/.cache/vsml``), keyed by absolute path and the file's size,
mtime, inode and ctime (:func:`file_stamp`): a file is rehashed when it changes, also when it is
replaced or rewritten in place with its mtime set back (which changes the ctime, which no
user-level call can set). The data directory itself may be read-only.

Files of your own (read by path, see :mod:`vsml.data.userdata`) have no published checksum: the
first time one is read its content fingerprint is recorded in ``<cache dir>/fingerprints.json``,
and a later read whose content differs fails (:func:`check_fingerprint`) until the record is
dropped with :func:`forget_fingerprint` (``vsml data forget PATH``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import threading
import time
from pathlib import Path

from vsml.errors import VSMLError


class DataError(VSMLError, ValueError):
    """A dataset is unknown, missing, corrupt, or asked for with invalid options."""


@dataclasses.dataclass(frozen=True)
class FileSpec:
    """One canonical file, by its path relative to the data directory.

    ``size`` in bytes and ``sha256``/``md5`` hex digests as published by ``source``; ``urls`` are
    the official addresses `vsml data download` tries in order.
    """

    path: str
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    urls: tuple[str, ...] = ()
    source: str = ""

    @property
    def filename(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def cache_dir() -> Path:
    """Per-user cache directory for small bookkeeping files (not the data)."""
    env = os.environ.get("VSML_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "vsml"


_lock = threading.Lock()


def _cache_file() -> Path:
    return cache_dir() / "verified.json"


def _read_json(path: Path) -> dict:
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return entries if isinstance(entries, dict) else {}


def _write_json(path: Path, entries: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(entries, f, indent=0, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        pass  # an unwritable cache only costs a rehash next time


def _read_cache() -> dict:
    return _read_json(_cache_file())


def _write_cache(entries: dict) -> None:
    _write_json(_cache_file(), entries)


def hash_file(path: Path, chunk: int = 1 << 20) -> tuple[str, str]:
    """(sha256, md5) hex digests of ``path``, in one pass."""
    sha, md5 = hashlib.sha256(), hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            sha.update(block)
            md5.update(block)
    return sha.hexdigest(), md5.hexdigest()


def _mismatch(spec: FileSpec, path: Path, what: str, expected, actual, hint: str) -> DataError:
    return DataError(
        f"{path} is corrupt or not the canonical file: {what} mismatch\n"
        f"  expected {what}: {expected}\n  actual   {what}: {actual}\n"
        f"  (published by {spec.source or 'the dataset authors'})\n  {hint}"
    )


#: How to skip verification, in every form it is offered.
SKIP_HINT = (
    "skip the check with --no-verify (vsml evaluate / introspect, vsml data list / info), data.verify=false "
    "in a meta-training config, or verify=False in Python"
)


def file_stamp(st: os.stat_result) -> tuple[int, int, int, int]:
    """What the verification cache keys a file on: size, mtime, inode, ctime (times in ns)."""
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def check_file(spec: FileSpec, path: Path, *, hint: str = "", use_cache: bool = True) -> None:
    """Raise :class:`DataError` unless ``path`` matches ``spec``'s size and published hash.

    The sha256 is checked where published, else the md5. Files whose spec has no hash pass on
    size alone. Successful checks are cached by :func:`file_stamp`.
    """
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        raise DataError(f"file {path} missing") from None
    if spec.size is not None and st.st_size != spec.size:
        raise _mismatch(spec, path, "size", f"{spec.size} bytes", f"{st.st_size} bytes", hint)
    if spec.sha256 is None and spec.md5 is None:
        return
    key = str(path.resolve())
    stamp = list(file_stamp(st))  # as stored in JSON
    expected = spec.sha256 or spec.md5
    if use_cache:
        with _lock:
            entry = _read_cache().get(key)
        if entry and entry.get("stamp") == stamp and entry.get("digest") == expected:
            return
    sha, md5 = hash_file(path)
    if spec.sha256 is not None and sha != spec.sha256:
        raise _mismatch(spec, path, "sha256", spec.sha256, sha, hint)
    if spec.sha256 is None and md5 != spec.md5:  # md5 only where no sha256 is published
        raise _mismatch(spec, path, "md5", spec.md5, md5, hint)
    if use_cache:
        with _lock:
            entries = _read_cache()
            entries[key] = {"stamp": stamp, "digest": expected}
            _write_cache(entries)


# --- fingerprints of user files ---------------------------------------------------------------


def _fingerprint_file() -> Path:
    return cache_dir() / "fingerprints.json"


def check_fingerprint(path: str | os.PathLike, digest: str, *, shown: str | None = None) -> None:
    """Record ``digest`` (sha256 of the content) for ``path`` on first use; raise :class:`DataError`
    when a later read of ``path`` has a different digest. ``shown``: the path as the user wrote it."""
    key = str(Path(path).expanduser().resolve())
    with _lock:
        entries = _read_json(_fingerprint_file())
        entry = entries.get(key)
        if not isinstance(entry, dict) or "sha256" not in entry:
            entries = {k: v for k, v in entries.items() if os.path.exists(k)}  # drop records of deleted files
            entries[key] = {"sha256": digest, "first_read": time.strftime("%Y-%m-%d %H:%M:%S")}
            _write_json(_fingerprint_file(), entries)
            return
    if entry["sha256"] != digest:
        shown = shown or str(path)
        raise DataError(
            f"{shown} changed since vsml first read it ({entry.get('first_read', 'earlier')}):\n"
            f"  recorded sha256: {entry['sha256']}\n  current  sha256: {digest}\n"
            f"  Episodes drawn from it now differ from those of earlier runs. If the change is intended, run "
            f"`vsml data forget {shown}` (or vsml.data.forget(path)) to accept the new content, or "
            f"{SKIP_HINT}."
        )


def forget_fingerprint(path: str | os.PathLike) -> bool:
    """Drop the recorded fingerprint of ``path`` (its next read is recorded anew). True if one was recorded."""
    key = str(Path(path).expanduser().resolve())
    with _lock:
        entries = _read_json(_fingerprint_file())
        if key not in entries:
            return False
        del entries[key]
        _write_json(_fingerprint_file(), entries)
    return True
