"""Your own data, by path: ``.npz`` archives, ``.csv`` tables and folders of class sub-folders of images.

Wherever a dataset name is accepted (``registry.load``, ``DatasetSpec(name=...)``, ``vsml evaluate -d``),
a string that is **not a registered name or alias** is a path when it contains ``/`` (or the OS path
separator), starts with ``~``, or contains a ``.`` (registered names never do). Relative paths are
relative to the current directory. Options follow a ``?``: ``table.csv?label=species``,
``photos/?size=64x64``.

- ``file.npz``: arrays ``images`` (``[N, H, W]``, ``[N, H, W, C]`` or ``[N, F]`` features) and
  ``labels`` (``[N]``), or per-split pairs ``<split>_images`` / ``<split>_labels`` (e.g.
  ``train_images``, ``test_labels``), whose prefixes are the split names.
- ``folder/``: ``folder/<class>/<image>`` (PNG, JPEG, BMP, GIF), or ``folder/<split>/<class>/<image>``
  when every sub-folder is one of :data:`SPLIT_FOLDERS`. Class names sorted -> labels 0..K-1 (the
  union of all splits' class folders). All images must have one size (``?size=HxW`` resizes on
  load, bilinear); grayscale images load as ``[H, W, 1]``, any colour image makes all ``[H, W, 3]``.
- ``table.csv``: numeric feature columns and one label column: ``?label=NAME`` (or a column
  index), else the column named ``label`` (any case), else the last one. The first row is a header
  when it has a non-numeric field above a numeric one (or none numeric). Features load as ``[N, F]``
  float32. Labels that are all non-negative integers are used as they are; otherwise (any
  non-numeric label) the sorted distinct strings are the classes 0..K-1.

Labels are integers ``>= 0`` (or class names); ``num_classes`` is the largest label + 1 over all
splits. A file without split structure offers ``train`` and ``test``, a fixed stratified 80/20
partition (seed :data:`SPLIT_SEED`: per class, ``round(0.2 * n)`` random examples go to ``test``),
and ``all`` (every example).

Each read also fingerprints the content (sha256 of the file; for a folder, of the sorted list of
``relative path + sha256`` of the images used), which ``registry.load`` checks against the one
recorded at the first read (:func:`vsml.data.integrity.check_fingerprint`).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import io
import os
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np

from vsml.data.integrity import DataError, file_stamp, hash_file

SPLIT_SEED = 0
TEST_FRACTION = 0.2
SPLIT_FOLDERS = ("train", "test", "val", "valid", "validation")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
KINDS = {".npz": "npz", ".csv": "csv"}
OPTIONS = {"npz": (), "csv": ("label",), "folder": ("size",)}

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-/]*$")  # registered names: never a '.', '~' or '?'


def is_path(name: str) -> bool:
    """Whether ``name`` (not a registered name) denotes a file or folder of your own."""
    return "/" in name or os.sep in name or name.startswith("~") or "." in name


def valid_name(name: str) -> bool:
    """Whether ``name`` may be registered (letters, digits, ``_``, ``-``, ``/``; no ``.``)."""
    return isinstance(name, str) and bool(_NAME_RE.match(name)) and not name.endswith("/")


# --- validation shared with registered readers -----------------------------------------------


def as_images(raw, what: str) -> np.ndarray:
    """Check and convert loaded examples: ``[N, H, W]`` -> ``[N, H, W, 1]``; ``[N, H, W, C]`` and
    ``[N, F]`` as they are. ``uint8`` stays; integers in 0..255 -> ``uint8``; other numbers -> ``float32``
    (must be finite)."""
    x = np.asarray(raw)
    if x.ndim not in (2, 3, 4):
        raise DataError(f"{what}: images must be [N, H, W], [N, H, W, C] or [N, F] features, got shape {list(x.shape)}")
    if len(x) == 0:
        raise DataError(f"{what}: holds no examples")
    if x.ndim == 3:
        x = x[..., None]
    if min(x.shape[1:]) < 1:
        raise DataError(f"{what}: examples have an empty shape {list(x.shape[1:])}")
    if x.dtype == np.uint8:
        return x
    if x.dtype.kind == "b":
        return x.astype(np.float32)
    if x.dtype.kind in "iu":
        lo, hi = int(x.min()), int(x.max())
        return x.astype(np.uint8) if 0 <= lo and hi <= 255 else x.astype(np.float32)
    if x.dtype.kind != "f":
        raise DataError(f"{what}: images/features must be numbers, got dtype {x.dtype}")
    x = x.astype(np.float32, copy=False)
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    if bad.any():
        raise DataError(
            f"{what}: {int(bad.sum())} example(s) hold NaN or infinite values (the first is example "
            f"{int(np.argmax(bad))}); fill in or drop them"
        )
    return x


def as_labels(raw, what: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Labels -> (int64 ``[N]`` >= 0, class names). Strings are classes in sorted order; numbers must be
    non-negative integers (integral floats accepted)."""
    y = np.asarray(raw)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(
            f"{what}: labels must be [N] class indices, got shape {list(y.shape)} (one-hot labels: store their argmax)"
        )
    if y.dtype.kind in "US":
        names, index = np.unique(y.astype(str), return_inverse=True)
        return index.astype(np.int64), tuple(str(n) for n in names)
    if y.dtype.kind == "b":
        return y.astype(np.int64), ()
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y) | (y != np.round(y))
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"{what}: labels must be integers, but label {i} is {y[i].item()!r}")
    elif y.dtype.kind not in "iu":
        raise DataError(f"{what}: labels must be integers or class names, got dtype {y.dtype}")
    if y.size and y.min() < 0:
        i = int(np.argmin(y))
        raise DataError(
            f"{what}: labels must be >= 0 (class indices 0..K-1 or class names), but label {i} is {y[i].item()}"
        )
    return y.astype(np.int64), ()


