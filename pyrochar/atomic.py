"""Atomic file writes: a reader never sees a half-written file.

Everything the project writes that a later run reads back (checkpoints, caches,
downloads, splits, drawings) goes through a temporary file in the same folder
followed by ``os.replace``, so an interrupted write leaves the previous version.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .errors import PyrocharError


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success it replaces ``path``."""
    if mode not in ("w", "wb"):
        raise ValueError("atomic_open supports modes 'w' and 'wb'")
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".", suffix=".tmp")
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
    with atomic_open(path, "w") as f:
        f.write(text)
