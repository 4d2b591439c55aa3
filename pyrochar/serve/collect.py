"""Collect mode: participants' drawings written to a folder in the Omniglot layout.

The folder ``DIR`` given to ``pyrochar serve --collect DIR`` becomes one Omniglot
*alphabet* folder (named after ``DIR``), readable by ``pyrochar data stats --source
DIR`` and every other reader of Omniglot drawings::

    DIR/
      collect.json                 the manifest (see below); readers ignore it
      character01/0001_01.txt      prompt 1, participant 1
      character01/0001_02.txt      prompt 1, participant 2
      character02/0002_01.txt      prompt 2, participant 1
      ...

- ``characterNN`` is the prompt: each prompt id gets the next free number the
  first time a drawing for it arrives (``NNNN`` in the file name is the same
  number); an "invent" prompt's folder holds different participants' inventions.
- ``_DD`` is the participant: each participant name gets the next free number.
  A participant's second drawing for the same prompt gets a fresh number (nothing
  is overwritten); the manifest says whose it is.
- Each file is an Omniglot stroke file: ``START``, then per stroke its ``x,y,t``
  lines (motor units, the times in ms as the page recorded them) and ``BREAK``.

``collect.json`` (written atomically) maps the numbers back: ``prompts`` {prompt id:
{character, kind, text}}, ``participants`` {name: number} and ``drawings``, one
entry per file with the participant, the prompt and the time it was saved.

Every file is written atomically (:mod:`pyrochar.atomic`: a temporary file, fsync,
rename) before the request is answered, so a drawing whose submission was answered
is on disk whatever happens to the server after (``kill -9`` included). The
numbers already used are read back from the folder and the manifest at start, so
a restarted server never overwrites a drawing.
"""

from __future__ import annotations

import json
import re
import threading
from datetime import datetime, timezone

import numpy as np

from ..atomic import atomic_write_text
from ..checks import check_output_folder
from ..data.jsonio import _number as number_text
from ..data.omniglot import SUBSETS
from ..errors import PyrocharError
from .prompts import Prompt

MANIFEST = "collect.json"
FORMAT = "pyrochar-collect"
VERSION = 1
_FILE = re.compile(r"^character(\d+)/(\d+)_(\d+)\.txt$")


def stroke_file_text(strokes: list[np.ndarray]) -> str:
    """Strokes (k, 3) of x, y, t -> the text of an Omniglot stroke file."""
    lines = ["START"]
    for s in strokes:
        lines += [",".join(number_text(v) for v in p[:3]) for p in s]
        lines.append("BREAK")
    return "\n".join(lines) + "\n"


class CollectStore:
    """The collect folder: where each submitted drawing goes, and the manifest."""

    def __init__(self, folder, prompts: list[Prompt]):
        self.folder = check_output_folder(folder, "--collect")
        if self.folder.name in SUBSETS or any((self.folder / s).exists() for s in SUBSETS):
            raise PyrocharError(f"--collect {folder}: the folder becomes one Omniglot alphabet; "
                                f"it cannot be or hold {' or '.join(SUBSETS)}; choose another")
        if not prompts:
            raise PyrocharError("collect mode needs at least one prompt")
        self.prompts = {p.id: p for p in prompts}
        if len(self.prompts) != len(prompts):
            raise PyrocharError("two prompts have the same id")
        self.order = [p.id for p in prompts]
        self.lock = threading.Lock()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.manifest = self._read_manifest()
        self.used = self._files_on_disk()  # {(character, drawer)}

    # ------------------------------------------------------------------ state
    def _read_manifest(self) -> dict:
        path = self.folder / MANIFEST
        empty = {"format": FORMAT, "version": VERSION, "alphabet": self.folder.name,
                 "prompts": {}, "participants": {}, "drawings": []}
        if not path.exists():
            return empty
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            ok = (doc.get("format") == FORMAT and isinstance(doc.get("prompts"), dict)
                  and isinstance(doc.get("participants"), dict) and isinstance(doc.get("drawings"), list))
        except (OSError, ValueError, AttributeError):
            ok = False
        if not ok:
            raise PyrocharError(f"{path} is not a collect manifest written by pyrochar; move it "
                                "away or choose another --collect folder")
        return doc

    def _files_on_disk(self) -> set[tuple[int, int]]:
        """(character, drawer) numbers of the stroke files already in the folder."""
        used = set()
        for path in self.folder.glob("character*/*.txt"):
            m = _FILE.match(path.relative_to(self.folder).as_posix())
            if m:
                used.add((int(m.group(1)), int(m.group(3))))
        return used

    def _next_character(self) -> int:
        taken = [c for c, _ in self.used] + [p["character"] for p in self.manifest["prompts"].values()]
        return max(taken, default=0) + 1

    def _next_drawer(self) -> int:
        taken = [d for _, d in self.used] + list(self.manifest["participants"].values())
        return max(taken, default=0) + 1

    def prompt_list(self) -> list[dict]:
        """The prompts as JSON, in the order shown."""
        return [self.prompts[i].as_json() for i in self.order]

    # ----------------------------------------------------------------- saving
    def save(self, prompt_id: str, participant: str, strokes: list[np.ndarray]) -> dict:
        """Write one drawing atomically -> {"saved": its path in the folder, "count": drawings saved}."""
        if prompt_id not in self.prompts:
            raise PyrocharError(f"unknown prompt_id {prompt_id!r}; GET /api/prompts lists them")
        prompt = self.prompts[prompt_id]
        with self.lock:
            allocated = False
            if prompt_id not in self.manifest["prompts"]:
                self.manifest["prompts"][prompt_id] = {
                    "character": self._next_character(), "kind": prompt.kind, "text": prompt.text}
                allocated = True
            if participant not in self.manifest["participants"]:
                self.manifest["participants"][participant] = self._next_drawer()
                allocated = True
            if allocated:  # the numbers are on disk before any file uses them
                self._write_manifest()
            char = self.manifest["prompts"][prompt_id]["character"]
            drawer = self.manifest["participants"][participant]
            if (char, drawer) in self.used:
                drawer = self._next_drawer()
            rel = f"character{char:02d}/{char:04d}_{drawer:02d}.txt"
            atomic_write_text(self.folder / rel, stroke_file_text(strokes))
            self.used.add((char, drawer))
            self.manifest["drawings"].append({
                "file": rel, "participant": participant, "prompt_id": prompt_id, "kind": prompt.kind,
                "saved_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds")})
            self._write_manifest()
            return {"saved": rel, "count": len(self.manifest["drawings"])}

    def _write_manifest(self) -> None:
        atomic_write_text(self.folder / MANIFEST, json.dumps(self.manifest, indent=1, ensure_ascii=False))
