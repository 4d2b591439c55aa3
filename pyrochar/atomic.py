"""Atomic file writes: a reader never sees a half-written file.

Everything the project writes that a later run reads back (checkpoints, caches,
downloads, splits, drawings) goes through a temporary file in the same folder
followed by ``os.replace``, so an interrupted write leaves the previous version.

Temporary files are named ``.<name>.<pid>.<random><suffix>`` after the process
writing them. A process killed outright (``kill -9``) cannot delete its own, so
each new temporary file first removes those in its folder whose process is gone
(or that are older than :data:`STALE_AFTER_S`).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .errors import PyrocharError

#: A temporary file untouched for this long is stale even if its process id is in use.
STALE_AFTER_S = 24 * 3600


def _process_alive(pid: int) -> bool:
    """Whether a process with this id exists (on this machine)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    return True


def remove_stale_temps(folder: str | os.PathLike, suffix: str) -> list[Path]:
    """Delete this module's temporary files (``*<suffix>``) in ``folder`` whose writer is
    gone; return their paths. Files of live processes and other files are kept."""
    pattern = re.compile(r"^\..+\.(\d+)\.[A-Za-z0-9_]{8}" + re.escape(suffix) + "$")
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        match = pattern.match(entry.name)
        if match is None:
            continue
        pid = int(match.group(1))
        try:
            old = now - entry.stat(follow_symlinks=False).st_mtime > STALE_AFTER_S
            if pid != os.getpid() and (old or not _process_alive(pid)) and entry.is_file(
                follow_symlinks=False
            ):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue  # gone already, or not ours to delete
    return removed


def make_temp_beside(path: str | os.PathLike, suffix: str) -> tuple[int, Path]:
    """Create ``.<name>.<pid>.<random><suffix>`` beside ``path`` (after removing stale
    ones); return its open descriptor and path. Raises OSError."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent, suffix)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=suffix
    )
    return fd, Path(tmp)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success it replaces ``path``."""
    if mode not in ("w", "wb"):
        raise ValueError("atomic_open supports modes 'w' and 'wb'")
    path = Path(path)
    try:
        fd, tmp = make_temp_beside(path, ".tmp")
    except OSError as e:
        raise PyrocharError(f"cannot write {path}: {e.strerror or e}") from None
    try:
        # mkstemp creates the file private (0600); give it the mode a plain open()
        # would (0666 minus the umask), so checkpoints and caches can be shared.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        kwargs = {"encoding": "utf-8", "newline": "\n"} if mode == "w" else {}
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise PyrocharError(f"cannot write {path}: {e.strerror or e}") from None
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w") as f:
        f.write(text)
