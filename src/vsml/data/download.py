"""`vsml data download`: fetch canonical files into the data directory.

Each file is streamed to ``<target>.part`` next to its target, resumed with an HTTP ``Range``
request when a partial file is already there, checked against its published size and hash, and
only then renamed into place (atomic on one filesystem). A bad download never replaces a good file.

``base_url`` (or ``$VSML_DATA_BASE_URL``) replaces the official addresses with a mirror laid out
like the data directory: file ``mnist/train-images-idx3-ubyte.gz`` is fetched from
``<base_url>/mnist/train-images-idx3-ubyte.gz``.
"""

from __future__ import annotations

import http.client
import os
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from vsml.data import registry
from vsml.data.integrity import DataError, FileSpec, check_file

CHUNK = 1 << 16
TIMEOUT_S = 30.0
USER_AGENT = "vsml-data/0.1 (+https://github.com/)"


def _urls(spec: FileSpec, base_url: str | None) -> list[str]:
    if base_url:
        return [base_url.rstrip("/") + "/" + spec.path]
    return list(spec.urls)


class _Progress:
    """Thin wrapper over rich's progress bar (no-op when disabled)."""

    def __init__(self, enabled: bool):
        self.bar = None
        if enabled:
            from rich.progress import BarColumn, DownloadColumn, TextColumn, TimeRemainingColumn, TransferSpeedColumn

            from vsml.progress import progress_bar  # plain periodic lines when not on a terminal

            self.bar = progress_bar(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
            )

    def __enter__(self):
        if self.bar:
            self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        if self.bar:
            self.bar.__exit__(*exc)

    def task(self, name: str, total: int | None, done: int) -> Callable[[int], None]:
        if not self.bar:
            return lambda n: None
        tid = self.bar.add_task(name, total=total, completed=done)
        return lambda n: self.bar.update(tid, advance=n)


def _fetch(url: str, part: Path, expected_size: int | None, progress: _Progress, name: str) -> None:
    """Stream ``url`` into ``part``, resuming from its current size when the server allows it."""
    have = part.stat().st_size if part.exists() else 0
    if expected_size is not None and have > expected_size:
        part.unlink()
        have = 0
    if expected_size is not None and have == expected_size:
        return  # complete already; verification decides
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # range beyond the end: start again
            part.unlink()
            return _fetch(url, part, expected_size, progress, name)
        raise
    with response:
        if have and response.status != 206:  # server ignored the range: restart from scratch
            have = 0
        mode = "ab" if have else "wb"
        length = response.headers.get("Content-Length")
        total = expected_size or ((int(length) + have) if length else None)
        advance = progress.task(name, total, have)
        with open(part, mode) as f:
            while block := response.read(CHUNK):
                f.write(block)
                advance(len(block))


def download_file(
    spec: FileSpec,
    root: Path,
    *,
    base_url: str | None = None,
    force: bool = False,
    progress: bool = True,
    _progress: _Progress | None = None,
) -> Path:
    """Download one canonical file into ``root / spec.path`` (verified). Returns the path."""
    target = root / spec.path
    if target.exists() and not force:
        try:
            check_file(spec, target)
            return target
        except DataError:
            pass  # replace a corrupt file
    urls = _urls(spec, base_url)
    if not urls:
        raise DataError(f"no download address is known for {spec.path}; place the file there by hand")
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    bar = _progress or _Progress(progress)
    errors = []
    for url in urls:
        for attempt in range(2):  # a corrupt resumed file gets one fresh try
            resumed = part.exists() and part.stat().st_size > 0
            try:
                _fetch(url, part, spec.size, bar, spec.path)
            except urllib.error.HTTPError as e:
                errors.append(f"{url}: HTTP {e.code} {e.reason}")
                break
            except http.client.HTTPException as e:  # connection dropped mid-file: keep the part
                raise DataError(
                    f"download of {url} was interrupted ({e!r}); run the command again to "
                    f"resume from {part.stat().st_size if part.exists() else 0} bytes"
                ) from None
            except (urllib.error.URLError, socket.timeout, ConnectionError, OSError) as e:
                reason = getattr(e, "reason", e)
                errors.append(f"{url}: cannot connect ({reason})")
                break
            try:
                check_file(
                    spec,
                    part,
                    hint="The download was corrupt and has been deleted; try again or use another mirror (--base-url).",
                    use_cache=False,
                )
            except DataError as e:
                part.unlink(missing_ok=True)
                if resumed and attempt == 0:
                    continue
                raise DataError(f"download of {url} failed verification:\n{e}") from None
            os.replace(part, target)
            return target
    offline = all("cannot connect" in e for e in errors)
    hint = (
        "No address could be reached: are you offline? Copy the files into "
        f"{root / spec.path.rsplit('/', 1)[0]} by hand, set VSML_DATA_DIR to a folder that has them, "
        "or point VSML_DATA_BASE_URL / --base-url at a mirror."
        if offline
        else "Check the address, or point VSML_DATA_BASE_URL / --base-url at a mirror."
    )
    raise DataError(f"could not download {spec.path}:\n  " + "\n  ".join(errors) + f"\n{hint}")


def download(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    base_url: str | None = None,
    force: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Fetch every downloadable file of dataset ``name`` into the data directory; returns their paths.

    Built-in datasets need nothing. ``base_url`` defaults to ``$VSML_DATA_BASE_URL``.
    """
    info = registry.get_info(name)
    root = registry.data_dir(data_dir)
    base_url = base_url or os.environ.get("VSML_DATA_BASE_URL") or None
    if info.path is not None:
        raise DataError(f"{info.name} is a file or folder of your own ({info.path}): there is nothing to download")
    if info.builtin:
        return []
    with _Progress(progress) as bar:
        return [download_file(spec, root, base_url=base_url, force=force, _progress=bar) for spec in info.downloads]
