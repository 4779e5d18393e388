"""`vsml data download` against a real HTTP server on 127.0.0.1 (with Range support), and `vsml data list`."""

import http.server
import shutil
import socket
import threading

import pytest
from _data_support import need_real

from vsml.data import DataError, load
from vsml.data.cli import main
from vsml.data.download import download

MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


class _Handler(http.server.BaseHTTPRequestHandler):
    root = None  # folder served
    overrides: dict = {}  # url path -> bytes served instead of the file
    log: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        rel = self.path.lstrip("/")
        type(self).log.append((rel, self.headers.get("Range")))
        if rel in self.overrides:
            body = self.overrides[rel]
        else:
            f = self.root / rel
            if not f.is_file():
                self.send_error(404, "Not Found")
                return
            body = f.read_bytes()
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
            if start >= len(body):
                self.send_error(416, "Range Not Satisfiable")
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:])


@pytest.fixture
def server(tmp_path, monkeypatch):
    real = need_real(*(f"mnist/{f}" for f in MNIST_FILES))
    served = tmp_path / "served"
    shutil.copytree(real / "mnist", served / "mnist")
    monkeypatch.setenv("VSML_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("VSML_DATA_BASE_URL", raising=False)
    handler = type("H", (_Handler,), {"root": served, "overrides": {}, "log": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler, served
    httpd.shutdown()
    httpd.server_close()


def test_download_verifies_and_installs(server, tmp_path):
    url, handler, served = server
    paths = download("mnist", data_dir=tmp_path / "data", base_url=url, progress=False)
    assert [p.name for p in paths] == list(MNIST_FILES)
    for f in MNIST_FILES:
        assert (tmp_path / "data/mnist" / f).read_bytes() == (served / "mnist" / f).read_bytes()
    assert not list((tmp_path / "data/mnist").glob("*.part"))
    assert load("mnist", "test", data_dir=tmp_path / "data").labels[:3].tolist() == [7, 2, 1]
    handler.log.clear()
    download("mnist", data_dir=tmp_path / "data", base_url=url, progress=False)
    assert handler.log == []  # verified files are not fetched again


def test_resume_with_range(server, tmp_path, monkeypatch):
    url, handler, served = server
    target = tmp_path / "data/mnist"
    target.mkdir(parents=True)
    full = (served / "mnist/t10k-images-idx3-ubyte.gz").read_bytes()
    (target / "t10k-images-idx3-ubyte.gz.part").write_bytes(full[:100_000])
    monkeypatch.setenv("VSML_DATA_BASE_URL", url)  # the environment variable works as --base-url
    download("mnist", data_dir=tmp_path / "data", progress=False)
    assert ("mnist/t10k-images-idx3-ubyte.gz", "bytes=100000-") in handler.log
    assert (target / "t10k-images-idx3-ubyte.gz").read_bytes() == full


def test_truncated_download_is_rejected(server, tmp_path):
    url, handler, served = server
    good = (served / "mnist/train-labels-idx1-ubyte.gz").read_bytes()
    handler.overrides["mnist/train-labels-idx1-ubyte.gz"] = good[:-100]
    with pytest.raises(
        DataError, match=r"size mismatch[\s\S]*expected size: 28881 bytes[\s\S]*actual   size: 28781 bytes"
    ):
        download("mnist", data_dir=tmp_path / "data", base_url=url, progress=False)
    assert not (tmp_path / "data/mnist/train-labels-idx1-ubyte.gz").exists()
    assert not (tmp_path / "data/mnist/train-labels-idx1-ubyte.gz.part").exists()


def test_corrupted_download_is_rejected(server, tmp_path):
    url, handler, served = server
    bad = bytearray((served / "mnist/t10k-labels-idx1-ubyte.gz").read_bytes())
    bad[100] ^= 0xFF
    handler.overrides["mnist/t10k-labels-idx1-ubyte.gz"] = bytes(bad)
    with pytest.raises(DataError) as err:
        download("mnist", data_dir=tmp_path / "data", base_url=url, progress=False)
    msg = str(err.value)
    assert "sha256 mismatch" in msg and "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6" in msg
    assert "t10k-labels-idx1-ubyte.gz" in msg and "try again" in msg
    assert not (tmp_path / "data/mnist/t10k-labels-idx1-ubyte.gz").exists()
    # the files before it were installed; a later good download completes the set
    handler.overrides.clear()
    download("mnist", data_dir=tmp_path / "data", base_url=url, progress=False)
    assert load("mnist", "test", data_dir=tmp_path / "data").labels.shape == (10000,)


def test_404_and_offline(server, tmp_path):
    url, handler, served = server
    with pytest.raises(DataError, match=r"HTTP 404"):
        download("fashion_mnist", data_dir=tmp_path / "data", base_url=url, progress=False)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    with pytest.raises(DataError, match=r"cannot connect[\s\S]*are you offline"):
        download("mnist", data_dir=tmp_path / "data", base_url=f"http://127.0.0.1:{port}", progress=False)


def test_cli_download_and_list(server, tmp_path, capsys):
    url, handler, served = server
    data = str(tmp_path / "data")
    assert main(["download", "mnist", "digits", "--base-url", url, "--data-dir", data, "--quiet"]) == 0
    assert main(["list", "--data-dir", data]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "│ mnist " in line)
    assert "train, test" in row and "yes" in row and "11.1 MB" in row
    assert "built in" in out
    assert main(["download", "mnsit", "--data-dir", data, "--quiet"]) == 2  # an error: exit 2, like every command
    assert "Did you mean 'mnist'" in capsys.readouterr().err
    # a corrupt file shows up in the listing
    f = tmp_path / "data/mnist/t10k-labels-idx1-ubyte.gz"
    f.write_bytes(b"x" * f.stat().st_size)
    assert main(["list", "--data-dir", data]) == 1
    assert "sha256 mismatch" in capsys.readouterr().out


def test_register_sets_func():
    import argparse

    from vsml.data.cli import register

    parser = argparse.ArgumentParser(prog="vsml")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["data", "list", "--no-verify"])
    assert callable(args.func) and args.no_verify
    with pytest.raises(SystemExit):
        parser.parse_args(["data"])  # a data sub-command is required
