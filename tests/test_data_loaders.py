"""Loaders on the real files (skipped when absent) and on small files in the exact CIFAR/SVHN formats."""

import gzip
import pickle
import tarfile
import zipfile

import numpy as np
import pytest
from _data_support import need_real

from vsml.data import DataError, get_info, load
from vsml.data.registry import partition


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("VSML_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "vsml-cache"))


@pytest.mark.parametrize(
    "name, split, n, shape, classes",
    [
        ("mnist", "train", 60000, (28, 28, 1), 10),
        ("mnist", "test", 10000, (28, 28, 1), 10),
        ("fashion_mnist", "train", 60000, (28, 28, 1), 10),
        ("fashion_mnist", "test", 10000, (28, 28, 1), 10),
        ("kmnist", "test", 10000, (28, 28, 1), 10),
        ("emnist", "test", 116323, (28, 28, 1), 62),
        ("emnist/mnist", "test", 10000, (28, 28, 1), 10),
        ("omniglot", "train", 19280, (105, 105, 1), 964),
        ("omniglot", "test", 13180, (105, 105, 1), 659),
    ],
)
def test_real_loaders(name, split, n, shape, classes):
    root = need_real(*(f.path for f in get_info(name).splits[split][0].files))
    d = load(name, split, data_dir=root)
    assert d.images.shape == (n, *shape) and d.images.dtype == np.uint8
    assert d.labels.shape == (n,) and d.labels.dtype == np.int32
    assert d.labels.min() == 0 and d.labels.max() == classes - 1
    assert d.num_classes == classes
    if d.mean is not None:  # documented statistics (of the train split where there is one) fit the data
        x = d.images[:: max(1, n // 5000)].astype(np.float32) / 255.0
        mean, std = float(x.mean()), float(x.std())
        assert abs(mean - d.mean) < 0.015 and abs(std - d.std) < 0.015, (mean, std)


def test_known_values():
    root = need_real("mnist/train-labels-idx1-ubyte.gz", "mnist/train-images-idx3-ubyte.gz")
    train = load("mnist", "train", data_dir=root)
    assert train.labels[:5].tolist() == [5, 0, 4, 1, 9]
    assert train.images[0].sum() == 27525  # the first "5"
    assert train.images[0, 14, 14, 0] == 240 and train.images[0, 5, 21, 0] == 255 and train.images[0, 0, 0, 0] == 0
    root = need_real("fashion_mnist/t10k-labels-idx1-ubyte.gz", "fashion_mnist/t10k-images-idx3-ubyte.gz")
    assert load("fashion_mnist", "test", data_dir=root).labels[:3].tolist() == [9, 2, 1]


def test_kmnist_idx_and_npz_agree(tmp_path):
    root = need_real("kmnist/t10k-images-idx3-ubyte.gz", "kmnist/kmnist-test-imgs.npz", "kmnist/kmnist-test-labels.npz")
    via_idx = load("kmnist", "test", data_dir=root)
    (tmp_path / "kmnist").mkdir()
    for f in ("kmnist-test-imgs.npz", "kmnist-test-labels.npz"):
        (tmp_path / "kmnist" / f).symlink_to(root / "kmnist" / f)
    via_npz = load("kmnist", "test", data_dir=tmp_path)  # falls back to the npz distribution
    np.testing.assert_array_equal(via_idx.images, via_npz.images)
    np.testing.assert_array_equal(via_idx.labels, via_npz.labels)


def test_emnist_is_upright():
    root = need_real("emnist/emnist-mnist-test-images-idx3-ubyte.gz", "mnist/t10k-images-idx3-ubyte.gz")
    emnist = load("emnist/mnist", "test", data_dir=root).images[..., 0].astype(float)
    mnist = load("mnist", "test", data_dir=root).images[..., 0].astype(float)
    e_labels = load("emnist/mnist", "test", data_dir=root).labels
    m_labels = load("mnist", "test", data_dir=root).labels
    upright, transposed = [], []
    for digit in range(10):  # per-class mean images: loaded EMNIST matches MNIST, its transpose does not
        e, m = emnist[e_labels == digit].mean(0), mnist[m_labels == digit].mean(0)
        upright.append(np.corrcoef(e.ravel(), m.ravel())[0, 1])
        transposed.append(np.corrcoef(e.T.ravel(), m.ravel())[0, 1])
    assert upright[1] > 0.9 > 0.3 > transposed[1]  # a "1" is a vertical stroke
    assert np.mean(upright) > np.mean(transposed) + 0.2, (upright, transposed)


def test_omniglot_zip_matches_npz():
    root = need_real("omniglot/images_background_small1.zip", "omniglot/omniglot_background.npz")
    small = load("omniglot", "small1", data_dir=root)
    assert small.images.shape == (2720, 105, 105, 1) and small.labels.max() == 135
    z = np.load(root / "omniglot/omniglot_background.npz")
    names = sorted(
        n for n in zipfile.ZipFile(root / "omniglot/images_background_small1.zip").namelist() if n.endswith(".png")
    )
    key = {(c, f): i for i, (c, f) in enumerate(zip(z["character_names"][z["labels"]], z["filenames"]))}
    for i in (0, 1000, 2719):
        parts = names[i].split("/")
        j = key[(f"{parts[1]}/{parts[2]}", parts[3])]
        np.testing.assert_array_equal(small.images[i, ..., 0], 255 - z["images"][j])
    # ink is bright after loading (background 0), as in MNIST
    assert np.median(small.images) == 0


def test_builtin_datasets_are_fixed():
    d_train, d_test = load("digits", "train"), load("digits", "test")
    assert len(d_train) == 1347 and len(d_test) == 450 and d_train.images.shape[1:] == (8, 8, 1)
    assert d_train.images.dtype == np.float32 and 0 <= d_train.images.min() and d_train.images.max() <= 1
    from sklearn.datasets import load_digits

    all_imgs = {tuple(x.ravel()) for x in (load_digits().images / 16).astype(np.float32)}
    assert {tuple(x.ravel()) for x in d_test.images} <= all_imgs
    r = load("random", "train")
    assert r.images.shape == (20, 28, 28, 1)
    for split in ("train", "test"):  # every class twice, so 10-way episodes (e.g. the LODO mixture) work
        np.testing.assert_array_equal(np.bincount(load("random", split).labels, minlength=10), np.full(10, 2))
    np.testing.assert_array_equal(r.images, load("random", "train").images)
    assert not np.allclose(r.images, load("random", "test").images)
    assert abs(float(r.images.mean())) < 0.05 and abs(float(r.images.std()) - 1) < 0.05
    s = load("sum", "train")
    assert s.images.shape == (10000, 28, 28, 1) and set(np.unique(s.labels)) == {0, 1}
    np.testing.assert_array_equal(s.labels, (s.images.sum((1, 2, 3)) >= 0).astype(np.int32))
    means = s.images.mean((1, 2, 3))
    assert -1.1 < means.min() < -0.9 and 0.9 < means.max() < 1.1 and np.abs(s.images).max() <= 3.0 + 1e-5
    # fixed seeds: a known value
    assert round(float(r.images[0, 0, 0, 0]), 4) == round(float(np.random.default_rng(1).standard_normal()), 4)


def test_partitions_are_disjoint_and_fixed():
    a, b = partition(1000, "test[:80%]"), partition(1000, "test[80%:]")
    assert len(a) == 800 and len(b) == 200 and not set(a) & set(b)
    np.testing.assert_array_equal(a, partition(1000, "test[:80%]"))
    assert partition(1000, "test") is None and len(partition(1000, "train[100:]")) == 900
    d = load("sum", "test[:25%]")
    assert len(d) == 500
    with pytest.raises(DataError, match="bad split"):
        partition(10, "test[:abc]")
    with pytest.raises(DataError, match="selects no examples"):
        partition(10, "test[50%:10%]")


def test_clear_errors(tmp_path):
    with pytest.raises(DataError, match="Did you mean 'mnist'"):
        load("mnsit")
    with pytest.raises(
        DataError,
        match=r"file .*train-images-idx3-ubyte.gz missing; run `vsml data download mnist` or set VSML_DATA_DIR",
    ):
        load("mnist", "train", data_dir=tmp_path)
    with pytest.raises(DataError, match="no split 'validation'"):
        load("mnist", "validation", data_dir=tmp_path)
    root = need_real("emnist/emnist-byclass-test-images-idx3-ubyte.gz")
    with pytest.raises(DataError, match=r"split 'train' is not available.*Available here: test.*test\[:80%\]"):
        load("emnist", "train", data_dir=root)


# --- CIFAR-10 and SVHN: small files in the exact distribution formats ------------------------


def _cifar_batch(n, seed):
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": b"testing",
        b"labels": rng.integers(0, 10, n).tolist(),
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [b"x.png"] * n,
    }


@pytest.mark.parametrize("packed", [False, True])
def test_cifar10_python_batches(tmp_path, packed):
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {f"data_batch_{i}": _cifar_batch(7, i) for i in range(1, 6)} | {"test_batch": _cifar_batch(5, 9)}
    for name, batch in batches.items():
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    if packed:
        with tarfile.open(tmp_path / "cifar10" / "cifar-10-python.tar.gz", "w:gz") as tf:
            tf.add(folder, arcname="cifar-10-batches-py")
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()
    with pytest.raises(DataError, match="mismatch"):  # not the canonical files
        load("cifar10", "train", data_dir=tmp_path)
    train = load("cifar10", "train", data_dir=tmp_path, verify=False)
    test = load("cifar10", "test", data_dir=tmp_path, verify=False)
    assert train.images.shape == (35, 32, 32, 3) and test.images.shape == (5, 32, 32, 3)
    assert train.images.dtype == np.uint8 and train.labels.dtype == np.int32
    raw = batches["data_batch_1"][b"data"][0]
    assert train.images[0, 0, 0].tolist() == [raw[0], raw[1024], raw[2048]]  # R, G, B planes
    assert train.images[0, 1, 2, 0] == raw[32 + 2]  # row-major
    assert train.labels[7:14].tolist() == batches["data_batch_2"][b"labels"]


def test_cifar_refuses_code_in_pickles(tmp_path):
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with pytest.raises(DataError, match="refusing to load"):
        load("cifar10", "test", data_dir=tmp_path, verify=False)


def test_svhn_mat(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (32, 32, 3, 6), dtype=np.uint8)
    y = np.array([[10], [1], [2], [9], [10], [5]], np.uint8)
    (tmp_path / "svhn_cropped").mkdir()
    scipy_io.savemat(tmp_path / "svhn_cropped" / "test_32x32.mat", {"X": x, "y": y}, format="5")
    d = load("svhn_cropped", "test", data_dir=tmp_path, verify=False)
    assert d.images.shape == (6, 32, 32, 3) and d.images.dtype == np.uint8
    assert d.labels.tolist() == [0, 1, 2, 9, 0, 5]
    np.testing.assert_array_equal(d.images[3], x[:, :, :, 3])


def test_idx_format_errors(tmp_path):
    (tmp_path / "mnist").mkdir()
    for f in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (tmp_path / "mnist" / f).write_bytes(
            gzip.compress(b"\x00\x00\x08\x03" + (2).to_bytes(4, "big") * 3 + b"\x00" * 3)
        )
    with pytest.raises(DataError, match="IDX header says"):
        load("mnist", "test", data_dir=tmp_path, verify=False)
    (tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(DataError, match="not valid gzip"):
        load("mnist", "test", data_dir=tmp_path, verify=False)
