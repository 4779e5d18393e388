"""Dataset registry: names -> canonical files (with published checksums) -> arrays.

    split = load("mnist", "train")          # Split(images [N, 28, 28, 1] uint8, labels [N] int32)
    split = load("emnist", "test[:80%]")    # held-out partition of a split (fixed permutation)

Files are looked up in the data directory (``VSML_DATA_DIR``, default ``~/.cache/vsml/data``),
whose layout mirrors the dataset names: ``mnist/``, ``fashion_mnist/``, ``kmnist/``, ``emnist/``,
``cifar10/``, ``svhn_cropped/``, ``omniglot/``. Each file is checked against its published size and
hash on first use (see :mod:`vsml.data.integrity`).

Every dataset, built-in or yours, is added with :func:`register` (a reader per split, optional
canonical files with checksums). A name that is not registered and looks like a path
(``data/x.npz``, ``./photos``, ``table.csv?label=species``) is read as a file or folder of your own
(see :mod:`vsml.data.userdata`).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from vsml.data import builtin, formats, userdata
from vsml.data.integrity import SKIP_HINT, DataError, FileSpec, cache_dir, check_file, check_fingerprint, file_stamp
from vsml.errors import did_you_mean

# --- where the data lives --------------------------------------------------------------------


def data_dir(override: str | os.PathLike | None = None) -> Path:
    """The data directory: ``override``, else ``$VSML_DATA_DIR``, else ``~/.cache/vsml/data``."""
    if override is not None:
        return Path(override).expanduser()
    env = os.environ.get("VSML_DATA_DIR")
    return Path(env).expanduser() if env else cache_dir() / "data"


_data_dir = data_dir  # for functions whose ``data_dir`` argument shadows this one


# --- registry types --------------------------------------------------------------------------

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


# --- the registry ----------------------------------------------------------------------------

REGISTRY: dict[str, DatasetInfo] = {}
_ALIASES = {"fashion-mnist": "fashion_mnist", "fashionmnist": "fashion_mnist", "cifar-10": "cifar10",
            "svhn": "svhn_cropped", "emnist/byclass": "emnist"}

SplitValue = Callable[..., tuple[np.ndarray, np.ndarray]] | Source | Sequence[Source] | tuple[np.ndarray, np.ndarray]


def _sources(name: str, split: str, value, specs) -> tuple[Source, ...]:
    if specs and not callable(value):
        raise DataError(f"dataset '{name}': files for split '{split}' need a reader function reader(paths)")
    if isinstance(value, Source):
        return (value,)
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, Source) for v in value):
        return tuple(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and not any(callable(v) or isinstance(v, Source) for v in value):
        images, labels = value  # in-memory arrays
        return (Source((), lambda paths: (images, labels)),)
    if callable(value):
        if specs:
            return (Source(tuple(specs), lambda paths: value(list(paths))),)
        return (Source((), lambda paths: value()),)
    raise DataError(f"dataset '{name}': split '{split}' must be a reader function, an (images, labels) pair, "
                    f"or Source(s); got {type(value).__name__}")


def _check_new_name(name: str, overwrite: bool) -> None:
    if not userdata.valid_name(name):
        raise DataError(f"cannot register dataset {name!r}: names use letters, digits, '_', '-' and '/' "
                        "(no '.', so they are never mistaken for file paths)")
    if name in REGISTRY and not overwrite:
        raise DataError(f"dataset '{name}' is already registered ({REGISTRY[name].description or 'no description'}); "
                        "pass overwrite=True to replace it, or choose another name")


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
    if not isinstance(num_classes, (int, np.integer)) or isinstance(num_classes, bool) or num_classes < 2:
        raise DataError(f"dataset '{name}': num_classes must be an integer >= 2, got {num_classes!r}")
    shape = tuple(int(d) for d in image_shape)
    if len(shape) == 2:
        shape += (1,)
    if len(shape) not in (1, 3) or min(shape) < 1:
        raise DataError(f"dataset '{name}': image_shape must be (H, W, C), (H, W) or (F,) with positive sizes, got {image_shape}")
    if not splits:
        raise DataError(f"dataset '{name}': needs at least one split")
    files = {k: tuple(FileSpec(f) if isinstance(f, (str, os.PathLike)) else f for f in v) for k, v in (files or {}).items()}
    for key in (*files, *(split_classes or {})):
        if key not in splits:
            raise DataError(f"dataset '{name}': files/split_classes name split '{key}', which is not in splits ({', '.join(splits)})")
    sources = {}
    for split, value in splits.items():
        if not re.fullmatch(r"[A-Za-z0-9_]+", str(split)):
            raise DataError(f"dataset '{name}': split names use letters, digits and '_', got {split!r}")
        sources[split] = _sources(name, split, value, files.get(split, ()))
    if (mean is None) != (std is None) or (std is not None and not std > 0):
        raise DataError(f"dataset '{name}': give both mean and std (std > 0), or neither; got {mean}, {std}")
    if downloads is None:
        downloads = tuple(dict.fromkeys(f for specs in files.values() for f in specs if f.urls))
    info = DatasetInfo(name, description, int(num_classes), shape, sources, tuple(downloads),
                       None if mean is None else float(mean), None if std is None else float(std),
                       homepage, license, dict(split_classes or {}))
    REGISTRY[name] = info
    return info


def register_file(name: str, path: str | os.PathLike, *, label: str | None = None, size: str | None = None,
                  description: str = "", overwrite: bool = False) -> DatasetInfo:
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
                spec = importlib.util.spec_from_file_location(f"vsml_datasets_{Path(entry).stem}", Path(entry).expanduser())
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
    splits = ("train/test = fixed 80/20 of all" if data.partition is not None else "/".join(data.split_names))
    what = "features" if len(data.example_shape) == 1 else "images"
    description = (f"your {data.kind} {userdata.parse_name(name)[0]}: {n} {what} {list(data.example_shape)}, "
                   f"{data.num_classes} classes, splits {splits}")
    return DatasetInfo(name, description, data.num_classes, data.example_shape,
                       {s: (Source((), functools.partial(_user_split, data, s)),) for s in data.split_names},
                       path=name, fingerprint=data.fingerprint, class_names=data.class_names)


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
    raise DataError(f"unknown dataset '{name}'.{hint} Known datasets: {', '.join(REGISTRY)}. "
                    "Files of your own: a path to an .npz, a .csv or a folder (see docs/data.md).")


# --- canonical files and their published checksums ------------------------------------------
# Sizes and sha256 digests: TensorFlow Datasets url_checksums/<name>.txt (tensorflow/datasets);
# md5 digests: torchvision's dataset classes / the authors' pages; see docs/data.md.

_TFDS = "TFDS url_checksums/{}.txt"
_MNIST_URLS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)


def _f(path, size, sha256=None, md5=None, base_urls=(), source=""):
    name = path.rsplit("/", 1)[-1]
    return FileSpec(path, size, sha256, md5, tuple(u + name for u in base_urls), source)


MNIST = {
    "train-images-idx3-ubyte.gz": (9912422, "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train-labels-idx1-ubyte.gz": (28881, "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", "d53e105ee54ea40749a09fcbcd1e9432"),
    "t10k-images-idx3-ubyte.gz": (1648877, "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", "9fb629c4189551a2d022fa330f9573f3"),
    "t10k-labels-idx1-ubyte.gz": (4542, "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", "ec29112dd5afa0611ce80d1b7f02629c"),
}
FASHION = {
    "train-images-idx3-ubyte.gz": (26421880, "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
    "train-labels-idx1-ubyte.gz": (29515, "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", "25c81989df183df01b3e8a0aad5dffbe"),
    "t10k-images-idx3-ubyte.gz": (4422102, "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", "bef4ecab320f06d8554ea6380940ec79"),
    "t10k-labels-idx1-ubyte.gz": (5148, "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", "bb300cfdad3c16e7a12a480ee83cd310"),
}
KMNIST = {
    "train-images-idx3-ubyte.gz": (18165135, "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4", "bdb82020997e1d708af4cf47b453dcf7"),
    "train-labels-idx1-ubyte.gz": (29497, "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17", "e144d726b3acfaa3e44228e80efcd344"),
    "t10k-images-idx3-ubyte.gz": (3041136, "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5", "5c965bf0a639b31b8f53240b1b52f4d7"),
    "t10k-labels-idx1-ubyte.gz": (5120, "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c", "7320c461ea6c1c855c0b718fb2a4b134"),
}
# KMNIST's NumPy distribution (md5 = git-annex keys of datasets-mila/datasets--kmnist).
KMNIST_NPZ = {
    "kmnist-test-imgs.npz": (3079479, "692d824896bec8f3c357ebf7a0fe904ed67ac632ce953d0b58f7fbef7bb27d87", "dace6de62ca8b90843cc45366337d02e"),
    "kmnist-test-labels.npz": (5304, "660f13a4705431ea2a6391c41ecbe384cd0d932c595a101ec4f3b8989e785046", "3ae489a79983d0fe386152684e3b5412"),
    "kmnist-train-labels.npz": (29700, "a325c877035602cb9b9ba54f4194a2a1b5f718026a463db5b5e0cdc124c03720", "b0e1d240e8afec72b50437fc3bc5908a"),
}
# EMNIST: the authors publish one archive (gzip.zip; size + sha256 from TFDS, md5 from torchvision).
# Its members' sha256 are those of the Git-LFS mirror aurelienduarte/emnist of NIST's gzip.zip.
EMNIST_ZIP = FileSpec(
    "emnist/gzip.zip", 561753746,
    "fb9bb67e33772a9cc0b895e4ecf36d2cf35be8b709693c3564cea2a019fcda8e", "58c8d27c78d21e728a6bc7b3cc06412e",
    ("https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip",
     "https://www.itl.nist.gov/iaui/vip/cs_links/EMNIST/gzip.zip"),
    _TFDS.format("emnist") + "; torchvision EMNIST (md5)",
)
EMNIST_MEMBERS = {
    "emnist-byclass-test-images-idx3-ubyte.gz": (28908322, "5ec835bd5d5b1a66378a132e727fef20fe994b3cc666899befcca5ac766f50cd"),
    "emnist-byclass-test-labels-idx1-ubyte.gz": (81839, "501e305eeeacb093b162592d80e8a2632040872360fa6d85cfcb2200d91ca92a"),
    "emnist-mnist-test-images-idx3-ubyte.gz": (2484884, "b25640fa9e356c618132f5df347c95ef5bae6d9c2596be1de40f7e0ae1c3eac6"),
    "emnist-mnist-test-labels-idx1-ubyte.gz": (5144, "bcc5385d38f083dba046f5f756e99b32f5ea7fad122c6243c71c2239873065ca"),
}
CIFAR_TGZ = FileSpec(
    "cifar10/cifar-10-python.tar.gz", 170498071,
    "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce", "c58f30108f718f92721af3b95e74349a",
    ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
    "TFDS url_checksums/cifar10.csv (sha256); CIFAR page (md5)",
)
# Extracted batches: md5 from torchvision's CIFAR10 class; test_batch sha256 from the data MANIFEST.
CIFAR_BATCH_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
SVHN = {
    "train_32x32.mat": (182040794, "435e94d69a87fde4fd4d7f3dd208dfc32cb6ae8af2240d066de1df7508d083b8", "e26dedcc434d2e4c54c9b2d4a06d8373"),
    "test_32x32.mat": (64275384, "cdce80dfb2a2c4c6160906d0bd7c68ec5a99d7ca4831afa54f09182025b6a75b", "eb5a983be6a315427106f1b164d9cef3"),
    "extra_32x32.mat": (1329278602, "a133a4beb38a00fcdda90c9489e0c04f900b660ce8a316a5e854838379a71eb3", "a93ce644f1a588dc4d68dda5feec44a7"),
}
OMNIGLOT_URL = "https://github.com/brendenlake/omniglot/raw/master/python/"
OMNIGLOT = {
    "images_background.zip": (9464212, "ad41ab679c8b5d90b271ef46be6987cc81211774a695c29dcc5367b2b26ee640", "68d2efa1b9178cc56df9314c21c6e718"),
    "images_evaluation.zip": (6462886, "1f61a8f3366785b057fc117d9228e78a16e3d976c8953b2a10fcc74cf0609cee", "6b91aef0f799c5bb55b94e3f2daec811"),
    "images_background_small1.zip": (1319022, "f38eb80f801274ac2b4dff5b24289016bfaba4a7d5bb50deebf27104ad6cb8a4", "e704a628b5459e08445c13499850abc4"),
    "images_background_small2.zip": (1580917, "3ccaa407515a8778e5d0861875af38b17e418f301ad5bb3b5a6b65d901a41c7f", "b75a71a51d3b13f821f212756fe481fd"),
}
# Non-canonical npz conversion of the official PNGs (see the data MANIFEST); sha256 of that file.
OMNIGLOT_NPZ = {
    "omniglot_background.npz": (3399490, "f0de22df83f3dee42cfc45b3e3b4632ca2e0e2b53f833dc0610eb0ff4a287dbb"),
    "omniglot_evaluation.npz": (2455419, "e97cf71b2ac683e459077fe28ed8550fd64b232ed71f99b3e16fa0e6517c9045"),
}


def _table(folder: str, table: dict, base_urls=(), source: str = "") -> dict[str, FileSpec]:
    out = {}
    for name, entry in table.items():
        size, sha = entry[0], entry[1]
        md5 = entry[2] if len(entry) > 2 else None
        out[name] = _f(f"{folder}/{name}", size, sha, md5, base_urls, source)
    return out


# --- readers (paths come in the order of Source.files) ---------------------------------------


def _read_idx_pair(paths, transpose: bool = False):
    images, labels = formats.read_idx(paths[0]), formats.read_idx(paths[1])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"{paths[0]} / {paths[1]}: expected images [N, H, W] and N labels, got {images.shape}, {labels.shape}")
    if transpose:  # EMNIST stores every image transposed (column-major)
        images = np.ascontiguousarray(images.transpose(0, 2, 1))
    return images, labels


def _read_emnist_zip(config: str, split: str):
    def read(paths):
        zp = paths[0]
        images = formats.read_idx_from_zip(zp, f"gzip/emnist-{config}-{split}-images-idx3-ubyte.gz")
        labels = formats.read_idx_from_zip(zp, f"gzip/emnist-{config}-{split}-labels-idx1-ubyte.gz")
        return np.ascontiguousarray(images.transpose(0, 2, 1)), labels

    return read


def _read_npz_pair(paths):
    return formats.read_npz_array(paths[0]), formats.read_npz_array(paths[1])


def _inverted(reader):
    """Omniglot stores ink as 0 on a 255 background; invert so ink is bright, as in MNIST."""

    def read(paths):
        images, labels = reader(paths[0])
        return 255 - images, labels

    return read


def _cifar(batches):
    def from_tar(paths):
        return formats.read_cifar(paths[0], batches)

    def from_dir(paths):
        return formats.read_cifar(paths[0].parent, batches)

    return from_tar, from_dir


def _builtin(fn, split):
    return (Source((), lambda paths: fn(split)),)


# --- the built-in datasets: one block each, registered through `register` ---------------------


def _idx_dataset(name, table, urls, source, description, mean, std, homepage, license_, extra=None):
    """MNIST-like: train/test IDX pairs in folder ``name``, 10 classes of 28x28 grayscale images."""
    files = _table(name, table, urls, source)
    splits = {
        "train": (Source((files["train-images-idx3-ubyte.gz"], files["train-labels-idx1-ubyte.gz"]), _read_idx_pair),),
        "test": (Source((files["t10k-images-idx3-ubyte.gz"], files["t10k-labels-idx1-ubyte.gz"]), _read_idx_pair),),
    }
    for split, alt in (extra or {}).items():
        splits[split] = splits[split] + (alt,)
    register(name, splits, num_classes=10, image_shape=(28, 28, 1), description=description, mean=mean, std=std,
             downloads=tuple(files.values()), homepage=homepage, license=license_)


def _mnist():
    _idx_dataset("mnist", MNIST, _MNIST_URLS, _TFDS.format("mnist") + "; torchvision MNIST (md5)",
                 "MNIST handwritten digits (LeCun, Cortes, Burges)", 0.1307, 0.3081,
                 "http://yann.lecun.com/exdb/mnist/", "none stated")


def _fashion_mnist():
    _idx_dataset("fashion_mnist", FASHION, ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
                 _TFDS.format("fashion_mnist") + "; zalandoresearch/fashion-mnist README (md5)",
                 "Fashion-MNIST clothing images (Zalando)", 0.2860, 0.3530,
                 "https://github.com/zalandoresearch/fashion-mnist", "MIT")


def _kmnist():
    npz = _table("kmnist", KMNIST_NPZ, (), "datasets-mila/datasets--kmnist git-annex keys (md5); data MANIFEST (sha256)")
    _idx_dataset("kmnist", KMNIST, ("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
                 _TFDS.format("kmnist") + "; torchvision KMNIST (md5)",
                 "Kuzushiji-MNIST cursive Japanese characters (CODH)", 0.1918, 0.3483,
                 "https://github.com/rois-codh/kmnist", "CC BY-SA 4.0",
                 extra={"test": Source((npz["kmnist-test-imgs.npz"], npz["kmnist-test-labels.npz"]), _read_npz_pair)})


def _emnist():
    members = _table("emnist", EMNIST_MEMBERS, (), "Git-LFS pointers of aurelienduarte/emnist (mirror of NIST gzip.zip)")
    for config, name, classes, mean, std, desc in (
        ("byclass", "emnist", 62, 0.1736, 0.3317, "EMNIST ByClass: digits and letters, 62 classes (TFDS default)"),
        ("mnist", "emnist/mnist", 10, 0.1735, 0.3317, "EMNIST MNIST: 10 digit classes, MNIST-sized"),
    ):
        splits = {}
        for split in ("train", "test"):
            img = members.get(f"emnist-{config}-{split}-images-idx3-ubyte.gz")
            lbl = members.get(f"emnist-{config}-{split}-labels-idx1-ubyte.gz")
            alts = []
            if img is not None and lbl is not None:
                alts.append(Source((img, lbl), functools.partial(_read_idx_pair, transpose=True)))
            alts.append(Source((EMNIST_ZIP,), _read_emnist_zip(config, split)))
            splits[split] = tuple(alts)
        register(name, splits, num_classes=classes, image_shape=(28, 28, 1), description=desc, mean=mean, std=std,
                 downloads=(EMNIST_ZIP,), homepage="https://www.nist.gov/itl/products-and-services/emnist-dataset",
                 license="none stated (NIST SD 19)")


def _cifar10():
    splits = {}
    for split, batches in (("train", formats.CIFAR_TRAIN_BATCHES), ("test", formats.CIFAR_TEST_BATCHES)):
        from_tar, from_dir = _cifar(batches)
        dir_files = tuple(
            FileSpec(f"cifar10/{formats.CIFAR_DIR}/{b}", None,
                     "f53d8d457504f7cff4ea9e021afcf0e0ad8e24a91f3fc42091b8adef61157831" if b == "test_batch" else None,
                     CIFAR_BATCH_MD5[b], (), "torchvision CIFAR10 (md5)")
            for b in batches
        )
        splits[split] = (Source((CIFAR_TGZ,), from_tar), Source(dir_files, from_dir))
    register("cifar10", splits, num_classes=10, image_shape=(32, 32, 3),
             description="CIFAR-10 32x32 colour images, 10 classes (Krizhevsky)", downloads=(CIFAR_TGZ,),
             homepage="https://www.cs.toronto.edu/~kriz/cifar.html", license="none stated")


def _svhn():
    svhn = _table("svhn_cropped", SVHN, ("http://ufldl.stanford.edu/housenumbers/",),
                  _TFDS.format("svhn_cropped") + "; torchvision SVHN (md5)")
    register("svhn_cropped",
             {s: (Source((svhn[f"{s}_32x32.mat"],), lambda p: formats.read_svhn_mat(p[0])),) for s in ("train", "test", "extra")},
             num_classes=10, image_shape=(32, 32, 3),
             description="SVHN cropped house-number digits 32x32 colour (Netzer et al.)",
             downloads=(svhn["train_32x32.mat"], svhn["test_32x32.mat"]),
             homepage="http://ufldl.stanford.edu/housenumbers/", license="non-commercial use only")


def _omniglot():
    omni = _table("omniglot", OMNIGLOT, (OMNIGLOT_URL,), _TFDS.format("omniglot") + "; torchvision Omniglot (md5)")
    onpz = _table("omniglot", OMNIGLOT_NPZ, (), "data MANIFEST (npz conversion of the official PNGs)")
    zip_read = _inverted(formats.read_omniglot_zip)
    npz_read = _inverted(formats.read_omniglot_npz)
    register(
        "omniglot",
        {
            "train": (Source((onpz["omniglot_background.npz"],), npz_read), Source((omni["images_background.zip"],), zip_read)),
            "test": (Source((onpz["omniglot_evaluation.npz"],), npz_read), Source((omni["images_evaluation.zip"],), zip_read)),
            "small1": (Source((omni["images_background_small1.zip"],), zip_read),),
            "small2": (Source((omni["images_background_small2.zip"],), zip_read),),
        },
        num_classes=964, image_shape=(105, 105, 1),
        description="Omniglot handwritten characters of 50 alphabets, 105x105 (Lake et al.); ink = 255",
        mean=0.0779, std=0.2681, downloads=tuple(omni.values()),
        homepage="https://github.com/brendenlake/omniglot", license="MIT",
        split_classes={"train": 964, "test": 659, "small1": 136, "small2": 156})


def _generated():
    register("digits", {s: _builtin(builtin.digits, s) for s in ("train", "test")}, num_classes=10, image_shape=(8, 8, 1),
             description="scikit-learn's bundled 8x8 digits (1,797 images; built in)", mean=0.3052, std=0.3759,
             homepage="https://scikit-learn.org/stable/modules/generated/sklearn.datasets.load_digits.html",
             license="BSD-3 (scikit-learn)")
    register("random", {s: _builtin(builtin.random_task, s) for s in ("train", "test")}, num_classes=10,
             image_shape=(28, 28, 1), description="20 fixed Gaussian 28x28 images with random labels (memorisation; built in)",
             mean=0.0, std=1.0)
    register("sum", {s: _builtin(builtin.sum_task, s) for s in ("train", "test")}, num_classes=2, image_shape=(28, 28, 1),
             description="28x28 truncated-normal images with random mean; label = [sum >= 0] (built in)", mean=0.0, std=1.0)


for _block in (_mnist, _fashion_mnist, _kmnist, _emnist, _cifar10, _svhn, _omniglot, _generated):
    _block()
BUILTIN_NAMES: tuple[str, ...] = tuple(REGISTRY)


# --- split names and held-out partitions -----------------------------------------------------

_SPLIT_RE = re.compile(r"^\s*([A-Za-z0-9_]+)\s*(?:\[\s*([^\]:]*)\s*:\s*([^\]:]*)\s*\])?\s*$")
PARTITION_SEED = 0


def parse_split(split: str) -> tuple[str, str | None, str | None]:
    """``"test[:80%]"`` -> ``("test", None, "80%")``; ``"train"`` -> ``("train", None, None)``."""
    m = _SPLIT_RE.match(split or "")
    if not m:
        raise DataError(f"bad split '{split}': use NAME, NAME[a:b] with a, b integers or percentages, e.g. 'test[:80%]'")
    return m.group(1), (m.group(2) or None), (m.group(3) or None)


def _bound(text: str | None, n: int, default: int, split: str) -> int:
    if text is None:
        return default
    try:
        if text.endswith("%"):
            pct = float(text[:-1])
            if not 0 <= pct <= 100:
                raise ValueError
            return int(round(n * pct / 100))
        value = int(text)
    except ValueError:
        raise DataError(f"bad split '{split}': '{text}' is not an integer or a percentage in [0, 100]") from None
    return max(0, min(n, value if value >= 0 else n + value))


def partition(n: int, split: str) -> np.ndarray | None:
    """Indices selected by the slice of ``split`` (``None`` when it has none).

    Slices index a fixed permutation (seed 0) of the split, so ``test[:80%]`` and ``test[80%:]``
    are disjoint random halves even when the files are sorted by class; indices come back sorted.
    """
    _, lo, hi = parse_split(split)
    if lo is None and hi is None and "[" not in split:
        return None
    a, b = _bound(lo, n, 0, split), _bound(hi, n, n, split)
    if b <= a:
        raise DataError(f"split '{split}' selects no examples out of {n}")
    return np.sort(np.random.default_rng(PARTITION_SEED).permutation(n)[a:b])


# --- loading ---------------------------------------------------------------------------------


def _present(source: Source, root: Path) -> bool:
    return all((root / f.path).is_file() for f in source.files)


def available_splits(info: DatasetInfo, root: Path) -> list[str]:
    return [s for s, sources in info.splits.items() if any(_present(src, root) for src in sources)]


def _missing_error(info: DatasetInfo, split: str, root: Path) -> DataError:
    first = info.splits[split][0]
    missing = next(f for f in first.files if not (root / f.path).is_file())
    here = available_splits(info, root)
    msg = (f"{info.name}: split '{split}' is not available: file {root / missing.path} missing; "
           f"run `vsml data download {info.name}` or set VSML_DATA_DIR (now {root}).")
    if here:
        msg += (f" Available here: {', '.join(here)}; for a held-out partition of one of them use e.g. "
                f"'{here[-1]}[:80%]' and '{here[-1]}[80%:]'.")
    return DataError(msg)


@functools.lru_cache(maxsize=16)
def _read_cached(source: Source, what: str, image_shape: tuple, paths: tuple[str, ...], stamps: tuple) -> tuple[np.ndarray, np.ndarray]:
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
        raise DataError(f"{what}: examples of shape {list(images.shape[1:])}, but the dataset is registered with "
                        f"image_shape {list(image_shape)}")
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
            hint = (f"Delete it and run `vsml data download {info.name}`, or, for a non-canonical copy, {SKIP_HINT}."
                    if info.downloads else f"Replace it with the canonical file, or, for a non-canonical copy, {SKIP_HINT}.")
            for spec, path in zip(source.files, paths):
                check_file(spec, Path(path), hint=hint)
        try:
            stamps = tuple(file_stamp(os.stat(p)) for p in paths)
            images, labels = _read_cached(source, f"{info.name}/{base}", info.image_shape, paths, stamps)
        except OSError as e:
            raise DataError(f"{info.name}: cannot read {e.filename or paths}: {e.strerror or e}") from None
    num_classes = info.classes_in(base)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"{info.name}/{base}: labels span [{labels.min()}, {labels.max()}], expected [0, {num_classes})")
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
    return DatasetStatus(info.name, info.description, tuple(available_splits(info, root)), verified, size, tuple(problems))
