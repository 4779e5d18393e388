"""Readers for the canonical distribution formats. Every reader returns numpy arrays.

- IDX (``*-ubyte`` / ``*-ubyte.gz``): MNIST, Fashion-MNIST, KMNIST, EMNIST.
- KMNIST npz (key ``arr_0``).
- CIFAR-10 python batches (``cifar-10-python.tar.gz`` or the extracted ``cifar-10-batches-py/``).
- SVHN cropped digits ``.mat`` (MATLAB v5, ``X [32, 32, 3, N]``, ``y [N, 1]``, label 10 = digit 0).
- Omniglot: the official PNG zips and the npz conversion described in the data MANIFEST.

Image arrays are ``[N, H, W]`` (grayscale) or ``[N, H, W, 3]`` (RGB) ``uint8``.
"""

from __future__ import annotations

import io
import pickle
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from vsml.data.integrity import DataError

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def parse_idx(raw: bytes, what: str = "IDX data") -> np.ndarray:
    """Parse uncompressed IDX bytes: ``[d0, d1, ...]`` array of the stored dtype (no copy)."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{what} is not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = header + int(np.prod(dims)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(f"{what}: IDX header says {dims} ({expected} bytes) but holds {len(raw)} bytes")
    return np.frombuffer(raw, dtype, offset=header).reshape(dims)


def gunzip(data: bytes, what: str = "gzip data") -> bytes:
    try:
        return zlib.decompress(data, 16 + zlib.MAX_WBITS)
    except zlib.error as e:
        raise DataError(f"{what} is not valid gzip data ({e})") from None


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file, gzip-compressed when its name ends in ``.gz``."""
    path = Path(path)
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gunzip(raw, str(path))
    return parse_idx(raw, str(path))


def read_idx_from_zip(zip_path: Path, member: str) -> np.ndarray:
    """Read a gzip IDX file stored as ``member`` of a zip archive (EMNIST ``gzip.zip``)."""
    try:
        with zipfile.ZipFile(zip_path) as zf:
            raw = zf.read(member)
    except KeyError:
        raise DataError(f"{zip_path} has no member {member}") from None
    except zipfile.BadZipFile as e:
        raise DataError(f"{zip_path} is not a valid zip archive ({e})") from None
    return parse_idx(gunzip(raw, f"{zip_path}:{member}"), f"{zip_path}:{member}")


def read_npz_array(path: Path, key: str = "arr_0") -> np.ndarray:
    """One array of an ``.npz`` file (no pickle)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return z[key]
    except KeyError:
        raise DataError(f"{path} has no array '{key}'") from None
    except (ValueError, OSError, zipfile.BadZipFile) as e:
        raise DataError(f"{path} is not a readable npz file ({e})") from None


# --- CIFAR-10 --------------------------------------------------------------------------------

CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_BATCHES = ("test_batch",)
CIFAR_DIR = "cifar-10-batches-py"


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only dicts/lists/numbers/strings/numpy arrays: a batch file cannot run code."""

    _allowed = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) in self._allowed:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch")


def parse_cifar_batch(raw: bytes, what: str) -> tuple[np.ndarray, np.ndarray]:
    """One python-pickle batch -> (images ``[N, 32, 32, 3]`` uint8, labels ``[N]``)."""
    try:
        batch = _ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, KeyError, TypeError, ValueError, EOFError) as e:
        raise DataError(f"{what} is not a CIFAR-10 python batch ({e})") from None
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise DataError(f"{what}: expected data [N, 3072] and N labels, got {data.shape} and {labels.shape}")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def read_cifar(source: Path, batches: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Read ``batches`` from ``cifar-10-python.tar.gz`` or from an extracted ``cifar-10-batches-py/``."""
    source = Path(source)
    raws = []
    if source.is_dir():
        for name in batches:
            raws.append(((source / name).read_bytes(), str(source / name)))
    else:
        try:
            with tarfile.open(source, "r:gz") as tf:
                for name in batches:
                    member = tf.extractfile(f"{CIFAR_DIR}/{name}")
                    if member is None:
                        raise KeyError(name)
                    raws.append((member.read(), f"{source}:{CIFAR_DIR}/{name}"))
        except KeyError as e:
            raise DataError(f"{source} has no member {CIFAR_DIR}/{e.args[0]}") from None
        except (tarfile.TarError, OSError, EOFError) as e:
            raise DataError(f"{source} is not a readable tar.gz archive ({e})") from None
    parts = [parse_cifar_batch(raw, what) for raw, what in raws]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


# --- SVHN ------------------------------------------------------------------------------------


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """SVHN cropped ``.mat`` -> (images ``[N, 32, 32, 3]`` uint8, labels ``[N]`` in 0..9; 10 -> 0)."""
    try:
        import scipy.io
    except ImportError:  # pragma: no cover - scipy is a declared dependency
        raise DataError("reading SVHN .mat files needs scipy (pip install scipy)") from None
    try:
        mat = scipy.io.loadmat(str(path))
        x, y = mat["X"], mat["y"]
    except (KeyError, ValueError, OSError, TypeError) as e:
        raise DataError(f"{path} is not an SVHN .mat file with X and y ({e})") from None
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or y.size != x.shape[3]:
        raise DataError(f"{path}: expected X [32, 32, 3, N] and y [N, 1], got {x.shape} and {y.shape}")
    labels = y.reshape(-1).astype(np.int64)
    labels[labels == 10] = 0
    return np.ascontiguousarray(x.transpose(3, 0, 1, 2)).astype(np.uint8), labels


# --- Omniglot --------------------------------------------------------------------------------


def read_omniglot_zip(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Official Omniglot zip -> (images ``[N, 105, 105]`` uint8 with 255 = background, labels ``[N]``).

    Labels index the sorted ``Alphabet/characterNN`` folders; images are in sorted path order,
    the same convention as the npz conversion (``read_omniglot_npz``).
    """
    from PIL import Image

    try:
        with zipfile.ZipFile(path) as zf:
            names = sorted(n for n in zf.namelist() if n.endswith(".png"))
            if not names:
                raise DataError(f"{path} holds no PNG images")
            chars = sorted({"/".join(n.split("/")[-3:-1]) for n in names})
            index = {c: i for i, c in enumerate(chars)}
            names.sort(key=lambda n: ("/".join(n.split("/")[-3:]),))
            images = np.empty((len(names), 105, 105), np.uint8)
            labels = np.empty(len(names), np.int64)
            for i, name in enumerate(names):
                with Image.open(io.BytesIO(zf.read(name))) as im:
                    images[i] = np.asarray(im.convert("L"))
                labels[i] = index["/".join(name.split("/")[-3:-1])]
    except zipfile.BadZipFile as e:
        raise DataError(f"{path} is not a valid zip archive ({e})") from None
    return images, labels


def read_omniglot_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Omniglot npz conversion -> (images ``[N, 105, 105]`` uint8, 255 = background; labels ``[N]``)."""
    return read_npz_array(path, "images"), read_npz_array(path, "labels")
