"""The built-in datasets: one block each, described by :func:`vsml.data.info.dataset_info` from
their canonical files (:mod:`vsml.data.checksums`) and readers (:mod:`vsml.data.readers`).
:func:`builtin_datasets` returns them; :mod:`vsml.data.registry` starts from that list."""

from __future__ import annotations

import functools

from vsml.data import builtin, checksums, formats, readers
from vsml.data.info import DatasetInfo, Source, dataset_info
from vsml.data.integrity import FileSpec


def _idx_dataset(name, table, urls, source, description, mean, std, homepage, license_, extra=None):
    """MNIST-like: train/test IDX pairs in folder ``name``, 10 classes of 28x28 grayscale images."""
    files = checksums.table(name, table, urls, source)
    splits = {
        "train": (
            Source((files["train-images-idx3-ubyte.gz"], files["train-labels-idx1-ubyte.gz"]), readers.read_idx_pair),
        ),
        "test": (
            Source((files["t10k-images-idx3-ubyte.gz"], files["t10k-labels-idx1-ubyte.gz"]), readers.read_idx_pair),
        ),
    }
    for split, alt in (extra or {}).items():
        splits[split] = splits[split] + (alt,)
    return dataset_info(
        name,
        splits,
        num_classes=10,
        image_shape=(28, 28, 1),
        description=description,
        mean=mean,
        std=std,
        downloads=tuple(files.values()),
        homepage=homepage,
        license=license_,
    )


def _mnist():
    return _idx_dataset(
        "mnist",
        checksums.MNIST,
        checksums.MNIST_URLS,
        checksums.TFDS.format("mnist") + "; torchvision MNIST (md5)",
        "MNIST handwritten digits (LeCun, Cortes, Burges)",
        0.1307,
        0.3081,
        "http://yann.lecun.com/exdb/mnist/",
        "none stated",
    )


def _fashion_mnist():
    return _idx_dataset(
        "fashion_mnist",
        checksums.FASHION,
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        checksums.TFDS.format("fashion_mnist") + "; zalandoresearch/fashion-mnist README (md5)",
        "Fashion-MNIST clothing images (Zalando)",
        0.2860,
        0.3530,
        "https://github.com/zalandoresearch/fashion-mnist",
        "MIT",
    )