def check_classes(labels: np.ndarray, what: str) -> None:
    present = np.unique(labels)
    if len(present) < 2:
        only = f" (label {present[0]})" if len(present) else ""
        raise DataError(f"{what}: holds a single class{only}; classification needs at least 2")


# --- parsed files ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class UserData:
    """A parsed file or folder: examples of each stored split, or of ``all`` plus the 80/20 partition."""

    path: Path
    kind: str  # "npz" | "csv" | "folder"
    stored: dict[str, tuple[np.ndarray, np.ndarray]]  # read-only arrays per stored split
    num_classes: int
    class_names: tuple[str, ...]
    fingerprint: str  # sha256 hex of the content
    partition: dict[str, np.ndarray] | None  # "train"/"test" indices into stored["all"]; None: explicit splits

    @property
    def split_names(self) -> tuple[str, ...]:
        return ("train", "test", "all") if self.partition is not None else tuple(self.stored)

    @property
    def example_shape(self) -> tuple[int, ...]:
        return tuple(next(iter(self.stored.values()))[0].shape[1:])

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if self.partition is not None and name in self.partition:
            images, labels = self.stored["all"]
            idx = self.partition[name]
            return images[idx], labels[idx]
        return self.stored[name]


def parse_name(name: str) -> tuple[str, dict[str, str]]:
    """``"x.csv?label=y"`` -> ``("x.csv", {"label": "y"})``."""
    if "?" not in name:
        return name, {}
    path, query = name.rsplit("?", 1)
    options = {}
    for part in filter(None, query.split("&")):
        key, eq, value = part.partition("=")
        if not eq or not key or not value:
            raise DataError(f"{name}: bad option '{part}': write PATH?key=value, e.g. table.csv?label=species")
        options[key.strip()] = value.strip()
    return path, options


def _kind(path: Path, shown: str) -> str:
    if path.is_dir():
        return "folder"
    if not path.exists():
        raise DataError(
            f"{shown}: no such file or directory (relative paths start from the current directory, {Path.cwd()})"
        )
    kind = KINDS.get(path.suffix.lower())
    if kind is None:
        hint = (
            " (a single .npy array: save images and labels together with np.savez(path, images=..., labels=...))"
            if path.suffix.lower() == ".npy"
            else ""
        )
        raise DataError(
            f"{shown}: unknown data file type '{path.suffix}'{hint}; vsml reads .npz archives, .csv tables "
            "and folders of class sub-folders of images (see docs/data.md, 'Your own data')"
        )
    return kind


