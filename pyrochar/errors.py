"""User-facing errors.

Every failure a user can cause (a bad file, a bad option, missing data, a corrupted
download or checkpoint) raises a :class:`PyrocharError` whose message says what was
wrong and what to do. The CLI prints that message alone, without a traceback.
"""

from __future__ import annotations


class PyrocharError(Exception):
    """Base class of every error meant to be read by a user."""


class DataFormatError(PyrocharError):
    """A drawing file that does not follow its format.

    ``path`` names the file (or ``zipfile::member``), ``line`` the 1-based line
    number where the problem was found, when there is one.
    """

    def __init__(self, path: str, reason: str, line: int | None = None):
        self.path = str(path)
        self.reason = reason
        self.line = line
        where = f"{self.path}, line {line}" if line is not None else self.path
        super().__init__(f"{where}: {reason}")


class DownloadError(PyrocharError):
    """A download that failed or did not match its expected size or checksum."""


class CheckpointError(PyrocharError):
    """A checkpoint that is missing, corrupted or for another model."""
