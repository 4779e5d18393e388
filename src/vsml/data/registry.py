"""Dataset registry: names -> canonical files (with published checksums) -> arrays.

    split = load("mnist", "train")          # Split(images [N, 28, 28, 1] uint8, labels [N] int32)
    split = load("emnist", "test[:80%]")    # held-out partition of a split (fixed permutation)

Files are looked up in the data directory (``VSML_DATA_DIR``, default ``~/.cache/vsml/data``),
whose layout mirrors the dataset names: ``mnist/``, ``fashion_mnist/``, ``kmnist/``, ``emnist/``,
``cifar10/``, ``svhn_cropped/``, ``omniglot/``. Each file is checked against its published size and
hash on first use (see :mod:`vsml.data.integrity`).

The registry starts with the built-in datasets (:func:`vsml.data.catalog.builtin_datasets`); yours
are added with :func:`register` (a reader per split, optional canonical files with checksums),
described and checked exactly like the built-in ones (:func:`vsml.data.info.dataset_info`).
Importing a module registers nothing by itself. A name that is not registered and looks like a path
(``data/x.npz``, ``./photos``, ``table.csv?label=species``) is read as a file or folder of your own
(see :mod:`vsml.data.userdata`).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from vsml.data import userdata
from vsml.data.catalog import builtin_datasets
from vsml.data.info import DatasetInfo, Source, Split, SplitValue, dataset_info
from vsml.data.integrity import SKIP_HINT, DataError, FileSpec, cache_dir, check_file, check_fingerprint, file_stamp
from vsml.data.splits import parse_split, partition

__all__ = [  # Source, Split and the split helpers live in info.py / splits.py; importable from here as before
    "BUILTIN_NAMES",
    "REGISTRY",
    "DatasetInfo",
    "DatasetStatus",
    "Source",
    "Split",
    "data_dir",
    "get_info",
    "load",
    "names",
    "parse_split",
    "partition",
    "register",
    "register_file",
    "status",
    "unregister",
]
from vsml.errors import did_you_mean

# --- where the data lives --------------------------------------------------------------------


def data_dir(override: str | os.PathLike | None = None) -> Path:
    """The data directory: ``override``, else ``$VSML_DATA_DIR``, else ``~/.cache/vsml/data``."""
    if override is not None:
        return Path(override).expanduser()
    env = os.environ.get("VSML_DATA_DIR")
    return Path(env).expanduser() if env else cache_dir() / "data"


_data_dir = data_dir  # for functions whose ``data_dir`` argument shadows this one


# --- the registry ----------------------------------------------------------------------------

REGISTRY: dict[str, DatasetInfo] = {info.name: info for info in builtin_datasets()}
BUILTIN_NAMES: tuple[str, ...] = tuple(REGISTRY)
_ALIASES = {
    "fashion-mnist": "fashion_mnist",
    "fashionmnist": "fashion_mnist",
    "cifar-10": "cifar10",
    "svhn": "svhn_cropped",
    "emnist/byclass": "emnist",
}


def _check_new_name(name: str, overwrite: bool) -> None:
    if not userdata.valid_name(name):
        raise DataError(
            f"cannot register dataset {name!r}: names use letters, digits, '_', '-' and '/' "
            "(no '.', so they are never mistaken for file paths)"
        )
    if name in REGISTRY and not overwrite:
        raise DataError(
            f"dataset '{name}' is already registered ({REGISTRY[name].description or 'no description'}); "
            "pass overwrite=True to replace it, or choose another name"
        )


def register(
    name: str,
    splits: Mapping[str, SplitValue],
    *,
    num_classes: int,
    image_shape: Sequence[int],
    description: str = "",
    files: Mapping[str, Sequence[FileSpec | str]] | None = None,
    mean: float | None = None,
    std: float | None = None,
    downloads: Sequence[FileSpec] | None = None,
    homepage: str = "",
    license: str = "",
    split_classes: Mapping[str, int] | None = None,
    overwrite: bool = False,
) -> DatasetInfo:
    """Add dataset ``name`` to the registry; it then works wherever a dataset name is accepted.

    ``splits`` maps split names to a reader: a function returning ``(images, labels)`` (images
    ``[N, H, W, C]``, ``[N, H, W]`` or ``[N, F]``, uint8 or float; labels ``[N]`` ints in
    ``[0, num_classes)``), called with no arguments, or with the list of paths of ``files[split]``
    when that is given; an ``(images, labels)`` pair; or :class:`Source` objects (alternatives, the
    first whose files are all present wins). ``files[split]``: :class:`FileSpec` s (paths relative
    to the data directory, or absolute) checked against their size and sha256/md5 on load, exactly
    like the built-in datasets' files (a plain string: presence only). ``image_shape``: ``(H, W, C)``,
    ``(H, W)`` (= ``(H, W, 1)``) or ``(F,)``. ``mean``/``std``: normalisation statistics of pixels in
    [0, 1] (``None``: computed from each split). ``downloads``: files `vsml data download NAME`
    fetches (default: the given files that have ``urls``). A clash with a registered name raises
    :class:`DataError` unless ``overwrite=True``. Returns the :class:`DatasetInfo`.
    """
    _check_new_name(name, overwrite)
    info = dataset_info(
        name,
        splits,
        num_classes=num_classes,
        image_shape=image_shape,
        description=description,
        files=files,
        mean=mean,
        std=std,
        downloads=downloads,
        homepage=homepage,
        license=license,
        split_classes=split_classes,
    )
    REGISTRY[name] = info
    return info


def register_file(
    name: str,
    path: str | os.PathLike,
    *,
    label: str | None = None,
    size: str | None = None,
    description: str = "",
    overwrite: bool = False,
) -> DatasetInfo:
    """Register a file or folder of your own (see :mod:`vsml.data.userdata`) under ``name``.

    ``label``: the label column of a CSV; ``size``: ``"HxW"`` to resize a folder's images on load.
    The file is read now (errors surface here) and again whenever it changes.
    """
    target = str(path)
    options = "&".join(f"{k}={v}" for k, v in (("label", label), ("size", size)) if v is not None)
    if options:
        target += ("&" if "?" in target else "?") + options
    _check_new_name(name, overwrite)
    info = _path_info(target)
    REGISTRY[name] = dataclasses.replace(info, name=name, description=description or info.description)
    return REGISTRY[name]


def unregister(name: str) -> None:
    """Remove dataset ``name`` from the registry (a :class:`DataError` if it is not registered)."""
    if name not in REGISTRY:
        raise DataError(f"dataset '{name}' is not registered; registered: {', '.join(REGISTRY)}")
    del REGISTRY[name]


_plugins_loaded = False


def _load_plugins() -> None:
    """Import the modules (or ``.py`` files) listed in ``$VSML_DATASETS`` (comma-separated) once, so the
    datasets they register exist in every process, the command line included."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for entry in filter(None, (e.strip() for e in os.environ.get("VSML_DATASETS", "").split(","))):
        try:
            if entry.endswith(".py"):
                spec = importlib.util.spec_from_file_location(
                    f"vsml_datasets_{Path(entry).stem}", Path(entry).expanduser()
                )
                if spec is None or spec.loader is None:
                    raise ImportError(f"cannot load {entry}")
                spec.loader.exec_module(importlib.util.module_from_spec(spec))
            else:
                importlib.import_module(entry)
        except Exception as e:
            raise DataError(f"VSML_DATASETS: cannot import {entry} ({type(e).__name__}: {e})") from e


