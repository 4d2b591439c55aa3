"""Downloading the Omniglot stroke archives.

The two archives (``strokes_background.zip``, ``strokes_evaluation.zip``) are fetched
from the brendenlake/omniglot GitHub repository, or from any other ``http(s)://`` or
``file://`` base URL, into :func:`default_data_dir`. Each download streams into a
``.part`` temp file beside its destination, is checked against the expected size and
md5, and only then is moved into place, so a failed or interrupted download never
leaves a partial archive nor damages an archive already there; the ``.part`` files
of a download killed outright are removed by the next one (:mod:`pyrochar.atomic`).

A download is bounded: it stops as soon as more bytes than expected arrive, when
the server announces another size than expected, after :data:`_TIMEOUT_S` s without
data, and once ``max_seconds`` have passed in all (checked as each piece of data
arrives).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from pyrochar.atomic import make_temp_beside
from pyrochar.errors import DownloadError

__all__ = [
    "ARCHIVES",
    "OMNIGLOT_BASE_URL",
    "ArchiveInfo",
    "default_data_dir",
    "download_file",
    "download_omniglot",
]

OMNIGLOT_COMMIT = "057f034baf2ecb8530bc5710e5a23584d2a519cc"
OMNIGLOT_BASE_URL = (
    f"https://raw.githubusercontent.com/brendenlake/omniglot/{OMNIGLOT_COMMIT}/python/"
)

_CHUNK = 1 << 20
_TIMEOUT_S = 60  # s without any data
#: Default limit on a whole download, in seconds (25 MB in 30 min is 14 KB/s).
MAX_DOWNLOAD_S = 1800


class ArchiveInfo(NamedTuple):
    """Expected size in bytes and md5 hex digest of an archive (None: not checked)."""

    size: int | None
    md5: str | None


#: The official archives (brendenlake/omniglot, commit 057f034b, folder python/).
ARCHIVES: dict[str, ArchiveInfo] = {
    "strokes_background.zip": ArchiveInfo(25_653_493, "8714451f82a60597a9f2bf957fbb8dc4"),
    "strokes_evaluation.zip": ArchiveInfo(19_185_747, "2d5e82111f163f816a2bacc0153cc84d"),
}


def default_data_dir() -> Path:
    """Where the data lives: ``$PYROCHAR_DATA`` if set, else ``<user cache>/pyrochar/omniglot``."""
    env = os.environ.get("PYROCHAR_DATA")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("pyrochar")) / "omniglot"


def _file_md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _is_valid(path: Path, size: int | None, md5: str | None) -> bool:
    """Whether ``path`` is a file with the expected size and md5."""
    try:
        if not path.is_file():
            return False
        if size is not None and path.stat().st_size != size:
            return False
        return md5 is None or _file_md5(path) == md5.lower()
    except OSError:
        return False


def _advice(url: str, dest: Path) -> str:
    return (
        f"Retry later, pass --url with another mirror, or download {url} manually "
        f"and put it in {dest.parent} as {dest.name}."
    )


def _describe_url_error(exc: BaseException) -> str:
    """A readable account of why opening or reading a URL failed."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP error {exc.code} ({exc.reason})"
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        if isinstance(reason, (TimeoutError, socket.timeout)):
            return "the connection timed out"
        if isinstance(reason, ConnectionRefusedError):
            return "network unreachable: the connection was refused"
        if isinstance(reason, socket.gaierror):
            return f"network unreachable: cannot resolve the host ({reason})"
        if isinstance(reason, FileNotFoundError):
            return f"no such file ({reason.filename or reason})"
        if isinstance(reason, OSError):
            return f"network unreachable ({reason.strerror or reason})"
        return f"cannot open the URL ({reason})"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "the connection timed out"
    if isinstance(exc, OSError):
        return f"network or disk error ({exc.strerror or exc})"
    return f"{type(exc).__name__}: {exc}"


def download_file(
    url: str,
    dest: str | os.PathLike[str],
    size: int | None,
    md5: str | None,
    progress: bool = True,
    max_seconds: float = MAX_DOWNLOAD_S,
) -> str:
    """Download ``url`` to ``dest``, checking ``size`` (bytes) and ``md5`` when given.

    Returns ``"cached"`` when ``dest`` already has the expected size and md5 (nothing
    is fetched), else ``"downloaded"``. The data streams into a ``.part`` file in
    ``dest``'s folder that replaces ``dest`` only once verified; on any failure the
    temp file is deleted, ``dest`` is left as it was, and :class:`DownloadError`
    says what went wrong and what to do. At most ``size`` bytes are written, and the
    download fails after ``max_seconds`` in all.
    """
    dest = Path(dest)
    if dest.exists() and _is_valid(dest, size, md5):
        return "cached"
    try:
        fd, tmp = make_temp_beside(dest, ".part")
    except OSError as exc:
        raise DownloadError(
            f"cannot download {url}: cannot write to {dest.parent} ({exc.strerror or exc}). "
            "Choose another folder (--dest or $PYROCHAR_DATA)."
        ) from None
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _stream(url, out, size, dest.name, progress, max_seconds)
            out.flush()
            os.fsync(out.fileno())
        if md5 is not None and digest != md5.lower():
            raise DownloadError(
                f"{url}: md5 mismatch: got {digest}, expected {md5.lower()} (the file is "
                "corrupted or not the expected one)."
            )
        os.replace(tmp, dest)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, DownloadError):
            raise DownloadError(f"{exc} " + _advice(url, dest)) from None
        if not isinstance(exc, Exception):
            raise
        raise DownloadError(
            f"cannot download {url}: {_describe_url_error(exc)}. " + _advice(url, dest)
        ) from exc
    return "downloaded"