def _kmnist():
    npz = checksums.table(
        "kmnist",
        checksums.KMNIST_NPZ,
        (),
        "datasets-mila/datasets--kmnist git-annex keys (md5); data MANIFEST (sha256)",
    )
    return _idx_dataset(
        "kmnist",
        checksums.KMNIST,
        ("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
        checksums.TFDS.format("kmnist") + "; torchvision KMNIST (md5)",
        "Kuzushiji-MNIST cursive Japanese characters (CODH)",
        0.1918,
        0.3483,
        "https://github.com/rois-codh/kmnist",
        "CC BY-SA 4.0",
        extra={"test": Source((npz["kmnist-test-imgs.npz"], npz["kmnist-test-labels.npz"]), readers.read_npz_pair)},
    )


def _emnist():
    infos = []
    members = checksums.table(
        "emnist", checksums.EMNIST_MEMBERS, (), "Git-LFS pointers of aurelienduarte/emnist (mirror of NIST gzip.zip)"
    )
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
                alts.append(Source((img, lbl), functools.partial(readers.read_idx_pair, transpose=True)))
            alts.append(Source((checksums.EMNIST_ZIP,), readers.read_emnist_zip(config, split)))
            splits[split] = tuple(alts)
        infos.append(
            dataset_info(
                name,
                splits,
                num_classes=classes,
                image_shape=(28, 28, 1),
                description=desc,
                mean=mean,
                std=std,
                downloads=(checksums.EMNIST_ZIP,),
                homepage="https://www.nist.gov/itl/products-and-services/emnist-dataset",
                license="none stated (NIST SD 19)",
            )
        )
    return tuple(infos)


def _cifar10():
    splits = {}
    for split, batches in (("train", formats.CIFAR_TRAIN_BATCHES), ("test", formats.CIFAR_TEST_BATCHES)):
        from_tar, from_dir = readers.cifar(batches)
        dir_files = tuple(
            FileSpec(
                f"cifar10/{formats.CIFAR_DIR}/{b}",
                None,
                "f53d8d457504f7cff4ea9e021afcf0e0ad8e24a91f3fc42091b8adef61157831" if b == "test_batch" else None,
                checksums.CIFAR_BATCH_MD5[b],
                (),
                "torchvision CIFAR10 (md5)",
            )
            for b in batches
        )
        splits[split] = (Source((checksums.CIFAR_TGZ,), from_tar), Source(dir_files, from_dir))
    return dataset_info(
        "cifar10",
        splits,
        num_classes=10,
        image_shape=(32, 32, 3),
        description="CIFAR-10 32x32 colour images, 10 classes (Krizhevsky)",
        downloads=(checksums.CIFAR_TGZ,),
        homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
        license="none stated",
    )


def _svhn():
    svhn = checksums.table(
        "svhn_cropped",
        checksums.SVHN,
        ("http://ufldl.stanford.edu/housenumbers/",),
        checksums.TFDS.format("svhn_cropped") + "; torchvision SVHN (md5)",
    )
    return dataset_info(
        "svhn_cropped",
        {
            s: (Source((svhn[f"{s}_32x32.mat"],), lambda p: formats.read_svhn_mat(p[0])),)
            for s in ("train", "test", "extra")
        },
        num_classes=10,
        image_shape=(32, 32, 3),
        description="SVHN cropped house-number digits 32x32 colour (Netzer et al.)",
        downloads=(svhn["train_32x32.mat"], svhn["test_32x32.mat"]),
        homepage="http://ufldl.stanford.edu/housenumbers/",
        license="non-commercial use only",
    )


def _omniglot():
    omni = checksums.table(
        "omniglot",
        checksums.OMNIGLOT,
        (checksums.OMNIGLOT_URL,),
        checksums.TFDS.format("omniglot") + "; torchvision Omniglot (md5)",
    )
    onpz = checksums.table(
        "omniglot", checksums.OMNIGLOT_NPZ, (), "data MANIFEST (npz conversion of the official PNGs)"
    )
    zip_read = readers.inverted(formats.read_omniglot_zip)
    npz_read = readers.inverted(formats.read_omniglot_npz)
    return dataset_info(
        "omniglot",
        {
            "train": (
                Source((onpz["omniglot_background.npz"],), npz_read),
                Source((omni["images_background.zip"],), zip_read),
            ),
            "test": (
                Source((onpz["omniglot_evaluation.npz"],), npz_read),
                Source((omni["images_evaluation.zip"],), zip_read),
            ),
            "small1": (Source((omni["images_background_small1.zip"],), zip_read),),
            "small2": (Source((omni["images_background_small2.zip"],), zip_read),),
        },
        num_classes=964,
        image_shape=(105, 105, 1),
        description="Omniglot handwritten characters of 50 alphabets, 105x105 (Lake et al.); ink = 255",
        mean=0.0779,
        std=0.2681,
        downloads=tuple(omni.values()),
        homepage="https://github.com/brendenlake/omniglot",
        license="MIT",
        split_classes={"train": 964, "test": 659, "small1": 136, "small2": 156},
    )


def _generated():
    return (
        dataset_info(
            "digits",
            {s: readers.generated(builtin.digits, s) for s in ("train", "test")},
            num_classes=10,
            image_shape=(8, 8, 1),
            description="scikit-learn's bundled 8x8 digits (1,797 images; built in)",
            mean=0.3052,
            std=0.3759,
            license="BSD-3 (scikit-learn)",
            homepage="https://scikit-learn.org/stable/modules/generated/sklearn.datasets.load_digits.html",
        ),
        dataset_info(
            "random",
            {s: readers.generated(builtin.random_task, s) for s in ("train", "test")},
            num_classes=10,
            image_shape=(28, 28, 1),
            description="20 fixed Gaussian 28x28 images with random labels (memorisation; built in)",
            mean=0.0,
            std=1.0,
        ),
        dataset_info(
            "sum",
            {s: readers.generated(builtin.sum_task, s) for s in ("train", "test")},
            num_classes=2,
            image_shape=(28, 28, 1),
            description="28x28 truncated-normal images with random mean; label = [sum >= 0] (built in)",
            mean=0.0,
            std=1.0,
        ),
    )


def builtin_datasets() -> tuple[DatasetInfo, ...]:
    """Every built-in dataset, in the order `vsml data list` shows them (the registry starts with these)."""
    return (_mnist(), _fashion_mnist(), _kmnist(), *_emnist(), _cifar10(), _svhn(), _omniglot(), *_generated())