def names() -> list[str]:
    """Registered dataset names, built-in ones first."""
    _load_plugins()
    return list(REGISTRY)


def _user_split(data: userdata.UserData, split: str, paths):
    return data.split(split)


def _path_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of a file or folder of your own (parsed now, cached until it changes)."""
    try:
        data = userdata.read(name)
    except DataError as e:
        shown = userdata.parse_name(name)[0]
        close = did_you_mean(shown, REGISTRY, ignore_case=True)
        if close and not Path(shown).expanduser().exists():
            raise DataError(f"{e} Did you mean the registered dataset '{close}'?") from None
        raise
    n = sum(len(labels) for _, labels in data.stored.values())
    splits = "train/test = fixed 80/20 of all" if data.partition is not None else "/".join(data.split_names)
    what = "features" if len(data.example_shape) == 1 else "images"
    description = (
        f"your {data.kind} {userdata.parse_name(name)[0]}: {n} {what} {list(data.example_shape)}, "
        f"{data.num_classes} classes, splits {splits}"
    )
    return DatasetInfo(
        name,
        description,
        data.num_classes,
        data.example_shape,
        {s: (Source((), functools.partial(_user_split, data, s)),) for s in data.split_names},
        path=name,
        fingerprint=data.fingerprint,
        class_names=data.class_names,
    )


def get_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of ``name``: a registered dataset (or an alias such as ``svhn``), else a
    file or folder of your own when ``name`` contains ``/``, starts with ``~`` or contains ``.`` (see
    :mod:`vsml.data.userdata`). Unknown names raise :class:`DataError` with a suggestion."""
    _load_plugins()
    if not isinstance(name, str) or not name:
        raise DataError(f"a dataset name must be a non-empty string, got {name!r}")
    info = REGISTRY.get(name)
    if info is not None:
        if info.path is not None:  # registered file: re-read when it has changed
            return dataclasses.replace(_path_info(info.path), name=info.name, description=info.description)
        return info
    if name.lower() in _ALIASES:
        return REGISTRY[_ALIASES[name.lower()]]
    if userdata.is_path(name):
        return _path_info(name)
    close = did_you_mean(name, [*REGISTRY, *_ALIASES], ignore_case=True)
    hint = f" Did you mean '{_ALIASES.get(close, close)}'?" if close else ""
    if Path(name).exists():
        hint += f" There is a file or folder '{name}' here: write './{name}' to read it."
    raise DataError(
        f"unknown dataset '{name}'.{hint} Known datasets: {', '.join(REGISTRY)}. "
        "Files of your own: a path to an .npz, a .csv or a folder (see docs/data.md)."
    )


