"""Downloading archives, against a local HTTP server on loopback and file:// URLs."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyrochar.data import download as dl
from pyrochar.data.download import (
    OMNIGLOT_BASE_URL,
    default_data_dir,
    download_file,
    download_omniglot,
)
from pyrochar.data.omniglot import load_omniglot
from pyrochar.errors import DownloadError

STROKES = "START\n10,-20,0\n30,-40,50\nBREAK\n"


def _make_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for drawer in range(1, 4):
            zf.writestr(f"strokes_background/Test/character01/0001_{drawer:02d}.txt", STROKES)
    return buf.getvalue()


ZIP = _make_zip()
ZIP_MD5 = hashlib.md5(ZIP).hexdigest()
EXPECTED = {"strokes_background.zip": (len(ZIP), ZIP_MD5)}


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the folder; ``/liar/<name>`` announces the full length but sends half;
    ``/endless/<name>`` sends data without a length until the client leaves;
    ``/trickle/<name>`` announces the archive's length and sends a byte every 50 ms."""

    def do_GET(self) -> None:
        if self.path.startswith("/liar/"):
            self.send_response(200)
            self.send_header("Content-Length", str(len(ZIP)))
            self.end_headers()
            self.wfile.write(ZIP[: len(ZIP) // 2])
            self.close_connection = True
            return
        if self.path.startswith(("/endless/", "/trickle/")):
            self._send_forever(trickle=self.path.startswith("/trickle/"))
            return
        super().do_GET()

    def _send_forever(self, trickle: bool) -> None:
        self.send_response(200)
        if trickle:
            self.send_header("Content-Length", str(len(ZIP)))
        self.end_headers()
        self.close_connection = True
        try:
            for i in range(len(ZIP) - 1 if trickle else 10_000):  # never the whole archive
                self.wfile.write(ZIP[i : i + 1] if trickle else b"x" * 65536)
                self.wfile.flush()
                if trickle:
                    time.sleep(0.05)
        except OSError:  # the client gave up
            pass

    def log_message(self, format: str, *args) -> None:  # keep test output quiet
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(base URL, folder) of a loopback HTTP server serving a fresh folder."""
    root = tmp_path / "served"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Handler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _only(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_table_and_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert OMNIGLOT_BASE_URL.startswith("https://raw.githubusercontent.com/brendenlake/omniglot/")
    assert dl.ARCHIVES["strokes_background.zip"] == (
        25_653_493,
        "8714451f82a60597a9f2bf957fbb8dc4",
    )
    assert dl.ARCHIVES["strokes_evaluation.zip"].md5 == "2d5e82111f163f816a2bacc0153cc84d"
    monkeypatch.setenv("PYROCHAR_DATA", str(tmp_path / "data"))
    assert default_data_dir() == tmp_path / "data"
    monkeypatch.delenv("PYROCHAR_DATA")
    assert default_data_dir().parts[-2:] == ("pyrochar", "omniglot")


def test_good_download_then_cached(served, tmp_path: Path) -> None:
    base, root = served
    (root / "strokes_background.zip").write_bytes(ZIP)
    dest = tmp_path / "data"
    paths = download_omniglot(
        dest, base_url=base, archives=["strokes_background.zip"], expected=EXPECTED, progress=False
    )
    assert paths == [dest / "strokes_background.zip"]
    assert paths[0].read_bytes() == ZIP
    assert _only(dest) == ["strokes_background.zip"]
    assert len(load_omniglot(dest).drawings) == 3

    # Second call: nothing fetched, even though the server no longer has the file.
    (root / "strokes_background.zip").unlink()
    url = base + "strokes_background.zip"
    assert download_file(url, paths[0], len(ZIP), ZIP_MD5, progress=False) == "cached"
    download_omniglot(
        dest, base_url=base, archives=["strokes_background.zip"], expected=EXPECTED, progress=False
    )
    assert paths[0].read_bytes() == ZIP


def test_download_file_reports_downloaded(served, tmp_path: Path) -> None:
    base, root = served
    (root / "a.zip").write_bytes(ZIP)
    dest = tmp_path / "new" / "sub" / "a.zip"
    assert download_file(base + "a.zip", dest, len(ZIP), ZIP_MD5, progress=True) == "downloaded"
    assert dest.read_bytes() == ZIP


def test_a_complete_file_of_another_size_is_a_wrong_file_not_a_truncated_one(
    served, tmp_path: Path
) -> None:
    base, root = served
    (root / "strokes_background.zip").write_bytes(ZIP[:-100])
    dest = tmp_path / "data"
    with pytest.raises(DownloadError) as info:
        download_omniglot(
            dest,
            base_url=base,
            archives=["strokes_background.zip"],
            expected=EXPECTED,
            progress=False,
        )
    msg = str(info.value)
    assert "truncated" not in msg
    assert f"wrong file: the server announces {len(ZIP) - 100:,} bytes" in msg
    assert f"the archive is {len(ZIP):,} bytes" in msg
    assert "--url" in msg and str(dest) in msg and msg.count("Retry") == 1
    assert _only(dest) == []  # no dest file, no .part left behind


def test_connection_closed_early_refused(served, tmp_path: Path) -> None:
    base, _ = served
    dest = tmp_path / "a.zip"
    with pytest.raises(DownloadError, match="truncated"):
        download_file(base + "liar/a.zip", dest, len(ZIP), ZIP_MD5, progress=False)
    assert not dest.exists()
    # Without an expected size, the announced Content-Length is checked.
    with pytest.raises(DownloadError, match="truncated"):
        download_file(base + "liar/a.zip", dest, None, None, progress=False)
    assert _only(tmp_path) == ["served"]


def test_failed_download_leaves_existing_dest_intact(served, tmp_path: Path) -> None:
    base, root = served
    (root / "a.zip").write_bytes(ZIP[:-1])
    dest = tmp_path / "a.zip"
    dest.write_bytes(b"previous archive")
    with pytest.raises(DownloadError, match="wrong file"):
        download_file(base + "a.zip", dest, len(ZIP), ZIP_MD5, progress=False)
    assert dest.read_bytes() == b"previous archive"
    assert _only(tmp_path) == ["a.zip", "served"]


def test_corrupted_file_md5_refused_cache_intact(served, tmp_path: Path) -> None:
    base, root = served
    corrupted = bytearray(ZIP)
    corrupted[len(corrupted) // 2] ^= 0xFF
    (root / "strokes_background.zip").write_bytes(bytes(corrupted))
    dest = tmp_path / "cache"
    dest.mkdir()
    (dest / "strokes_background.zip").write_bytes(b"an older, different archive")
    with pytest.raises(DownloadError) as info:
        download_omniglot(
            dest,
            base_url=base,
            archives=["strokes_background.zip"],
            expected=EXPECTED,
            progress=False,
        )
    msg = str(info.value)
    assert "md5 mismatch" in msg and ZIP_MD5 in msg
    assert (dest / "strokes_background.zip").read_bytes() == b"an older, different archive"
    assert _only(dest) == ["strokes_background.zip"]

    # A valid cached archive is never replaced by a corrupted download.
    (dest / "strokes_background.zip").write_bytes(ZIP)
    download_omniglot(
        dest, base_url=base, archives=["strokes_background.zip"], expected=EXPECTED, progress=False
    )
    assert (dest / "strokes_background.zip").read_bytes() == ZIP


def test_http_404(served, tmp_path: Path) -> None:
    base, _ = served
    with pytest.raises(DownloadError, match="HTTP error 404"):
        download_file(base + "missing.zip", tmp_path / "m.zip", None, None, progress=False)
    assert _only(tmp_path) == ["served"]


def test_file_url(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "strokes_background.zip").write_bytes(ZIP)
    dest = tmp_path / "data"
    for base in (mirror.as_uri() + "/", str(mirror)):  # file:// URL, or a plain folder
        paths = download_omniglot(
            dest,
            base_url=base,
            archives=["strokes_background.zip"],
            expected=EXPECTED,
            progress=False,
        )
        assert paths[0].read_bytes() == ZIP
        paths[0].unlink()
    with pytest.raises(DownloadError, match="no such file"):
        download_file(mirror.as_uri() + "/nope.zip", dest / "nope.zip", None, None, progress=False)


def test_unreachable_url(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/strokes_background.zip"
    with pytest.raises(DownloadError) as info:
        download_file(url, tmp_path / "a.zip", len(ZIP), ZIP_MD5, progress=False)
    msg = str(info.value)
    assert "network unreachable" in msg and "Retry" in msg
    assert _only(tmp_path) == []


def test_unknown_archive(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="unknown archive"):
        download_omniglot(tmp_path, base_url=tmp_path.as_uri(), archives=["other.zip"])


def test_a_download_never_writes_past_the_expected_size(served, tmp_path: Path) -> None:
    base, _ = served
    dest = tmp_path / "data" / "a.zip"
    with pytest.raises(DownloadError, match=f"more than the expected {len(ZIP):,} bytes"):
        download_file(base + "endless/a.zip", dest, len(ZIP), None, progress=False)
    assert _only(dest.parent) == []


def test_a_whole_download_has_a_time_limit(served, tmp_path: Path) -> None:
    """One byte every 50 ms never trips the 60 s silence timeout; the total limit does."""
    base, _ = served
    dest = tmp_path / "a.zip"
    with pytest.raises(DownloadError, match=r"took more than 0.5 s .*too slow"):
        download_file(base + "trickle/a.zip", dest, len(ZIP), ZIP_MD5, progress=False,
                      max_seconds=0.5)
    assert _only(tmp_path) == ["served"]


def test_part_files_of_a_killed_download_are_removed_by_the_next(served, tmp_path: Path) -> None:
    base, root = served
    dest = tmp_path / "data"
    code = (
        "from pyrochar.data.download import download_file; "
        f"download_file({base + 'trickle/strokes_background.zip'!r}, "
        f"{str(dest / 'strokes_background.zip')!r}, {len(ZIP)}, None, progress=False)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        for _ in range(600):  # until its .part file exists (at most 60 s)
            if dest.is_dir() and any(p.name.endswith(".part") for p in dest.iterdir()):
                break
            time.sleep(0.1)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    parts = [p.name for p in dest.iterdir()]
    assert len(parts) == 1 and parts[0].endswith(".part"), parts  # kill -9 left it
    (root / "strokes_background.zip").write_bytes(ZIP)
    download_omniglot(
        dest, base_url=base, archives=["strokes_background.zip"], expected=EXPECTED, progress=False
    )
    assert _only(dest) == ["strokes_background.zip"]
