"""Packaging: pyproject.toml lists what the repository holds, and the wheel ships it."""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
import tomllib

import pyrochar

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]


def package_folders() -> dict[str, Path]:
    """Every package of the repository by its installed dotted name, applying
    ``package-dir`` (``cli/`` installs as ``pyrochar_cli``): each folder with an
    ``__init__.py``, and each folder that holds files to ship but no code (a data-only
    package such as the drawing pad's ``serve/static/``)."""
    roots = {"pyrochar": REPO / "pyrochar"}
    roots.update({name: REPO / folder for name, folder in SETUPTOOLS["package-dir"].items()})
    found = {}
    for name, root in roots.items():
        for folder in (root, *(p for p in root.rglob("*") if p.is_dir())):
            if "__pycache__" in folder.parts:
                continue
            if (folder / "__init__.py").exists() or any(
                    p.is_file() and p.suffix not in (".py", ".pyc") for p in folder.iterdir()):
                found[".".join((name, *folder.relative_to(root).parts))] = folder
    return found


def data_files(folder: Path) -> list[str]:
    """Files of a package folder that are not Python source, relative to it."""
    return sorted(
        str(p.relative_to(folder)) for p in folder.rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    )


def test_every_package_folder_is_listed_and_every_listed_one_exists():
    assert sorted(SETUPTOOLS["packages"]) == sorted(package_folders())


def test_package_data_patterns_match_exactly_the_data_files():
    folders = package_folders()
    shipped = []  # patterns relative to pyrochar/, one package's folder at a time
    for package, patterns in SETUPTOOLS["package-data"].items():
        assert package in SETUPTOOLS["packages"], f"package-data for unlisted {package}"
        prefix = folders[package].relative_to(REPO / "pyrochar").as_posix()
        shipped += [f"{prefix}/{pattern}" for pattern in patterns]
    files = data_files(REPO / "pyrochar")
    for pattern in shipped:  # no pattern for files that do not exist
        assert fnmatch.filter(files, pattern), f"{pattern} matches no file"
    unshipped = [f for f in files if not any(fnmatch.fnmatch(f, p) for p in shipped)]
    assert unshipped == [], "data files no package-data pattern ships"
    for folder in SETUPTOOLS["package-dir"].values():  # no package-data for the CLI
        assert data_files(REPO / folder) == []


def test_version_has_one_source():
    assert "version" not in PYPROJECT["project"] and "version" in PYPROJECT["project"]["dynamic"]
    attr = SETUPTOOLS["dynamic"]["version"]["attr"]
    assert attr == "pyrochar.__version__"
    assert pyrochar.__version__.count(".") == 2


def test_licence_urls_and_extras():
    project = PYPROJECT["project"]
    assert project["license"] == "MIT" and (REPO / "LICENSE").read_text().startswith("MIT License")
    assert all(url.startswith("https://") for url in project["urls"].values())
    assert {"dev", "images", "web"} <= set(project["optional-dependencies"])


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel ``pip wheel`` builds from a copy of the sources (offline: the
    setuptools of the dev extra builds it, so the checkout gets no build/ folder)."""
    pytest.importorskip("setuptools", reason="building the wheel needs the dev extra's setuptools")
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("pyrochar", *SETUPTOOLS["package-dir"].values()):
        shutil.copytree(REPO / folder, src / folder, ignore=ignore)
    out = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
           "--no-index", "-w", str(out), str(src)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    # e.g. a data folder missing from `packages` ("absent from the `packages` configuration")
    assert "BuildBackendWarning" not in done.stdout + done.stderr
    (whl,) = out.glob("pyrochar-*.whl")
    return whl


def test_the_wheel_holds_every_module_the_weights_and_the_metadata(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        (meta_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        meta = Parser().parsestr(zf.read(meta_name).decode())
    for name, folder in package_folders().items():
        prefix = name.replace(".", "/")
        for module in folder.glob("*.py"):
            assert f"{prefix}/{module.name}" in names
    for data in data_files(REPO / "pyrochar"):  # the weights and the drawing pad's page
        assert f"pyrochar/{data}" in names
    assert not any(n.startswith(("cli/", "tests/")) for n in names)
    assert meta["Version"] == pyrochar.__version__
    assert meta["License-Expression"] == "MIT"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert {u.split(",")[0] for u in meta.get_all("Project-URL")} >= {"Homepage", "Source"}
    assert set(meta.get_all("Provides-Extra")) >= {"dev", "images", "web"}
