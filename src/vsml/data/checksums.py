"""Canonical dataset files and their published checksums.

Sizes and sha256 digests: TensorFlow Datasets url_checksums/<name>.txt (tensorflow/datasets);
md5 digests: torchvision's dataset classes / the authors' pages; see docs/data.md.
"""

from __future__ import annotations

from vsml.data.integrity import FileSpec

TFDS = "TFDS url_checksums/{}.txt"
MNIST_URLS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)


def file_spec(path, size, sha256=None, md5=None, base_urls=(), source=""):
    name = path.rsplit("/", 1)[-1]
    return FileSpec(path, size, sha256, md5, tuple(u + name for u in base_urls), source)


MNIST = {
    "train-images-idx3-ubyte.gz": (
        9912422,
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    ),
    "train-labels-idx1-ubyte.gz": (
        28881,
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "d53e105ee54ea40749a09fcbcd1e9432",
    ),
    "t10k-images-idx3-ubyte.gz": (
        1648877,
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "9fb629c4189551a2d022fa330f9573f3",
    ),
    "t10k-labels-idx1-ubyte.gz": (
        4542,
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        "ec29112dd5afa0611ce80d1b7f02629c",
    ),
}
FASHION = {
    "train-images-idx3-ubyte.gz": (
        26421880,
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    ),
    "train-labels-idx1-ubyte.gz": (
        29515,
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "25c81989df183df01b3e8a0aad5dffbe",
    ),
    "t10k-images-idx3-ubyte.gz": (
        4422102,
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "bef4ecab320f06d8554ea6380940ec79",
    ),
    "t10k-labels-idx1-ubyte.gz": (
        5148,
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        "bb300cfdad3c16e7a12a480ee83cd310",
    ),
}
KMNIST = {
    "train-images-idx3-ubyte.gz": (
        18165135,
        "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4",
        "bdb82020997e1d708af4cf47b453dcf7",
    ),
    "train-labels-idx1-ubyte.gz": (
        29497,
        "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17",
        "e144d726b3acfaa3e44228e80efcd344",
    ),
    "t10k-images-idx3-ubyte.gz": (
        3041136,
        "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5",
        "5c965bf0a639b31b8f53240b1b52f4d7",
    ),
    "t10k-labels-idx1-ubyte.gz": (
        5120,
        "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c",
        "7320c461ea6c1c855c0b718fb2a4b134",
    ),
}
# KMNIST's NumPy distribution (md5 = git-annex keys of datasets-mila/datasets--kmnist).
KMNIST_NPZ = {
    "kmnist-test-imgs.npz": (
        3079479,
        "692d824896bec8f3c357ebf7a0fe904ed67ac632ce953d0b58f7fbef7bb27d87",
        "dace6de62ca8b90843cc45366337d02e",
    ),
    "kmnist-test-labels.npz": (
        5304,
        "660f13a4705431ea2a6391c41ecbe384cd0d932c595a101ec4f3b8989e785046",
        "3ae489a79983d0fe386152684e3b5412",
    ),
    "kmnist-train-labels.npz": (
        29700,
        "a325c877035602cb9b9ba54f4194a2a1b5f718026a463db5b5e0cdc124c03720",
        "b0e1d240e8afec72b50437fc3bc5908a",
    ),
}
# EMNIST: the authors publish one archive (gzip.zip; size + sha256 from TFDS, md5 from torchvision).
# Its members' sha256 are those of the Git-LFS mirror aurelienduarte/emnist of NIST's gzip.zip.
EMNIST_ZIP = FileSpec(
    "emnist/gzip.zip",
    561753746,
    "fb9bb67e33772a9cc0b895e4ecf36d2cf35be8b709693c3564cea2a019fcda8e",
    "58c8d27c78d21e728a6bc7b3cc06412e",
    (
        "https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip",
        "https://www.itl.nist.gov/iaui/vip/cs_links/EMNIST/gzip.zip",
    ),
    TFDS.format("emnist") + "; torchvision EMNIST (md5)",
)
EMNIST_MEMBERS = {
    "emnist-byclass-test-images-idx3-ubyte.gz": (
        28908322,
        "5ec835bd5d5b1a66378a132e727fef20fe994b3cc666899befcca5ac766f50cd",
    ),
    "emnist-byclass-test-labels-idx1-ubyte.gz": (
        81839,
        "501e305eeeacb093b162592d80e8a2632040872360fa6d85cfcb2200d91ca92a",
    ),
    "emnist-mnist-test-images-idx3-ubyte.gz": (
        2484884,
        "b25640fa9e356c618132f5df347c95ef5bae6d9c2596be1de40f7e0ae1c3eac6",
    ),
    "emnist-mnist-test-labels-idx1-ubyte.gz": (
        5144,
        "bcc5385d38f083dba046f5f756e99b32f5ea7fad122c6243c71c2239873065ca",
    ),
}
CIFAR_TGZ = FileSpec(
    "cifar10/cifar-10-python.tar.gz",
    170498071,
    "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
    "c58f30108f718f92721af3b95e74349a",
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
    "train_32x32.mat": (
        182040794,
        "435e94d69a87fde4fd4d7f3dd208dfc32cb6ae8af2240d066de1df7508d083b8",
        "e26dedcc434d2e4c54c9b2d4a06d8373",
    ),
    "test_32x32.mat": (
        64275384,
        "cdce80dfb2a2c4c6160906d0bd7c68ec5a99d7ca4831afa54f09182025b6a75b",
        "eb5a983be6a315427106f1b164d9cef3",
    ),
    "extra_32x32.mat": (
        1329278602,
        "a133a4beb38a00fcdda90c9489e0c04f900b660ce8a316a5e854838379a71eb3",
        "a93ce644f1a588dc4d68dda5feec44a7",
    ),
}
OMNIGLOT_URL = "https://github.com/brendenlake/omniglot/raw/master/python/"
OMNIGLOT = {
    "images_background.zip": (
        9464212,
        "ad41ab679c8b5d90b271ef46be6987cc81211774a695c29dcc5367b2b26ee640",
        "68d2efa1b9178cc56df9314c21c6e718",
    ),
    "images_evaluation.zip": (
        6462886,
        "1f61a8f3366785b057fc117d9228e78a16e3d976c8953b2a10fcc74cf0609cee",
        "6b91aef0f799c5bb55b94e3f2daec811",
    ),
    "images_background_small1.zip": (
        1319022,
        "f38eb80f801274ac2b4dff5b24289016bfaba4a7d5bb50deebf27104ad6cb8a4",
        "e704a628b5459e08445c13499850abc4",
    ),
    "images_background_small2.zip": (
        1580917,
        "3ccaa407515a8778e5d0861875af38b17e418f301ad5bb3b5a6b65d901a41c7f",
        "b75a71a51d3b13f821f212756fe481fd",
    ),
}
# Non-canonical npz conversion of the official PNGs (see the data MANIFEST); sha256 of that file.
OMNIGLOT_NPZ = {
    "omniglot_background.npz": (3399490, "f0de22df83f3dee42cfc45b3e3b4632ca2e0e2b53f833dc0610eb0ff4a287dbb"),
    "omniglot_evaluation.npz": (2455419, "e97cf71b2ac683e459077fe28ed8550fd64b232ed71f99b3e16fa0e6517c9045"),
}


def table(folder: str, table: dict, base_urls=(), source: str = "") -> dict[str, FileSpec]:
    out = {}
    for name, entry in table.items():
        size, sha = entry[0], entry[1]
        md5 = entry[2] if len(entry) > 2 else None
        out[name] = file_spec(f"{folder}/{name}", size, sha, md5, base_urls, source)
    return out
