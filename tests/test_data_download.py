"""``tinynormact data download`` against a real HTTP server on 127.0.0.1 serving a generated archive.

The server (http.server in a thread, on a free port) follows a plan, one step per request: serve
the file ("ok"), send half of it and close the connection ("drop"), never answer ("hang"), send
half and then stop sending ("stall"), or send the headers and nothing more ("silent"). Nothing
here reaches beyond 127.0.0.1.
"""

from __future__ import annotations

import fcntl
import hashlib
import re
import signal
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from tests.cifar_files import cifar_batch, pickle_batch, tar_folder, write_cifar10
from tinynormact.cli import main
from tinynormact.data import DownloadError, download, load_cifar10, load_cifar100
from tinynormact.data.download import ARCHIVES, archive_url

ARCHIVE = "/mirror/cifar-10-python.tar.gz"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # keep the test output clean
        pass

    def do_GET(self) -> None:
        server = self.server
        server.requests.append((self.path, self.headers.get("Range")))
        step = server.plan.pop(0) if server.plan else "ok"
        if step == "hang":
            server.release.wait(30)
            return
        body = server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = 0
        requested = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        if server.ranges and requested:
            start = int(requested[1])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        payload = body[start:]
        if step == "silent":
            self.wfile.flush()
            server.release.wait(30)
            return
        if step == "ok":
            self.wfile.write(payload)
            return
        self.wfile.write(payload[: len(payload) // 2])
        self.wfile.flush()
        if step == "stall":
            server.release.wait(30)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.plan: list[str] = []
        self.requests: list[tuple[str, str | None]] = []
        self.ranges = True
        self.release = threading.Event()

    @property
    def mirror(self) -> str:
        return f"http://127.0.0.1:{self.server_port}/mirror"


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1")  # a proxy set in the environment must not be used
    httpd = _Server()
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd
    httpd.release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture(scope="module")
def cifar10(tmp_path_factory) -> tuple[bytes, str, dict]:
    """A CIFAR-10 archive in the real layout (20 images per batch, about 370 kB), its MD5, its batches."""
    folder = tmp_path_factory.mktemp("archive")
    batches = write_cifar10(folder, n=20)
    tar_folder(folder / "cifar-10-batches-py", folder / "archive.tar.gz")
    data = (folder / "archive.tar.gz").read_bytes()
    return data, hashlib.md5(data).hexdigest(), batches


def _get(server, root, md5, **options) -> Path:
    return download("cifar10", root, mirror=server.mirror, md5=md5, progress=False, **options)


def test_full_download_is_verified_and_readable(server, cifar10, tmp_path):
    data, md5, batches = cifar10
    server.files[ARCHIVE] = data
    path = _get(server, tmp_path / "root", md5)
    assert path == tmp_path / "root" / "cifar-10-python.tar.gz"
    assert path.read_bytes() == data
    assert sorted(p.name for p in path.parent.iterdir()) == ["cifar-10-python.tar.gz"]  # no .part left
    assert server.requests == [(ARCHIVE, None)]
    splits = load_cifar10(path.parent)
    assert np.array_equal(splits.test.x.reshape(20, -1), batches["test_batch"][b"data"])
    # a second call finds the verified archive and asks the server nothing
    assert _get(server, tmp_path / "root", md5) == path and len(server.requests) == 1


def test_cifar100_download(server, tmp_path):
    folder = tmp_path / "made" / "cifar-100-python"
    folder.mkdir(parents=True)
    labels = {b"fine_labels": 100, b"coarse_labels": 20}
    for seed, name in enumerate(("train", "test")):
        (folder / name).write_bytes(pickle_batch(cifar_batch(4, seed, labels)))
    tar_folder(folder, tmp_path / "made" / "archive.tar.gz")
    data = (tmp_path / "made" / "archive.tar.gz").read_bytes()
    server.files["/mirror/cifar-100-python.tar.gz"] = data
    md5 = hashlib.md5(data).hexdigest()
    path = download("cifar100", tmp_path, mirror=server.mirror, md5=md5, progress=False)
    assert path.read_bytes() == data and len(load_cifar100(tmp_path).train) == 4


def test_interrupted_download_is_kept_and_resumed_with_range(server, cifar10, tmp_path):
    data, md5, _ = cifar10
    server.files[ARCHIVE] = data
    server.plan = ["drop"]
    with pytest.raises(DownloadError, match=r"stopped \(the connection closed at byte .*run the same"):
        _get(server, tmp_path, md5, retries=0)
    part = tmp_path / "cifar-10-python.tar.gz.part"
    half = len(data) // 2
    assert part.read_bytes() == data[:half]
    assert not (tmp_path / "cifar-10-python.tar.gz").exists()
    assert _get(server, tmp_path, md5).read_bytes() == data
    assert server.requests == [(ARCHIVE, None), (ARCHIVE, f"bytes={half}-")]
    assert not part.exists()


def test_connection_drops_are_resumed_within_one_call(server, cifar10, tmp_path):
    data, md5, _ = cifar10
    server.files[ARCHIVE] = data
    server.plan = ["drop", "drop"]
    assert _get(server, tmp_path, md5, retries=2).read_bytes() == data
    first, second = len(data) // 2, len(data) // 2 + (len(data) - len(data) // 2) // 2
    assert [r for _, r in server.requests] == [None, f"bytes={first}-", f"bytes={second}-"]


def test_server_without_range_support_is_read_again_from_the_start(server, cifar10, tmp_path):
    data, md5, _ = cifar10
    server.files[ARCHIVE] = data
    server.ranges = False
    server.plan = ["drop"]
    with pytest.raises(DownloadError, match="stopped"):
        _get(server, tmp_path, md5, retries=0)
    path = _get(server, tmp_path, md5)
    assert path.read_bytes() == data  # the half already there was replaced, not appended to
    assert server.requests[1] == (ARCHIVE, f"bytes={len(data) // 2}-")


def test_a_part_as_long_as_the_file_gets_416_and_starts_again(server, cifar10, tmp_path):
    data, md5, _ = cifar10
    server.files[ARCHIVE] = data
    (tmp_path / "cifar-10-python.tar.gz.part").write_bytes(b"x" * len(data))
    assert _get(server, tmp_path, md5).read_bytes() == data
    assert server.requests == [(ARCHIVE, f"bytes={len(data)}-"), (ARCHIVE, None)]


def test_wrong_checksum_leaves_nothing(server, cifar10, tmp_path):
    data, md5, _ = cifar10
    server.files[ARCHIVE] = data
    with pytest.raises(DownloadError, match=f"removed: its MD5 is {md5}, not 0{{32}}"):
        _get(server, tmp_path, "0" * 32)
    assert list(tmp_path.iterdir()) == []


def test_truncated_archive_is_refused_by_checksum_and_by_reading_it(server, cifar10, tmp_path):
    data, md5, _ = cifar10
    truncated = data[: len(data) * 2 // 3]
    server.files[ARCHIVE] = truncated  # served whole: the HTTP transfer itself is complete
    with pytest.raises(DownloadError, match=re.escape(f"({len(truncated)} bytes) was removed: its MD5 is")):
        _get(server, tmp_path, md5)
    # even a checksum that matches the truncated file does not make it an archive
    with pytest.raises(DownloadError, match="not a complete tar.gz archive"):
        _get(server, tmp_path, hashlib.md5(truncated).hexdigest())
    assert list(tmp_path.iterdir()) == []


def test_archive_without_the_dataset_folder_is_refused(server, tmp_path):
    (tmp_path / "made" / "other").mkdir(parents=True)
    (tmp_path / "made" / "other" / "x").write_bytes(b"x")
    tar_folder(tmp_path / "made" / "other", tmp_path / "made" / "other.tar.gz")
    data = (tmp_path / "made" / "other.tar.gz").read_bytes()
    server.files[ARCHIVE] = data
    with pytest.raises(DownloadError, match="holds no cifar-10-batches-py/ folder"):
        _get(server, tmp_path / "root", hashlib.md5(data).hexdigest())


def test_a_server_that_never_answers_times_out(server, cifar10, tmp_path):
    data, md5, _ = cifar10
    server.files[ARCHIVE] = data
    server.plan = ["hang"]
    start = time.monotonic()
    with pytest.raises(DownloadError, match=r"127.0.0.1:\d+ did not answer within 0.3 s"):
        _get(server, tmp_path, md5, timeout=0.3)
    assert time.monotonic() - start < 5


def test_a_server_that_stops_sending_times_out_and_keeps_the_part(server, cifar10, tmp_path):
    data, md5, _ = cifar10
    server.files[ARCHIVE] = data
    server.plan = ["stall", "stall"]
    start = time.monotonic()
    with pytest.raises(DownloadError, match=r"no data from 127.0.0.1:\d+ for 0.3 s"):
        _get(server, tmp_path, md5, timeout=0.3, retries=1)
    assert time.monotonic() - start < 5
    kept = (tmp_path / "cifar-10-python.tar.gz.part").read_bytes()
    assert len(kept) > len(data) // 2 and data.startswith(kept)  # two attempts, each brought bytes
    assert _get(server, tmp_path, md5).read_bytes() == data


def test_an_attempt_that_brings_nothing_is_not_retried(server, cifar10, tmp_path):
    data, md5, _ = cifar10
    server.files[ARCHIVE] = data
    server.plan = ["silent"]
    with pytest.raises(DownloadError, match=r"no data from 127.0.0.1:\d+ for 0.3 s"):
        _get(server, tmp_path, md5, timeout=0.3, retries=3)
    assert len(server.requests) == 1


def test_missing_file_on_the_server(server, tmp_path):
    with pytest.raises(DownloadError, match=r"cifar-10-python.tar.gz: the server answered HTTP 404"):
        _get(server, tmp_path, "0" * 32)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_no_network_is_one_clear_message_and_exit_2(tmp_path, capsys):
    mirror = f"http://127.0.0.1:{_closed_port()}/mirror"
    with pytest.raises(DownloadError, match=r"cannot reach 127.0.0.1:\d+ \(.*refused.*\): no network"):
        download("cifar10", tmp_path, mirror=mirror, progress=False)
    assert main(["data", "download", "cifar10", "--root", str(tmp_path), "--mirror", mirror]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tinynormact: error: cannot reach 127.0.0.1") and "Traceback" not in err
    assert str(tmp_path) in err  # where to put a file fetched by other means
    assert list(tmp_path.iterdir()) == []  # no empty .part left behind


def test_existing_archive_is_checked_and_never_overwritten(server, cifar10, tmp_path):
    data, md5, _ = cifar10
    target = tmp_path / "cifar-10-python.tar.gz"
    target.write_bytes(b"not the archive")
    with pytest.raises(DownloadError, match="exists but its MD5 is .*delete it and run the command again"):
        _get(server, tmp_path, md5)
    assert target.read_bytes() == b"not the archive" and server.requests == []


def test_two_downloads_never_write_one_file(server, cifar10, tmp_path):
    data, md5, _ = cifar10
    server.files[ARCHIVE] = data
    with open(tmp_path / "cifar-10-python.tar.gz.part", "ab") as other:
        fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(DownloadError, match="another download is writing"):
            _get(server, tmp_path, md5)
    assert server.requests == []


def test_cli_downloads_into_the_environment_root_with_a_bar(server, cifar10, tmp_path, monkeypatch, capsys):
    data, md5, _ = cifar10
    server.files[ARCHIVE] = data
    monkeypatch.setenv("TINYNORMACT_DATA", str(tmp_path / "env"))
    assert main(["data", "download", "cifar10", "--mirror", server.mirror, "--md5", md5]) == 0
    out, err = capsys.readouterr()
    assert (tmp_path / "env" / "cifar-10-python.tar.gz").read_bytes() == data
    assert str(tmp_path / "env" / "cifar-10-python.tar.gz") in out
    assert "cifar-10-python.tar.gz: 100%" in err  # the tqdm bar
    # --root wins over the environment variable
    flags = ["--root", str(tmp_path / "flag"), "--mirror", server.mirror, "--md5", md5]
    assert main(["data", "download", "cifar10", *flags]) == 0
    assert (tmp_path / "flag" / "cifar-10-python.tar.gz").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--mirror", "ftp://example.org/x"], "mirror must be an http:// or https:// URL, got 'ftp://example.org/x'"),
        (["--md5", "abc"], "an MD5 checksum is 32 hex digits, got 'abc'"),
    ],
)
def test_cli_bad_values_exit_2_naming_the_value(tmp_path, capsys, flags, message):
    assert main(["data", "download", "cifar10", "--root", str(tmp_path), *flags]) == 2
    assert capsys.readouterr().err == f"tinynormact: error: {message}\n"


def test_cli_bad_timeout_or_dataset_is_a_usage_error(tmp_path, capsys):
    for args in (["cifar10", "--timeout", "0"], ["mnist"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["data", "download", *args])
        assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "expected a finite number > 0, got '0'" in err and "invalid choice: 'mnist'" in err


def test_official_table_and_mirror_urls():
    assert archive_url("cifar10") == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    assert archive_url("cifar100", "https://example.org/data/") == "https://example.org/data/cifar-100-python.tar.gz"
    assert {a.folder for a in ARCHIVES.values()} == {"cifar-10-batches-py", "cifar-100-python"}
    with pytest.raises(ValueError, match="no download for dataset 'mnist'; valid names are cifar10, cifar1"):
        archive_url("mnist")


def test_commands_that_need_cifar_say_where_they_looked_and_how_to_download(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TINYNORMACT_DATA", str(tmp_path))
    assert main(["train", "--dataset", "cifar100", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tinynormact: error: {tmp_path}: CIFAR-100 not found") and "Traceback" not in err
    assert err.rstrip().endswith(f"download it with: tinynormact data download cifar100 --root {tmp_path}")


@pytest.mark.usefixtures("python_sigint")
def test_ctrl_c_keeps_the_part_and_says_how_to_resume(server, cifar10, tmp_path, capsys):
    data, md5, _ = cifar10
    server.files[ARCHIVE] = data
    server.plan = ["stall"]
    # Ctrl-C (a real SIGINT to the main thread) while the server stalls
    timer = threading.Timer(0.5, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT))
    timer.start()
    try:
        flags = ["--root", str(tmp_path), "--mirror", server.mirror, "--timeout", "5"]
        code = main(["data", "download", "cifar10", *flags])
    finally:
        timer.cancel()
    part = tmp_path / "cifar-10-python.tar.gz.part"
    assert code == 130
    err = capsys.readouterr().err
    assert f"interrupted: the part downloaded is kept in {part}; run the same command" in err
    assert part.read_bytes() == data[: len(data) // 2]
    assert _get(server, tmp_path, md5).read_bytes() == data
