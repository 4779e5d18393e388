"""File integrity: published checksums, verification and a small verification cache.

Hashing a 30 MB file costs ~0.1 s, so results are cached in ``<cache dir>/verified.json``
(``VSML_CACHE_DIR``, default ``~/.cache/vsml``), keyed by absolute path and the file's size and
mtime: a file is rehashed only when it changes. The data directory itself may be read-only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path


class DataError(ValueError):
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


def _read_cache() -> dict:
    try:
        return json.loads(_cache_file().read_text())
    except (OSError, ValueError):
        return {}


def _write_cache(entries: dict) -> None:
    path = _cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".verified.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(entries, f, indent=0, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        pass  # an unwritable cache only costs a rehash next time


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


DEFAULT_HINT = "Delete it and run `vsml data download {name}` (or copy a good file there)."


def check_file(spec: FileSpec, path: Path, *, hint: str = "", use_cache: bool = True) -> None:
    """Raise :class:`DataError` unless ``path`` matches ``spec``'s size and published hash.

    The sha256 is checked where published, else the md5. Files whose spec has no hash pass on
    size alone. Successful checks are cached by size+mtime.
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
    stamp = [st.st_size, st.st_mtime_ns]
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