def _stamps(path: Path, kind: str) -> tuple:
    """Size, mtime, inode and ctime of the file (folder: of every file below it): a change invalidates the
    parse cache (also one written in place with the mtime set back)."""
    try:
        if kind != "folder":
            st = path.stat()
            return (file_stamp(st),)
        out = []
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames.sort()
            for f in sorted(filenames):
                st = os.stat(os.path.join(dirpath, f))
                out.append((os.path.join(dirpath, f), *file_stamp(st)))
        return tuple(out)
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None


def read(name: str) -> UserData:
    """Parse the file or folder ``name`` (a path, optionally with ``?options``); cached per process
    until the file (or any file below the folder) changes."""
    shown, options = parse_name(name)
    path = Path(shown).expanduser()
    kind = _kind(path, shown)
    unknown = sorted(set(options) - set(OPTIONS[kind]))
    if unknown:
        allowed = ", ".join(OPTIONS[kind]) or "none"
        raise DataError(f"{name}: unknown option(s) {', '.join(unknown)} for a {kind} (options: {allowed})")
    return _parse(str(path.resolve()), shown, kind, tuple(sorted(options.items())), _stamps(path, kind))


@functools.lru_cache(maxsize=4)
def _parse(path: str, shown: str, kind: str, options: tuple, stamps: tuple) -> UserData:
    reader = {"npz": _read_npz, "csv": _read_csv, "folder": _read_folder}[kind]
    try:
        raw, digest, class_names = reader(Path(path), shown, **dict(options))
    except OSError as e:
        raise DataError(f"{shown}: cannot read {e.filename or ''} ({e.strerror or e})") from None
    # labels of all splits together, so string labels and class counts agree across splits
    names = list(raw)
    images = {s: as_images(raw[s][0], f"{shown} ({s})" if s != "all" else shown) for s in names}
    for s in names:
        n = np.shape(raw[s][1])[0] if np.ndim(raw[s][1]) else 0
        if n != len(images[s]):
            where = f" ({s}_images / {s}_labels)" if s != "all" else ""
            raise DataError(f"{shown}{where}: {len(images[s])} examples but {n} labels")
    if not class_names:
        labels, class_names = as_labels(np.concatenate([np.asarray(raw[s][1]) for s in names]), shown)
    else:
        labels = np.concatenate([np.asarray(raw[s][1], np.int64) for s in names])
    check_classes(labels, shown)
    shapes = {s: images[s].shape[1:] for s in names}
    if len(set(shapes.values())) > 1:
        raise DataError(
            f"{shown}: splits hold examples of different shapes: "
            + ", ".join(f"{s} {list(v)}" for s, v in shapes.items())
        )
    if len({images[s].dtype for s in names}) > 1:
        images = {s: images[s].astype(np.float32) for s in names}
    stored, offset = {}, 0
    for s in names:
        y = labels[offset : offset + len(images[s])].astype(np.int32)
        offset += len(images[s])
        images[s].setflags(write=False)
        y.setflags(write=False)
        stored[s] = (images[s], y)
    num_classes = len(class_names) if class_names else int(labels.max()) + 1
    partition = _partition(stored["all"][1]) if names == ["all"] else None
    return UserData(Path(path), kind, stored, num_classes, tuple(class_names), digest, partition)


def _partition(labels: np.ndarray) -> dict[str, np.ndarray]:
    """Stratified fixed 80/20: per class (ascending), ``round(0.2 * n)`` random examples to ``test``."""
    rng = np.random.default_rng(SPLIT_SEED)
    test = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        test.append(rng.permutation(idx)[: int(round(TEST_FRACTION * len(idx)))])
    test = np.sort(np.concatenate(test)) if test else np.zeros(0, np.int64)
    train = np.setdiff1d(np.arange(len(labels)), test)
    return {"train": train, "test": test}


# --- .npz ------------------------------------------------------------------------------------

_SPLIT_KEY = re.compile(r"^([A-Za-z0-9_]+?)_(images|labels)$")


