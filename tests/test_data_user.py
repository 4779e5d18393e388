"""Datasets of your own: `register`, and .npz / .csv / image folders by path (tiny files in tmp_path)."""

import hashlib
import os
import zipfile

import jax
import numpy as np
import pytest
from PIL import Image

from vsml.data import (
    DataError,
    DatasetSpec,
    EpisodeSampler,
    FileSpec,
    SamplerConfig,
    get_info,
    load,
    names,
    register,
    register_file,
    registry,
    unregister,
    userdata,
)
from vsml.data.cli import main as data_main

BUILTINS = [
    "mnist",
    "fashion_mnist",
    "kmnist",
    "emnist",
    "emnist/mnist",
    "cifar10",
    "svhn_cropped",
    "omniglot",
    "digits",
    "random",
    "sum",
]


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Own cache (fingerprints), cwd = tmp_path (relative paths), and the registry restored afterwards."""
    monkeypatch.setenv("VSML_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    saved = dict(registry.REGISTRY)
    yield
    registry.REGISTRY.clear()
    registry.REGISTRY.update(saved)


def _blobs(n_per_class=10, classes=3, shape=(6, 6), seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), n_per_class)
    images = (rng.uniform(0, 60, (len(labels), *shape)) + 60 * labels.reshape(-1, *[1] * len(shape))).astype(np.uint8)
    return images, labels


def _png_folder(root, classes=("b", "a"), n=5, size=(7, 9), mode="L", seed=0):
    rng = np.random.default_rng(seed)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            shape = size if mode == "L" else (*size, 3)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(root / c / f"{i}.png")


# --- register -------------------------------------------------------------------------------


def test_builtins_unchanged_and_registered_first():
    assert registry.BUILTIN_NAMES == tuple(BUILTINS) and names()[: len(BUILTINS)] == BUILTINS
    assert get_info("svhn").name == "svhn_cropped" and get_info("emnist/mnist").num_classes == 10
    assert get_info("emnist/byclass").name == "emnist"  # aliases win over the path rule too
    assert all(get_info(n).path is None for n in BUILTINS)


def test_register_load_clash_and_unknown_names():
    images, labels = _blobs()
    info = register(
        "blobs",
        {"train": (images, labels), "test": lambda: (images[:9], labels[:9])},
        num_classes=3,
        image_shape=(6, 6),
        description="test blobs",
    )
    assert info.image_shape == (6, 6, 1) and "blobs" in names()
    d = load("blobs", "test")
    assert d.images.shape == (9, 6, 6, 1) and d.images.dtype == np.uint8 and d.labels.dtype == np.int32
    assert len(load("blobs", "train[:50%]")) == 15
    with pytest.raises(DataError, match=r"'blobs' is already registered \(test blobs\); pass overwrite=True"):
        register("blobs", {"train": (images, labels)}, num_classes=3, image_shape=(6, 6, 1))
    with pytest.raises(DataError, match="'mnist' is already registered"):
        register("mnist", {"train": (images, labels)}, num_classes=3, image_shape=(6, 6, 1))
    register("blobs", {"all": (images, labels)}, num_classes=3, image_shape=(6, 6, 1), overwrite=True)
    assert list(get_info("blobs").splits) == ["all"] and len(load("blobs", "all")) == 30  # no stale cache
    with pytest.raises(
        DataError, match=r"unknown dataset 'blosb'\. Did you mean 'blobs'\?.*Known datasets: .*sum, blobs\."
    ):
        load("blosb")
    with pytest.raises(DataError, match="no '.'"):
        register("my.data", {"train": (images, labels)}, num_classes=3, image_shape=(6, 6, 1))
    with pytest.raises(DataError, match="num_classes must be an integer >= 2"):
        register("x", {"train": (images, labels)}, num_classes=1, image_shape=(6, 6, 1))
    with pytest.raises(DataError, match="image_shape must be"):
        register("x", {"train": (images, labels)}, num_classes=3, image_shape=(1, 2, 3, 4))
    with pytest.raises(DataError, match="both mean and std"):
        register("x", {"train": (images, labels)}, num_classes=3, image_shape=(6, 6), mean=0.5)
    unregister("blobs")
    assert "blobs" not in names()
    with pytest.raises(DataError, match="not registered"):
        unregister("blobs")


def test_registered_readers_are_validated():
    images, labels = _blobs()

    def broken():
        raise RuntimeError("boom")

    register(
        "x",
        {
            "wrong_shape": (images[:, :5, :5], labels),
            "short": (images, labels[:5]),
            "broken": broken,
            "big_label": (images, labels + 1),
            "nan": (np.full((30, 6, 6), np.nan), labels),
        },
        num_classes=3,
        image_shape=(6, 6, 1),
    )
    with pytest.raises(
        DataError,
        match=r"x/wrong_shape: examples of shape \[5, 5, 1\], but the dataset is registered "
        r"with image_shape \[6, 6, 1\]",
    ):
        load("x", "wrong_shape")
    with pytest.raises(DataError, match="x/short: 30 examples but 5 labels"):
        load("x", "short")
    with pytest.raises(DataError, match=r"x/broken: reading failed \(RuntimeError: boom\)") as e:
        load("x", "broken")
    assert isinstance(e.value.__cause__, RuntimeError)  # the reader's traceback is kept as the cause
    with pytest.raises(DataError, match=r"labels span \[1, 3\], expected \[0, 3\)"):
        load("x", "big_label")
    with pytest.raises(DataError, match=r"x/nan: 30 example\(s\) hold NaN or infinite values"):
        load("x", "nan")


def test_register_with_checksummed_files(tmp_path):
    images, labels = _blobs()
    (tmp_path / "data/mine").mkdir(parents=True)
    path = tmp_path / "data/mine/blobs.npz"
    np.savez(path, x=images, y=labels)
    raw = path.read_bytes()
    spec = FileSpec("mine/blobs.npz", len(raw), hashlib.sha256(raw).hexdigest(), source="my notes")

    def read(paths):
        with np.load(paths[0]) as z:
            return z["x"], z["y"]

    register("mine", {"train": read}, files={"train": [spec]}, num_classes=3, image_shape=(6, 6, 1))
    assert len(load("mine", "train", data_dir=tmp_path / "data")) == 30
    with pytest.raises(DataError, match=r"file .*mine/blobs.npz missing"):
        load("mine", "train", data_dir=tmp_path / "elsewhere")
    path.write_bytes(raw[:-1] + bytes([raw[-1] ^ 1]))
    with pytest.raises(
        DataError, match=r"blobs.npz is corrupt[\s\S]*sha256 mismatch[\s\S]*my notes[\s\S]*verify=False"
    ):
        load("mine", "train", data_dir=tmp_path / "data")


def test_plugin_modules_register_for_every_process(tmp_path, monkeypatch, capsys):
    (tmp_path / "my_datasets.py").write_text(
        "import numpy as np\nfrom vsml.data import register\n"
        "register('plugged', {'train': (np.zeros((4, 3)), np.array([0, 1, 0, 1]))}, num_classes=2, image_shape=(3,),"
        " description='from a plugin')\n"
    )
    monkeypatch.setenv("VSML_DATASETS", str(tmp_path / "my_datasets.py"))
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    assert "plugged" in names() and load("plugged").images.shape == (4, 3)
    assert data_main(["list", "--data-dir", str(tmp_path)]) == 0
    assert "plugged" in capsys.readouterr().out
    monkeypatch.setenv("VSML_DATASETS", "no_such_module_xyz")
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    with pytest.raises(DataError, match="VSML_DATASETS: cannot import no_such_module_xyz"):
        names()


# --- files by path --------------------------------------------------------------------------


def test_path_rule():
    for p in ("x.npz", "data/x", "./folder", "~/x.csv", "/abs/path", "t.csv?label=y"):
        assert userdata.is_path(p)
    for n in ("mnist", "emnist/mnist", "my_data"):
        assert userdata.valid_name(n)
    assert not userdata.is_path("mnist") and not userdata.valid_name("x.npz")
    os.mkdir("photos")
    with pytest.raises(DataError, match=r"unknown dataset 'photos'.*write './photos' to read it"):
        load("photos")
    with pytest.raises(
        DataError, match=r"emnist/mnsit: no such file or directory.*Did you mean the registered dataset 'emnist/mnist'"
    ):
        load("emnist/mnsit")


def test_npz_images_without_splits(tmp_path):
    images, labels = _blobs(n_per_class=10)
    np.savez("blobs.npz", images=images, labels=labels)
    info = get_info("blobs.npz")
    assert list(info.splits) == ["train", "test", "all"] and info.num_classes == 3 and info.image_shape == (6, 6, 1)
    train, test, full = load("blobs.npz", "train"), load("blobs.npz", "test"), load("blobs.npz", "all")
    assert (len(train), len(test), len(full)) == (24, 6, 30)
    assert np.bincount(test.labels).tolist() == [2, 2, 2]  # stratified: 20% of each class
    assert train.images.dtype == np.uint8 and train.mean is None and len(train.fingerprint) == 64
    # disjoint, together all examples, fixed
    rows = lambda d: {x.tobytes() for x in d.images}  # noqa: E731
    assert not rows(train) & rows(test) and rows(train) | rows(test) == rows(full)
    np.testing.assert_array_equal(load(str(tmp_path / "blobs.npz"), "test").images, test.images)
    half = load("blobs.npz", "test[:50%]")
    assert len(half) == 3 and rows(half) <= rows(test)


def test_npz_features_with_splits_and_string_labels():
    rng = np.random.default_rng(1)
    np.savez(
        "feats.npz",
        train_images=rng.normal(size=(12, 5)),
        train_labels=np.array(list("abc") * 4),
        test_images=rng.normal(size=(6, 5)).astype(np.float32),
        test_labels=np.array(list("cab") * 2),
    )
    info = get_info("./feats.npz")
    assert list(info.splits) == ["train", "test"] and info.image_shape == (5,) and info.class_names == ("a", "b", "c")
    train, test = load("./feats.npz", "train"), load("./feats.npz", "test")
    assert train.images.shape == (12, 5) and train.images.dtype == np.float32
    assert train.labels[:3].tolist() == [0, 1, 2] and test.labels[:3].tolist() == [2, 0, 1]
    with pytest.raises(DataError, match="has no split 'all'; its splits are: train, test"):
        load("./feats.npz", "all")


def test_folder_of_pngs(tmp_path):
    _png_folder(tmp_path / "flat", classes=("dog", "cat"), n=5)
    info = get_info("./flat")
    assert info.class_names == ("cat", "dog") and info.image_shape == (7, 9, 1) and info.num_classes == 2
    assert np.bincount(load("./flat", "all").labels).tolist() == [5, 5]
    first = np.asarray(Image.open(tmp_path / "flat/cat/0.png"))
    np.testing.assert_array_equal(load("./flat", "all").images[0, ..., 0], first)  # sorted classes, sorted files
    # split folders; a colour image makes every image RGB; classes are the union over splits
    _png_folder(tmp_path / "split/train", classes=("a", "b"), n=3)
    _png_folder(tmp_path / "split/test", classes=("a", "c"), n=2, mode="RGB")
    info = get_info("split/")
    assert list(info.splits) == ["test", "train"] and info.class_names == ("a", "b", "c")
    train, test = load("split/", "train"), load("split/", "test")
    assert train.images.shape == (6, 7, 9, 3) and test.labels.tolist() == [0, 0, 2, 2]
    assert (train.images[..., 0] == train.images[..., 2]).all()  # grayscale images replicated to RGB
    # different sizes: a clear error, or resize on load
    _png_folder(tmp_path / "sizes", classes=("cat", "dog"), n=5)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "sizes/cat/odd.png")
    with pytest.raises(DataError, match=r"2 different sizes, e\.g\. 7x9 .*; 4x4 .*odd\.png.*\./sizes\?size=7x9"):
        load("./sizes", "all")
    resized = load("./sizes?size=5x6", "all")
    assert resized.images.shape == (11, 5, 6, 1)


def test_csv_numeric_string_and_custom_labels():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(20, 3))
    with open("num.csv", "w") as f:  # no header, integer labels in the last column
        for row, y in zip(x, np.arange(20) % 4):
            f.write(",".join(f"{v:.6f}" for v in row) + f",{y}\n")
    d = load("num.csv", "all")
    assert d.images.shape == (20, 3) and d.images.dtype == np.float32 and d.num_classes == 4
    np.testing.assert_allclose(d.images, x, atol=1e-5)
    assert d.labels.tolist() == (np.arange(20) % 4).tolist() and d.class_names == ()
    with open("str.csv", "w") as f:  # header, a 'Label' column first, string classes, ';' separated
        f.write("Label;a;b\n" + "".join(f"{['pear', 'apple'][i % 2]};{i};{i * 2}\n" for i in range(10)))
    d = load("str.csv", "all")
    assert d.class_names == ("apple", "pear") and d.labels[:2].tolist() == [1, 0]
    np.testing.assert_array_equal(d.images[:, 1], 2 * d.images[:, 0])
    with open("custom.csv", "w") as f:
        f.write("id,species,w\n" + "".join(f"{i},{'xy'[i % 2]},{i / 10}\n" for i in range(10)))
    d = load("custom.csv?label=species", "train")
    assert d.images.shape == (8, 2) and get_info("custom.csv?label=species").class_names == ("x", "y")
    assert load("custom.csv?label=1", "all").class_names == ("x", "y")  # a column index works too
    with pytest.raises(DataError, match="no label column 'kind'; columns: id, species, w"):
        load("custom.csv?label=kind")
    info = register_file("custom", "custom.csv", label="species", description="my table")
    assert info.path == "custom.csv?label=species" and load("custom", "all").images.shape == (10, 2)
    assert "my table" in get_info("custom").description


# --- episodes -------------------------------------------------------------------------------


def _check_episodes(sampler, steps, input_shape, classes):
    xs, ys = sampler.sample(jax.random.PRNGKey(0), 8)
    assert xs.shape == (8, steps, 1, *input_shape) and ys.shape == (8, steps, 1)
    assert 0 <= int(ys.min()) and int(ys.max()) < classes and bool(np.isfinite(np.asarray(xs)).all())
    return np.asarray(xs), np.asarray(ys)


def test_sampler_on_npz_and_folder(tmp_path):
    images, labels = _blobs(n_per_class=20)
    np.savez("blobs.npz", images=images, labels=labels)
    _png_folder(tmp_path / "pics", classes=("a", "b", "c"), n=6)
    mix = EpisodeSampler(
        SamplerConfig(
            datasets=(DatasetSpec("blobs.npz", "train"), DatasetSpec("./pics", "train")),
            steps=30,
            image_size=(5, 5),
            flatten=True,
        )
    )
    _check_episodes(mix, 30, (25,), 3)
    s = EpisodeSampler(SamplerConfig(datasets=("blobs.npz",), steps=200))
    xs, _ = _check_episodes(s, 200, (6, 6, 1), 3)
    assert abs(xs.mean()) < 0.15 and abs(xs.std() - 1) < 0.15  # normalised with the split's statistics


def test_sampler_on_tables(tmp_path):
    rng = np.random.default_rng(3)
    with open("t.csv", "w") as f:  # features in very different units
        f.write("a,b,c,label\n")
        for i in range(60):
            f.write(f"{rng.normal(5, 0.1):.4f},{rng.normal(-300, 50):.2f},{7},{'pqr'[i % 3]}\n")
    s = EpisodeSampler(SamplerConfig(datasets=(DatasetSpec("t.csv", "train"),), steps=300, flatten=True))
    assert s.input_shape == (3,) and s.num_classes == 3
    xs, _ = _check_episodes(s, 300, (3,), 3)
    feats = xs.reshape(-1, 3)
    np.testing.assert_allclose(feats[:, :2].mean(0), 0, atol=0.2)  # per-feature normalisation
    np.testing.assert_allclose(feats[:, :2].std(0), 1, atol=0.2)
    assert (feats[:, 2] == 0).all()  # a constant feature becomes 0
    proj = EpisodeSampler(
        SamplerConfig(
            datasets=("t.csv",),
            steps=20,
            projection="episode",
            projection_dim=6,
            permutation="episode",
            num_classes=2,
            permute_classes=True,
        )
    )
    xs, ys = _check_episodes(proj, 20, (6,), 2)
    assert not np.allclose(xs[0], xs[1])
    with pytest.raises(DataError, match=r"holds feature vectors \[N, 3\] \(a table\), not images: image_size"):
        EpisodeSampler(SamplerConfig(datasets=("t.csv",), steps=5, image_size=(4, 4)))


def test_tables_are_standardised_with_training_split_statistics(tmp_path):
    from vsml.data.episodes import feature_statistics

    rng = np.random.default_rng(4)
    train = rng.normal([3.0, -50.0], [0.5, 8.0], size=(40, 2)).astype(np.float32)
    test = (train[:10] * 2 + 100).astype(np.float32)  # another location and scale: must not be re-centred
    np.savez(
        "split.npz", train_images=train, train_labels=np.arange(40) % 2, test_images=test, test_labels=np.arange(10) % 2
    )
    mean, std, source = feature_statistics("split.npz", "test")
    assert source == "train"
    np.testing.assert_allclose(mean, train.mean(0), rtol=1e-5)
    np.testing.assert_allclose(std, train.std(0), rtol=1e-4)
    s = EpisodeSampler(SamplerConfig(datasets=(DatasetSpec("split.npz", "test"),), steps=30, flatten=True))
    seen = np.asarray(s.sample(jax.random.PRNGKey(0), 1)[0]).reshape(-1, 2)
    want = (test - train.mean(0, dtype=np.float64)) / train.std(0, dtype=np.float64)  # far from mean 0, std 1
    assert np.abs(seen[:, None] - want[None]).max(-1).min(1).max() < 1e-3  # every row drawn is a row of `want`
    # a file without splits: its fixed 80 % train partition gives the statistics of train, test and all
    with open("plain.csv", "w") as f:
        f.write("a,b,label\n")
        for i in range(50):
            f.write(f"{rng.normal(0, 1):.4f},{rng.normal(10, 3):.4f},{i % 2}\n")
    for split in ("test", "all"):
        mean, std, source = feature_statistics("plain.csv", split)
        tr = load("plain.csv", "train").images
        assert source == "train" and np.allclose(mean, tr.mean(0)) and np.allclose(std, tr.std(0), rtol=1e-4)


# --- errors ---------------------------------------------------------------------------------


def _write(name, content):
    with open(name, "wb") as f:
        f.write(content.encode() if isinstance(content, str) else content)
    return name


def _npz(name, **arrays):
    np.savez(name, **arrays)
    return name


def _truncated_npz():
    _npz("full.npz", images=np.zeros((50, 8, 8), np.uint8), labels=np.arange(50) % 2)
    return _write("trunc.npz", open("full.npz", "rb").read()[:300])


def _bad_member_npz():
    _npz("ok.npz", images=np.zeros((50, 8, 8), np.uint8), labels=np.arange(50) % 2)
    data = bytearray(open("ok.npz", "rb").read())
    with zipfile.ZipFile("ok.npz") as z:
        info = z.getinfo("images.npy")
    data[info.header_offset + 30 + len(info.filename) + 200] ^= 0xFF  # corrupt the member's bytes (CRC fails)
    return _write("badcrc.npz", bytes(data))


def _png():
    import io

    buf = io.BytesIO()
    Image.new("L", (3, 3)).save(buf, "PNG")
    return buf.getvalue()


def _folder(name, files):
    os.makedirs(name)
    for rel, data in files.items():
        os.makedirs(os.path.dirname(os.path.join(name, rel)), exist_ok=True)
        _write(os.path.join(name, rel), data)
    return f"./{name}"


X = np.zeros((6, 4, 4), np.uint8)
Y = np.array([0, 1, 0, 1, 0, 1])
ERRORS = {
    "missing file": (lambda: "nope/data.npz", r"nope/data.npz: no such file or directory"),
    "unknown extension": (lambda: _write("data.txt", "1,2"), r"data.txt: unknown data file type '.txt'.*\.npz.*\.csv"),
    "npy instead of npz": (
        lambda: _write("one.npy", b"\x93NUMPY"),
        r"one.npy: unknown data file type '.npy' \(a single .npy array: save .*np.savez",
    ),
    "garbage npz": (lambda: _write("bad.npz", b"this is not a zip archive"), r"bad.npz: not a readable .npz archive"),
    "truncated npz": (_truncated_npz, r"trunc.npz: (not a readable .npz archive|cannot read arrays)"),
    "corrupt npz member": (_bad_member_npz, r"badcrc.npz: cannot read arrays 'images' / 'labels'"),
    "missing labels": (lambda: _npz("a.npz", images=X), r"a.npz: has no 'labels' array \(arrays found: images\)"),
    "no images/labels": (
        lambda: _npz("b.npz", x=X, y=Y),
        r"b.npz: has no 'images' and 'labels' arrays .*\(arrays found: x, y\)",
    ),
    "half a split": (
        lambda: _npz("c.npz", train_images=X, train_labels=Y, test_images=X),
        r"c.npz: has 'test_images' but no 'test_labels'",
    ),
    "both conventions": (lambda: _npz("d.npz", images=X, labels=Y, test_images=X, test_labels=Y), r"d.npz: holds both"),
    "length mismatch": (lambda: _npz("e.npz", images=X, labels=Y[:4]), r"e.npz: 6 examples but 4 labels"),
    "non-integer labels": (
        lambda: _npz("f.npz", images=X, labels=Y + 0.5),
        r"f.npz: labels must be integers, but label 0 is 0.5",
    ),
    "negative labels": (lambda: _npz("g.npz", images=X, labels=Y - 1), r"g.npz: labels must be >= 0 .*label 0 is -1"),
    "NaN features": (
        lambda: _npz("h.npz", images=np.where(X == 0, np.nan, 0.0), labels=Y),
        r"h.npz: 6 example\(s\) hold NaN",
    ),
    "single class": (
        lambda: _npz("i.npz", images=X, labels=np.zeros(6, int)),
        r"i.npz: holds a single class \(label 0\)",
    ),
    "1-D images": (
        lambda: _npz("j.npz", images=np.zeros(6), labels=Y),
        r"j.npz: images must be \[N, H, W\], \[N, H, W, C\] or \[N, F\]",
    ),
    "object arrays": (
        lambda: _npz("k.npz", images=X, labels=np.array([0, "a", 1], dtype=object)),
        r"k.npz: cannot read arrays .*Python objects",
    ),
    "empty folder": (lambda: _folder("empty", {}), r"\./empty: empty folder: expected one sub-folder"),
    "loose images": (lambda: _folder("loose", {"x.png": _png()}), r"images must be in one sub-folder per class"),
    "no images": (lambda: _folder("noimg", {"a/readme.txt": b"hi"}), r"\./noimg: no images"),
    "corrupt image": (
        lambda: _folder("cor", {"a/x.png": b"\x89PNG broken", "b/y.png": _png()}),
        r"cor/a/x.png: not a readable image",
    ),
    "csv non-numeric feature": (
        lambda: _write("l.csv", "a,b,label\n1,red,0\n2,blue,1\n"),
        r"l.csv, line 2, column 'b': 'red', not a number; .*one-hot",
    ),
    "csv missing value": (
        lambda: _write("m.csv", "a,b,label\n1,,0\n2,3,1\n"),
        r"m.csv, line 2, column 'b': a missing value",
    ),
    "csv NaN": (
        lambda: _write("n.csv", "a,b,label\n1,2,0\n2,nan,1\n"),
        r"n.csv, line 3, column 'b': NaN or infinite value",
    ),
    "csv ragged": (
        lambda: _write("o.csv", "a,b,label\n1,2,0\n2,1\n"),
        r"o.csv, line 3: 2 fields, but the first row has 3",
    ),
    "csv negative label": (
        lambda: _write("p.csv", "a,label\n1,0\n2,-1\n"),
        r"p.csv, line 3, column 'label': label -1 is negative",
    ),
    "csv fractional label": (
        lambda: _write("q.csv", "a,label\n1,0\n2,1.5\n"),
        r"q.csv: labels must be integers, but label 1 is 1.5",
    ),
    "csv one column": (lambda: _write("r.csv", "1\n2\n"), r"r.csv: needs at least 2 columns"),
    "csv empty": (lambda: _write("s.csv", "\n\n"), r"s.csv: empty table"),
    "csv single class": (lambda: _write("t.csv", "a,label\n1,x\n2,x\n"), r"t.csv: holds a single class"),
    "unknown option": (
        lambda: _npz("u.npz", images=X, labels=Y) + "?label=x",
        r"u.npz\?label=x: unknown option\(s\) label for a npz",
    ),
    "bad size": (
        lambda: _folder("v", {"a/x.png": _png(), "b/y.png": _png()}) + "?size=big",
        r"bad size 'big': write \?size=HxW",
    ),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_clear_errors(case):
    make, pattern = ERRORS[case]
    name = make()
    with pytest.raises(DataError, match=pattern):
        load(name, "all")


def test_changed_file_is_detected_and_can_be_accepted(capsys):
    images, labels = _blobs()
    np.savez("data.npz", images=images, labels=labels)
    first = load("data.npz", "train").fingerprint
    np.savez("data.npz", images=images, labels=labels)  # rewritten, same content: fine
    assert load("data.npz", "train").fingerprint == first
    np.savez("data.npz", images=255 - images, labels=labels)
    with pytest.raises(
        DataError,
        match=r"data.npz changed since vsml first read it[\s\S]*recorded sha256: "
        + first
        + r"[\s\S]*vsml data forget data.npz",
    ):
        load("data.npz", "train")
    assert load("data.npz", "train", verify=False).fingerprint != first  # verify=False skips the check
    assert data_main(["forget", "data.npz"]) == 0 and "fingerprint forgotten" in capsys.readouterr().out
    assert load("data.npz", "train").fingerprint != first


def test_cli_info(capsys):
    with open("t.csv", "w") as f:
        f.write("x,label\n" + "".join(f"{i},{'ab'[i % 2]}\n" for i in range(10)))
    assert data_main(["info", "t.csv"]) == 0
    out = capsys.readouterr().out
    assert "your csv t.csv: 10 features [1], 2 classes" in out and "labels: 0=a, 1=b" in out
    assert "train: 8 examples" in out and "test: 2 examples" in out and "all: 10 examples" in out
    assert data_main(["info", "missing.npz"]) == 2 and "no such file" in capsys.readouterr().err


def test_example_script_runs():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "examples" / "own_data.py"
    spec = importlib.util.spec_from_file_location("own_data", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    shapes = module.main()
    assert shapes == {
        "npz": ((4, 50, 1, 64), (4, 50, 1)),
        "csv": ((4, 50, 1, 4), (4, 50, 1)),
        "folder": ((4, 50, 1, 144), (4, 50, 1)),
    }
