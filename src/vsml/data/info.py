"""What a dataset is: :class:`Source` (files + a reader), :class:`DatasetInfo` (a registered
dataset), :class:`Split` (loaded examples), and :func:`dataset_info`, which validates a dataset's
description (the registry, :mod:`vsml.data.registry`, stores the result)."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from vsml.data.integrity import DataError, FileSpec

Reader = Callable[[Sequence[Path]], tuple[np.ndarray, np.ndarray]]


@dataclasses.dataclass(frozen=True, eq=False)
class Source:
    """One way to obtain a split: when all ``files`` are present, ``read(paths)`` -> (images, labels)."""

    files: tuple[FileSpec, ...]
    read: Reader


@dataclasses.dataclass(frozen=True, eq=False)
class DatasetInfo:
    """A registered dataset (or a file of your own, then ``path`` is set). ``image_shape`` is ``(H, W, C)``
    as loaded, or ``(F,)`` for feature vectors; ``mean``/``std`` are the normalisation statistics of
    grayscale pixels in [0, 1] (``None``: computed from the split)."""

    name: str
    description: str
    num_classes: int
    image_shape: tuple[int, ...]
    splits: dict[str, tuple[Source, ...]]
    downloads: tuple[FileSpec, ...] = ()
    mean: float | None = None
    std: float | None = None
    homepage: str = ""
    license: str = ""
    split_classes: dict[str, int] = dataclasses.field(default_factory=dict)  # where a split has fewer
    path: str | None = None  # your own file or folder (as written, with any ?options); see vsml.data.userdata
    fingerprint: str | None = None  # sha256 of that file's content when it was parsed
    class_names: tuple[str, ...] = ()  # label i is class_names[i] (folders, string labels)

    def classes_in(self, split: str) -> int:
        """Label range of ``split``: labels are in ``[0, classes_in(split))``."""
        return self.split_classes.get(split, self.num_classes)

    @property
    def builtin(self) -> bool:
        return self.path is None and all(not s.files for sources in self.splits.values() for s in sources)

    @property
    def files(self) -> tuple[FileSpec, ...]:
        """Every canonical file this dataset may use (deduplicated, in registry order)."""
        seen, out = set(), []
        for spec in (*self.downloads, *(f for ss in self.splits.values() for s in ss for f in s.files)):
            if spec.path not in seen:
                seen.add(spec.path)
                out.append(spec)
        return tuple(out)


@dataclasses.dataclass(frozen=True, eq=False)
class Split:
    """Loaded examples: ``images [N, H, W, C]`` (uint8 0..255, or float32) or ``[N, F]`` float32 features,
    ``labels [N]`` int32 in ``[0, num_classes)``. ``fingerprint``: content sha256 of a file of your own."""

    name: str
    split: str
    images: np.ndarray
    labels: np.ndarray
    num_classes: int
    mean: float | None
    std: float | None
    fingerprint: str | None = None
    class_names: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.labels)


SplitValue = Callable[..., tuple[np.ndarray, np.ndarray]] | Source | Sequence[Source] | tuple[np.ndarray, np.ndarray]


def _sources(name: str, split: str, value, specs) -> tuple[Source, ...]:
    if specs and not callable(value):
        raise DataError(f"dataset '{name}': files for split '{split}' need a reader function reader(paths)")
    if isinstance(value, Source):
        return (value,)
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, Source) for v in value):
        return tuple(value)
    if (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and not any(callable(v) or isinstance(v, Source) for v in value)
    ):
        images, labels = value  # in-memory arrays
        return (Source((), lambda paths: (images, labels)),)
    if callable(value):
        if specs:
            return (Source(tuple(specs), lambda paths: value(list(paths))),)
        return (Source((), lambda paths: value()),)
    raise DataError(
        f"dataset '{name}': split '{split}' must be a reader function, an (images, labels) pair, "
        f"or Source(s); got {type(value).__name__}"
    )


def dataset_info(
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
) -> DatasetInfo:
    """The validated :class:`DatasetInfo` of dataset ``name`` (nothing is registered: see
    :func:`vsml.data.registry.register`, which takes the same arguments, for their meaning)."""
    if not isinstance(num_classes, (int, np.integer)) or isinstance(num_classes, bool) or num_classes < 2:
        raise DataError(f"dataset '{name}': num_classes must be an integer >= 2, got {num_classes!r}")
    shape = tuple(int(d) for d in image_shape)
    if len(shape) == 2:
        shape += (1,)
    if len(shape) not in (1, 3) or min(shape) < 1:
        raise DataError(
            f"dataset '{name}': image_shape must be (H, W, C), (H, W) or (F,) with positive sizes, got {image_shape}"
        )
    if not splits:
        raise DataError(f"dataset '{name}': needs at least one split")
    files = {
        k: tuple(FileSpec(f) if isinstance(f, (str, os.PathLike)) else f for f in v) for k, v in (files or {}).items()
    }
    for key in (*files, *(split_classes or {})):
        if key not in splits:
            raise DataError(
                f"dataset '{name}': files/split_classes name split '{key}', which is not in splits "
                f"({', '.join(splits)})"
            )
    sources = {}
    for split, value in splits.items():
        if not re.fullmatch(r"[A-Za-z0-9_]+", str(split)):
            raise DataError(f"dataset '{name}': split names use letters, digits and '_', got {split!r}")
        sources[split] = _sources(name, split, value, files.get(split, ()))
    if (mean is None) != (std is None) or (std is not None and not std > 0):
        raise DataError(f"dataset '{name}': give both mean and std (std > 0), or neither; got {mean}, {std}")
    if downloads is None:
        downloads = tuple(dict.fromkeys(f for specs in files.values() for f in specs if f.urls))
    return DatasetInfo(
        name,
        description,
        int(num_classes),
        shape,
        sources,
        tuple(downloads),
        None if mean is None else float(mean),
        None if std is None else float(std),
        homepage,
        license,
        dict(split_classes or {}),
    )