def _read_npz(path: Path, shown: str):
    digest = hash_file(path)[0]
    try:
        z = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{shown}: not a readable .npz archive ({e})") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise DataError(
            f"{shown}: holds a single array, not an .npz archive; save with np.savez(path, images=..., labels=...)"
        )
    with z:
        keys = list(z.files)
        pairs: dict[str, dict[str, str]] = {}
        for k in keys:
            m = _SPLIT_KEY.match(k)
            if m:
                pairs.setdefault(m.group(1), {})[m.group(2)] = k
        found = f"(arrays found: {', '.join(keys) or 'none'})"
        if "images" in keys or "labels" in keys:
            if pairs:
                raise DataError(
                    f"{shown}: holds both 'images'/'labels' and per-split arrays ({', '.join(sorted(pairs))}); "
                    f"use one convention {found}"
                )
            missing = "labels" if "images" in keys else "images"
            if missing not in keys:
                raise DataError(f"{shown}: has no '{missing}' array {found}")
            wanted = {"all": ("images", "labels")}
        else:
            if not pairs:
                raise DataError(
                    f"{shown}: has no 'images' and 'labels' arrays (nor per-split 'train_images', "
                    f"'train_labels', ...) {found}"
                )
            for s, p in sorted(pairs.items()):
                if len(p) != 2:
                    have = next(iter(p.values()))
                    need = f"{s}_labels" if "images" in p else f"{s}_images"
                    raise DataError(f"{shown}: has '{have}' but no '{need}' {found}")
            wanted = {s: (p["images"], p["labels"]) for s, p in pairs.items()}
        raw = {}
        for split, (ki, kl) in wanted.items():
            try:
                raw[split] = (z[ki], z[kl])
            except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
                raise DataError(
                    f"{shown}: cannot read arrays '{ki}' / '{kl}' ({e}); the archive may be corrupt, "
                    "or hold Python objects (save plain numeric or string arrays)"
                ) from None
    return raw, digest, ()


# --- .csv ------------------------------------------------------------------------------------


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _read_csv(path: Path, shown: str, label: str | None = None):
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{shown}: not a UTF-8 text table ({e})") from None
    first = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first.count)
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    rows, lines = [], []
    try:
        for row in reader:
            if any(field.strip() for field in row):
                rows.append([field.strip() for field in row])
                lines.append(reader.line_num)
    except csv.Error as e:
        raise DataError(f"{shown}, line {reader.line_num}: {e}") from None
    if not rows:
        raise DataError(f"{shown}: empty table")
    width = len(rows[0])
    if width < 2:
        raise DataError(
            f"{shown}: needs at least 2 columns (features and a label), found {width} "
            "(separate fields with ',', ';' or tabs)"
        )
    for row, line in zip(rows, lines):
        if len(row) != width:
            raise DataError(f"{shown}, line {line}: {len(row)} fields, but the first row has {width}")
    numeric0 = [_is_number(f) for f in rows[0]]
    header = not any(numeric0) or (len(rows) > 1 and any(not n and _is_number(f) for n, f in zip(numeric0, rows[1])))
    columns = rows[0] if header else [str(i) for i in range(width)]
    if header:
        rows, lines = rows[1:], lines[1:]
    if not rows:
        raise DataError(f"{shown}: has a header but no data rows")
    if label is not None:
        if label in columns:
            j = columns.index(label)
        elif re.fullmatch(r"-?\d+", label) and -width <= int(label) < width:
            j = int(label) % width
        else:
            raise DataError(f"{shown}: no label column '{label}'; columns: {', '.join(columns)}")
    else:
        lowered = [c.lower() for c in columns] if header else []
        j = lowered.index("label") if "label" in lowered else width - 1
    table = np.asarray(rows, dtype=str)
    label_text = table[:, j]
    cells = np.delete(table, j, axis=1)
    names = [c for i, c in enumerate(columns) if i != j]
    try:
        features = cells.astype(np.float64)
    except ValueError:
        for r in range(len(cells)):
            for c in range(cells.shape[1]):
                if not _is_number(cells[r, c]):
                    value = cells[r, c]
                    what = "a missing value" if value == "" else f"'{value}', not a number"
                    raise DataError(
                        f"{shown}, line {lines[r]}, column '{names[c]}': {what}; feature columns must be "
                        "numeric (one-hot encode categories, fill in or drop missing values)"
                    ) from None
        raise  # pragma: no cover - astype failed on a value float() accepts
    bad = ~np.isfinite(features)
    if bad.any():
        r, c = map(int, np.argwhere(bad)[0])
        raise DataError(
            f"{shown}, line {lines[r]}, column '{names[c]}': NaN or infinite value; fill in or drop such rows"
        )
    if all(re.fullmatch(r"[+-]?\d+", t) for t in label_text):
        values = label_text.astype(np.int64)
        if values.min() < 0:
            r = int(np.argmin(values))
            raise DataError(
                f"{shown}, line {lines[r]}, column '{columns[j]}': label {values[r]} is negative; labels must be "
                "class indices 0..K-1 or class names"
            )
        labels = values
    elif all(_is_number(t) for t in label_text):
        labels = label_text.astype(np.float64)  # integral floats accepted; as_labels reports the others
    else:
        labels = label_text
    return {"all": (features.astype(np.float32), labels)}, digest, ()


