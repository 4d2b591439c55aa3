"""Every Python block of README.md and docs/ runs.

The ```python blocks of each page run in order in one fresh namespace (a later
block may use what an earlier one defined), in an empty working folder with empty
caches, where the committed fixture drawings are found as ``tests/data/...`` (as from
the repository's root). A block fenced as ```python no-run is shown but not run; the fence must say
why (```python no-run: needs the full Omniglot archive).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```python(?P<info>[^\n]*)\n(?P<code>.*?)^```[ \t]*$", re.M | re.S)

#: Pages whose blocks are known to fail, with the reason (they still run).
KNOWN_FAILURES: dict[str, str] = {}


def python_blocks(page: Path) -> list[tuple[int, str, str]]:
    """(line number of the fence, info after ``python``, code) of each block."""
    text = page.read_text()
    return [(text.count("\n", 0, m.start()) + 1, m["info"].strip(), m["code"])
            for m in FENCE.finditer(text)]


def _rel(page: Path) -> str:
    return page.relative_to(REPO).as_posix()


PAGES_WITH_CODE = [p for p in PAGES if python_blocks(p)]


def test_the_pages_have_code_to_run():
    assert any(_rel(p) == "README.md" for p in PAGES_WITH_CODE)
    assert len(PAGES_WITH_CODE) >= 3


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_fences_are_run_or_say_why_not(page):
    for line, info, _ in python_blocks(page):
        assert info == "" or re.fullmatch(r"no-run: \S.*", info), (
            f"{_rel(page)}:{line}: write ```python, or ```python no-run: <why it cannot run>"
        )


def _params():
    for page in PAGES_WITH_CODE:
        rel = _rel(page)
        marks = [pytest.mark.xfail(strict=False, reason=KNOWN_FAILURES[rel])] \
            if rel in KNOWN_FAILURES else []
        yield pytest.param(page, id=rel, marks=marks)


@pytest.mark.parametrize("page", list(_params()))
def test_python_blocks_run(page, tmp_path, monkeypatch, one_thread):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "data").symlink_to(REPO / "tests" / "data")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYROCHAR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PYROCHAR_DATA", str(tmp_path / "no-data-here"))
    namespace: dict = {"__name__": "__main__"}
    for line, info, code in python_blocks(page):
        if info:
            continue  # no-run, with its reason
        # the file name in a traceback points at the page and the fence's line
        exec(compile("\n" * line + code, f"{_rel(page)}", "exec"), namespace)


def test_nothing_cites_a_design_note_outside_the_repository():
    """The facts the code relies on are written in docs/; no file points outside."""
    outside = "REFERENCE" + ".md"  # the design note beside the checkout, never shipped
    texts = [REPO / "README.md", REPO / "pyproject.toml"]
    for folder in ("pyrochar", "cli", "docs", "tests", "benchmarks", "examples"):
        texts += [p for p in (REPO / folder).rglob("*") if p.suffix in (".py", ".md", ".toml", ".txt")
                  and "data" not in p.relative_to(REPO).parts[:2]]
    citing = [_rel(p) for p in texts if outside in p.read_text(errors="replace")]
    assert citing == []
