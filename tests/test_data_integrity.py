"""Checksum verification: failure messages, the size+mtime verification cache."""

import os

import pytest
from _data_support import need_real

from vsml.data import DataError, FileSpec, integrity, load
from vsml.data.integrity import check_file


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VSML_CACHE_DIR", str(tmp_path / "cache"))


def _spec(data: bytes, **kw):
    import hashlib

    return FileSpec(
        "x/file.bin", len(data), hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest(), source="a test", **kw
    )


def test_good_file_passes_and_is_cached(tmp_path, monkeypatch):
    f = tmp_path / "file.bin"
    f.write_bytes(b"hello world")
    spec = _spec(b"hello world")
    check_file(spec, f)
    assert (tmp_path / "cache/verified.json").is_file()
    monkeypatch.setattr(integrity, "hash_file", lambda p: pytest.fail("rehashed a cached file"))
    check_file(spec, f)  # cached: no hashing
    os.utime(f, ns=(1, 1))  # a changed mtime invalidates the cache entry
    with pytest.raises(BaseException, match="rehashed"):
        check_file(spec, f)


def test_failures_name_file_hashes_and_fix(tmp_path):
    f = tmp_path / "file.bin"
    f.write_bytes(b"hello world")
    with pytest.raises(DataError, match=r"size mismatch[\s\S]*expected size: 12 bytes[\s\S]*actual   size: 11 bytes"):
        check_file(_spec(b"hello world!"), f)
    spec = _spec(b"hello worle")
    with pytest.raises(DataError) as err:
        check_file(spec, f, hint="Run the fix.")
    msg = str(err.value)
    assert str(f) in msg and spec.sha256 in msg and integrity.hash_file(f)[0] in msg
    assert "Run the fix." in msg and "a test" in msg
    md5_only = FileSpec("x", 11, None, "0" * 32)
    with pytest.raises(DataError, match="md5 mismatch"):
        check_file(md5_only, f)
    with pytest.raises(DataError, match="missing"):
        check_file(spec, tmp_path / "nope")
    check_file(FileSpec("x", 11), f)  # no published hash: size only


def test_load_rejects_a_corrupt_canonical_file(tmp_path):
    real = need_real("mnist/t10k-images-idx3-ubyte.gz", "mnist/t10k-labels-idx1-ubyte.gz")
    (tmp_path / "mnist").mkdir()
    data = bytearray((real / "mnist/t10k-labels-idx1-ubyte.gz").read_bytes())
    data[-5] ^= 1
    (tmp_path / "mnist/t10k-labels-idx1-ubyte.gz").write_bytes(bytes(data))
    (tmp_path / "mnist/t10k-images-idx3-ubyte.gz").symlink_to(real / "mnist/t10k-images-idx3-ubyte.gz")
    with pytest.raises(
        DataError, match=r"t10k-labels-idx1-ubyte.gz is corrupt[\s\S]*sha256 mismatch[\s\S]*vsml data download mnist"
    ):
        load("mnist", "test", data_dir=tmp_path)


def test_unwritable_cache_is_harmless(tmp_path, monkeypatch):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    monkeypatch.setenv("VSML_CACHE_DIR", str(blocker / "sub"))
    f = tmp_path / "file.bin"
    f.write_bytes(b"abc")
    check_file(_spec(b"abc"), f)