# --- folders of images -----------------------------------------------------------------------


def _visible_dirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_below(path: Path) -> list[Path]:
    return sorted(
        p
        for p in path.rglob("*")
        if p.suffix.lower() in IMAGE_EXTENSIONS
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(path).parts)
    )


def _parse_size(text: str, shown: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)(?:[xX](\d+))?", text)
    if not m or int(m.group(1)) < 1 or (m.group(2) and int(m.group(2)) < 1):
        raise DataError(f"{shown}: bad size '{text}': write ?size=HxW (e.g. 64x64) or ?size=N")
    h = int(m.group(1))
    return h, int(m.group(2) or h)


def _read_folder(path: Path, shown: str, size: str | None = None):
    from PIL import Image, UnidentifiedImageError

    target = _parse_size(size, shown) if size is not None else None
    subdirs = _visible_dirs(path)
    if not subdirs:
        loose = [p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS]
        if loose:
            raise DataError(
                f"{shown}: images must be in one sub-folder per class ({shown}/<class>/<image>), "
                f"found {len(loose)} directly in the folder"
            )
        raise DataError(
            f"{shown}: empty folder: expected one sub-folder of images per class ({shown}/<class>/<image>.png)"
        )
    if all(d.name.lower() in SPLIT_FOLDERS for d in subdirs):
        roots = {d.name.lower(): d for d in subdirs}
    else:
        roots = {"all": path}
    classes = sorted({c.name for r in roots.values() for c in _visible_dirs(r)})
    if not classes:
        raise DataError(f"{shown}: no class sub-folders in {', '.join(str(r) for r in roots.values())}")
    index = {c: i for i, c in enumerate(classes)}
    digest = hashlib.sha256()
    raw, sizes, colour = {}, {}, False
    for split, root in roots.items():
        arrays, labels = [], []
        for cdir in _visible_dirs(root):
            for f in _images_below(cdir):
                data = f.read_bytes()
                digest.update(f"{f.relative_to(path).as_posix()}\0{hashlib.sha256(data).hexdigest()}\n".encode())
                try:
                    with Image.open(io.BytesIO(data)) as im:
                        im.load()
                        grey = im.mode in ("1", "L", "LA", "I", "I;16", "F")
                        im = im.convert("L" if grey else "RGB")
                        if target is not None:
                            im = im.resize((target[1], target[0]), Image.BILINEAR)
                        a = np.asarray(im, np.uint8)
                except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
                    raise DataError(f"{f}: not a readable image ({e})") from None
                colour |= not grey
                sizes.setdefault(a.shape[:2], f)
                arrays.append(a)
                labels.append(index[cdir.name])
        if arrays:
            raw[split] = (arrays, np.asarray(labels, np.int64))
    if not raw:
        raise DataError(f"{shown}: no images ({', '.join(IMAGE_EXTENSIONS)}) in its class sub-folders")
    if len(sizes) > 1:
        listed = "; ".join(f"{h}x{w} ({f})" for (h, w), f in list(sizes.items())[:3])
        (h, w) = next(iter(sizes))
        raise DataError(
            f"{shown}: images have {len(sizes)} different sizes, e.g. {listed}. Resize them to one size, "
            f"or load with '{shown}?size={h}x{w}' (bilinear resize on load)"
        )
    out = {}
    for split, (arrays, labels) in raw.items():
        x = np.stack([np.repeat(a[..., None], 3, -1) if colour and a.ndim == 2 else a for a in arrays])
        out[split] = (x if x.ndim == 4 else x[..., None], labels)
    return out, digest.hexdigest(), tuple(classes)