# --- loading ---------------------------------------------------------------------------------


def _present(source: Source, root: Path) -> bool:
    return all((root / f.path).is_file() for f in source.files)


def available_splits(info: DatasetInfo, root: Path) -> list[str]:
    return [s for s, sources in info.splits.items() if any(_present(src, root) for src in sources)]


def _missing_error(info: DatasetInfo, split: str, root: Path) -> DataError:
    first = info.splits[split][0]
    missing = next(f for f in first.files if not (root / f.path).is_file())
    here = available_splits(info, root)
    msg = (
        f"{info.name}: split '{split}' is not available: file {root / missing.path} missing; "
        f"run `vsml data download {info.name}` or set VSML_DATA_DIR (now {root})."
    )
    if here:
        msg += (
            f" Available here: {', '.join(here)}; for a held-out partition of one of them use e.g. "
            f"'{here[-1]}[:80%]' and '{here[-1]}[80%:]'."
        )
    return DataError(msg)


@functools.lru_cache(maxsize=16)
def _read_cached(
    source: Source, what: str, image_shape: tuple, paths: tuple[str, ...], stamps: tuple
) -> tuple[np.ndarray, np.ndarray]:
    try:
        images, labels = source.read([Path(p) for p in paths])
    except (DataError, OSError):
        raise
    except Exception as e:  # a registered reader's own failure: keep its traceback as the cause
        raise DataError(f"{what}: reading failed ({type(e).__name__}: {e})") from e
    images = userdata.as_images(images, what)
    labels, names = userdata.as_labels(labels, what)
    if names:
        raise DataError(f"{what}: a registered reader must return integer labels, got strings (e.g. {names[0]!r})")
    if len(images) != len(labels):
        raise DataError(f"{what}: {len(images)} examples but {len(labels)} labels")
    if tuple(images.shape[1:]) != image_shape:
        raise DataError(
            f"{what}: examples of shape {list(images.shape[1:])}, but the dataset is registered with "
            f"image_shape {list(image_shape)}"
        )
    labels = labels.astype(np.int32)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def load(name: str, split: str = "train", *, data_dir: str | os.PathLike | None = None, verify: bool = True) -> Split:
    """Load ``split`` of dataset ``name`` as a :class:`Split` (arrays are read-only, cached per process).

    ``name`` is a registered name or a file or folder of your own (see :func:`get_info`).
    ``split`` is a split name (``train``, ``test``, ...) optionally sliced, e.g. ``test[:80%]``.
    ``verify=False`` skips the checksum check (for non-canonical files; loaders still validate formats)
    and, for files of your own, the check that their content is still the one first read.
    """
    info = get_info(name)
    base, _, _ = parse_split(split)
    if base not in info.splits:
        raise DataError(f"{info.name} has no split '{base}'; its splits are: {', '.join(info.splits)}")
    if info.path is not None:  # a file or folder of your own, parsed by get_info
        images, labels = info.splits[base][0].read(())
        if verify:
            shown = userdata.parse_name(info.path)[0]
            check_fingerprint(shown, info.fingerprint, shown=shown)
    else:
        root = _data_dir(data_dir)
        index = next((i for i, src in enumerate(info.splits[base]) if _present(src, root)), None)
        if index is None:
            raise _missing_error(info, base, root)
        source = info.splits[base][index]
        paths = tuple(str(root / f.path) for f in source.files)
        if verify:
            hint = (
                f"Delete it and run `vsml data download {info.name}`, or, for a non-canonical copy, {SKIP_HINT}."
                if info.downloads
                else f"Replace it with the canonical file, or, for a non-canonical copy, {SKIP_HINT}."
            )
            for spec, path in zip(source.files, paths):
                check_file(spec, Path(path), hint=hint)
        try:
            stamps = tuple(file_stamp(os.stat(p)) for p in paths)
            images, labels = _read_cached(source, f"{info.name}/{base}", info.image_shape, paths, stamps)
        except OSError as e:
            raise DataError(f"{info.name}: cannot read {e.filename or paths}: {e.strerror or e}") from None
    num_classes = info.classes_in(base)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(
            f"{info.name}/{base}: labels span [{labels.min()}, {labels.max()}], expected [0, {num_classes})"
        )
    sel = partition(len(labels), split)
    if sel is not None:
        images, labels = images[sel], labels[sel]
    return Split(info.name, split, images, labels, num_classes, info.mean, info.std, info.fingerprint, info.class_names)


# --- status (for `vsml data list`) ----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DatasetStatus:
    name: str
    description: str
    splits: tuple[str, ...]  # splits whose files are present (all splits for built-in data)
    verified: bool | None  # None: nothing present to verify (or built in)
    size: int  # bytes of canonical files present
    problems: tuple[str, ...]


def status(name: str, *, data_dir: str | os.PathLike | None = None, verify: bool = True) -> DatasetStatus:
    info = get_info(name)
    root = _data_dir(data_dir)
    if info.path is not None:
        return DatasetStatus(info.name, info.description, tuple(info.splits), None, 0, ())
    if info.builtin:
        return DatasetStatus(info.name, info.description, tuple(info.splits), None, 0, ())
    present = [f for f in info.files if (root / f.path).is_file()]
    problems = []
    if verify:
        for f in present:
            try:
                check_file(f, root / f.path)
            except DataError as e:
                problems.append(str(e).splitlines()[0])
    size = sum((root / f.path).stat().st_size for f in present)
    verified = (not problems) if (verify and present) else None
    return DatasetStatus(
        info.name, info.description, tuple(available_splits(info, root)), verified, size, tuple(problems)
    )
