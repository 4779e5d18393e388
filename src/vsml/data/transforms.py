"""Preprocessing transforms. Pure functions of arrays (and explicit PRNG keys).

Static, per-dataset steps (run once when a sampler is built), images ``[N, H, W, C]``:
``to_unit`` (uint8 -> [0, 1]), ``grayscale`` (RGB -> 1 channel), ``resize``, ``normalize``,
``pad_to``, ``select_classes``. Per-task augmentations (drawn from a key, jit/vmap friendly),
on flattened inputs ``[..., D]``: ``glorot_uniform`` projection matrices and ``pixel_permutation``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from vsml.data.integrity import DataError

# ITU-R BT.601 luma weights (as PIL's convert("L")).
LUMA = (0.299, 0.587, 0.114)


def to_unit(images) -> np.ndarray:
    """uint8 pixels -> float32 in [0, 1]; float input is returned as float32 unchanged."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    return images.astype(np.float32)


def grayscale(images) -> np.ndarray:
    """``[N, H, W, 3]`` -> ``[N, H, W, 1]`` float32 (luma); 1-channel input passes through as float."""
    x = to_unit(images)
    if x.shape[-1] == 1:
        return x
    if x.shape[-1] != 3:
        raise DataError(f"grayscale needs 1 or 3 channels, got shape {x.shape}")
    return (x @ np.asarray(LUMA, np.float32))[..., None]


def resize(images, size: tuple[int, int], *, chunk: int = 2048) -> np.ndarray:
    """Bilinear resize (antialiased when shrinking) ``[N, H, W, C]`` -> ``[N, h, w, C]`` float32 in input units."""
    x = np.asarray(images)
    h, w = int(size[0]), int(size[1])
    if h < 1 or w < 1:
        raise DataError(f"resize target must be positive, got {size}")
    if x.shape[1:3] == (h, w):
        return to_unit(x)
    # jax.image.resize is linear and separable: build its 1-D matrices once, then two matmuls.
    rh, rw = _resize_matrix(x.shape[1], h), _resize_matrix(x.shape[2], w)
    out = np.empty((len(x), h, w, x.shape[3]), np.float32)
    for i in range(0, len(x), chunk):
        block = to_unit(x[i : i + chunk]).transpose(0, 3, 1, 2)  # [n, C, H, W]
        out[i : i + chunk] = (rh @ block @ rw.T).transpose(0, 2, 3, 1)
    return out


def _resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``[n_out, n_in]`` matrix of jax.image.resize's antialiased linear 1-D resampling."""
    eye = jnp.eye(n_in, dtype=jnp.float32)
    return np.asarray(jax.image.resize(eye, (n_out, n_in), "linear", antialias=True))


def normalize(images, mean: float, std: float) -> np.ndarray:
    """``(x - mean) / std`` with ``x`` in [0, 1] units."""
    if std <= 0:
        raise DataError(f"normalisation std must be positive, got {std}")
    return (to_unit(images) - np.float32(mean)) / np.float32(std)


def pad_to(images, size: tuple[int, int], value: float = 0.0) -> np.ndarray:
    """Centre-pad ``[N, H, W, C]`` to ``[N, *size, C]`` with ``value`` (keeps dtype)."""
    images = np.asarray(images)
    h, w = images.shape[1:3]
    H, W = int(size[0]), int(size[1])
    if H < h or W < w:
        raise DataError(f"cannot pad images of size {h}x{w} to the smaller {H}x{W}; resize them first")
    top, left = (H - h) // 2, (W - w) // 2
    widths = ((0, 0), (top, H - h - top), (left, W - w - left), (0, 0))
    return np.pad(images, widths, constant_values=np.asarray(value).astype(images.dtype))


def select_classes(images, labels, classes) -> tuple[np.ndarray, np.ndarray]:
    """Keep examples of ``classes`` and relabel class ``classes[i]`` to ``i`` (0..k-1)."""
    classes = [int(c) for c in classes]
    labels = np.asarray(labels)
    if len(set(classes)) != len(classes):
        raise DataError(f"class subset {classes} has duplicates")
    lut = np.full(max(int(labels.max(initial=0)), *classes) + 1, -1, np.int64)
    lut[classes] = np.arange(len(classes))
    new = lut[labels]
    keep = new >= 0
    return np.asarray(images)[keep], new[keep].astype(np.int32)


def glorot_uniform(key: jax.Array, d_in: int, d_out: int) -> jax.Array:
    """``[d_in, d_out]`` matrix, U(-a, a) with a = sqrt(6 / (d_in + d_out)): ``x @ W`` keeps unit variance
    when ``d_in == d_out``."""
    limit = jnp.sqrt(6.0 / (d_in + d_out))
    return jax.random.uniform(key, (d_in, d_out), jnp.float32, -limit, limit)


def pixel_permutation(key: jax.Array, d: int) -> jax.Array:
    """``[d]`` int32 permutation: ``x[..., perm]`` shuffles the flattened pixels."""
    return jax.random.permutation(key, d).astype(jnp.int32)