def _size_problem(url: str, received: int, size: int | None, announced: int | None) -> str | None:
    """Why ``received`` bytes (the transfer being over) are not the expected archive."""
    if announced is not None and received < announced:
        return (
            f"{url}: truncated download: got {received:,} of {announced:,} bytes "
            "(the connection closed early)."
        )
    if size is None or received == size:
        return None
    if announced is not None:  # the whole file arrived, and it is another size
        return (
            f"{url}: wrong file: the server sent a complete file of {received:,} bytes, "
            f"but the archive is {size:,} bytes (the URL serves another file or version)."
        )
    return (
        f"{url}: got {received:,} bytes, expected {size:,} (the server announced no size: "
        "the connection closed early or the URL serves another file)."
    )


def _stream(
    url: str, out, size: int | None, name: str, progress: bool, max_seconds: float
) -> str:
    """Copy ``url`` into the open binary file ``out``; return the md5 hex of the bytes.

    Raises DownloadError when the size announced or received is not ``size``, when
    the connection closes early, or when it takes more than ``max_seconds``.
    """
    from tqdm.auto import tqdm

    deadline = time.monotonic() + max_seconds
    h = hashlib.md5(usedforsecurity=False)
    received = 0
    with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as resp:
        announced = resp.headers.get("Content-Length") if resp.headers else None
        announced_n = int(announced) if announced and announced.isdigit() else None
        if size is not None and announced_n is not None and announced_n != size:
            raise DownloadError(
                f"{url}: wrong file: the server announces {announced_n:,} bytes, but the "
                f"archive is {size:,} bytes (the URL serves another file or version)."
            )
        limit = size if size is not None else announced_n
        read = getattr(resp, "read1", resp.read)  # read1: returns as soon as data arrives
        with tqdm(
            total=limit,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=name,
            disable=not progress,
            leave=False,
        ) as bar:
            while chunk := read(_CHUNK):
                received += len(chunk)
                if limit is not None and received > limit:
                    raise DownloadError(
                        f"{url}: wrong file: the server sent more than the expected "
                        f"{limit:,} bytes; the download was stopped there."
                    )
                if time.monotonic() > deadline:
                    raise DownloadError(
                        f"{url}: the download took more than {max_seconds:g} s "
                        f"({received:,} bytes received); the connection is too slow."
                    )
                out.write(chunk)
                h.update(chunk)
                bar.update(len(chunk))
    problem = _size_problem(url, received, size, announced_n)
    if problem:
        raise DownloadError(problem)
    return h.hexdigest()


def _archive_url(base_url: str, name: str) -> str:
    """``base_url`` joined with ``name``; a plain local folder becomes a file:// URL."""
    if "://" not in base_url:
        base_url = Path(base_url).expanduser().resolve().as_uri()
    return base_url.rstrip("/") + "/" + name


def download_omniglot(
    dest: str | os.PathLike[str] | None = None,
    base_url: str | None = None,
    archives: Sequence[str] = ("strokes_background.zip", "strokes_evaluation.zip"),
    expected: Mapping[str, ArchiveInfo | tuple[int | None, str | None]] | None = None,
    progress: bool = True,
    max_seconds: float = MAX_DOWNLOAD_S,
) -> list[Path]:
    """Download the Omniglot stroke archives into ``dest`` (default: :func:`default_data_dir`).

    ``base_url`` (default :data:`OMNIGLOT_BASE_URL`) may be ``http(s)://``,
    ``file://`` or a local folder; each archive is fetched from ``base_url/<name>``.
    ``expected`` maps archive names to (size, md5), overriding :data:`ARCHIVES` (for
    mirrors of other files, and for tests). Archives already present and valid are
    not fetched again. Each download may take ``max_seconds`` at most. Returns the
    paths of the archives.
    """
    folder = Path(dest) if dest is not None else default_data_dir()
    base = base_url or OMNIGLOT_BASE_URL
    table: dict[str, ArchiveInfo] = dict(ARCHIVES)
    if expected is not None:
        table.update({k: ArchiveInfo(*v) for k, v in expected.items()})
    paths: list[Path] = []
    for name in archives:
        if name not in table:
            raise DownloadError(
                f"unknown archive {name!r}: expected one of {', '.join(sorted(table))}"
            )
        info = table[name]
        target = folder / name
        download_file(
            _archive_url(base, name), target, info.size, info.md5, progress, max_seconds
        )
        paths.append(target)
    return paths
