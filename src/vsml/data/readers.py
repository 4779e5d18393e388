"""Readers of the built-in datasets' files: ``read(paths) -> (images, labels)``, paths in the order
of :attr:`vsml.data.info.Source.files` (the formats themselves: :mod:`vsml.data.formats`)."""

from __future__ import annotations

import numpy as np

from vsml.data import formats
from vsml.data.info import Source
from vsml.data.integrity import DataError


def read_idx_pair(paths, transpose: bool = False):
    images, labels = formats.read_idx(paths[0]), formats.read_idx(paths[1])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(
            f"{paths[0]} / {paths[1]}: expected images [N, H, W] and N labels, got {images.shape}, {labels.shape}"
        )
    if transpose:  # EMNIST stores every image transposed (column-major)
        images = np.ascontiguousarray(images.transpose(0, 2, 1))
    return images, labels


def read_emnist_zip(config: str, split: str):
    def read(paths):
        zp = paths[0]
        images = formats.read_idx_from_zip(zp, f"gzip/emnist-{config}-{split}-images-idx3-ubyte.gz")
        labels = formats.read_idx_from_zip(zp, f"gzip/emnist-{config}-{split}-labels-idx1-ubyte.gz")
        return np.ascontiguousarray(images.transpose(0, 2, 1)), labels

    return read


def read_npz_pair(paths):
    return formats.read_npz_array(paths[0]), formats.read_npz_array(paths[1])


def inverted(reader):
    """Omniglot stores ink as 0 on a 255 background; invert so ink is bright, as in MNIST."""

    def read(paths):
        images, labels = reader(paths[0])
        return 255 - images, labels

    return read


def cifar(batches):
    def from_tar(paths):
        return formats.read_cifar(paths[0], batches)

    def from_dir(paths):
        return formats.read_cifar(paths[0].parent, batches)

    return from_tar, from_dir


def generated(fn, split):
    return (Source((), lambda paths: fn(split)),)
