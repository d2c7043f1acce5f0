"""The layout's dependency rule (README, "Layout"), checked by reading the source with
``ast`` (nothing is imported):

- dependencies point one way: ``cli -> train, landscape core, data``; ``train ->
  landscape core, data``; the landscape core and ``data`` import neither of the others:
  the core (landscape/*.py and its sub-packages) imports none of landscape.train,
  landscape.data, landscape.cli; data imports nothing of landscape but itself and
  ``landscape.checks`` (the core's memory probe: it imports no torch and nothing of the
  core but its error class), so the two never judge the free memory differently; train
  imports no landscape.cli;
- one import name: no module imports the old top-level names ``train``, ``data``,
  ``cli`` (they would shadow, or be shadowed by, a user's own modules of those names).
"""

from __future__ import annotations

import ast
import functools
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# repository folder -> the package it installs as (pyproject.toml, [tool.setuptools.package-dir])
PACKAGES = {"landscape": "landscape", "train": "landscape.train", "data": "landscape.data", "cli": "landscape.cli"}
CORE_SUBPACKAGES = ("sampling", "mapping", "diagnosis", "io", "plots")
OLD_NAMES = ("train", "data", "cli")
# Where an old top-level name must not be imported: the library and everything beside it.
SCANNED = ("landscape", "train", "data", "cli", "tests", "benchmarks")


def _module_name(path: Path) -> str:
    """The installed dotted name of a library file (repository path -> landscape.*)."""
    rel = path.relative_to(ROOT)
    base = PACKAGES[rel.parts[0]]
    parts = [*base.split("."), *rel.parts[1:-1]]
    if path.stem != "__init__":
        parts.append(path.stem)
    return ".".join(parts)


def _is_package(path: Path) -> bool:
    return path.stem == "__init__"


@functools.lru_cache(maxsize=None)
def imports(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports, anywhere in it (also inside functions), as
    (line, absolute dotted name); ``from X import Y`` yields both X and X.Y (Y may be a
    sub-module); relative imports are resolved for library files; a constant string
    handed to ``importlib.import_module``/``__import__``, or naming a module in the form
    ``landscape.<x>...``, counts as well."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if path.relative_to(ROOT).parts[0] not in PACKAGES:
                    continue
                here = _module_name(path).split(".")
                if not _is_package(path):
                    here = here[:-1]
                base_parts = here[: len(here) - (node.level - 1)]
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            found.append((node.lineno, base))
            found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names if alias.name != "*")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if re.fullmatch(r"landscape(\.\w+)+", node.value):
                found.append((node.lineno, node.value))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value))
    return found


def _files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)


def core_files() -> list[Path]:
    top = sorted((ROOT / "landscape").glob("*.py"))
    return top + _files(*(f"landscape/{sub}" for sub in CORE_SUBPACKAGES))


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def violations(files: list[Path], allowed) -> list[str]:
    """``file:line imports name`` for each landscape.* import that ``allowed`` refuses."""
    bad = []
    for path in files:
        for line, name in imports(path):
            if _within(name, "landscape") and not allowed(name):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    return sorted(set(bad))


def test_the_scan_sees_the_whole_layout():
    """The folders the rule speaks of exist and hold modules (a renamed folder must not
    make the checks below pass vacuously)."""
    core = core_files()
    assert ROOT / "landscape" / "energy.py" in core and ROOT / "landscape" / "errors.py" in core
    for sub in CORE_SUBPACKAGES:
        assert (ROOT / "landscape" / sub / "__init__.py").is_file(), sub
    for folder in ("train", "data", "cli"):
        assert (ROOT / folder / "__init__.py").is_file(), folder
    # the scanner sees the imports it must judge
    assert any(_within(name, "landscape.train") for _, name in imports(ROOT / "cli" / "train_cmd.py"))
    assert _module_name(ROOT / "train" / "loop.py") == "landscape.train.loop"
    assert _module_name(ROOT / "data" / "__init__.py") == "landscape.data"


def test_core_imports_neither_train_data_nor_cli():
    forbidden = ("landscape.train", "landscape.data", "landscape.cli")
    bad = violations(core_files(), lambda name: not any(_within(name, f) for f in forbidden))
    assert not bad, "the landscape core imports train, data or cli:\n" + "\n".join(bad)


def test_data_imports_nothing_of_landscape_but_itself_and_the_memory_probe():
    """data imports neither train nor cli, and no core module but ``landscape.checks``
    (the free memory, which counts the process's own limits; data has its own errors,
    data/errors.py)."""
    bad = violations(_files("data"), lambda name: _within(name, "landscape.data") or name == "landscape.checks"
                     or name == "landscape.checks.available_memory")
    assert not bad, "data imports from the rest of landscape:\n" + "\n".join(bad)


def test_train_does_not_import_cli():
    bad = violations(_files("train"), lambda name: not _within(name, "landscape.cli"))
    assert not bad, "train imports the command line:\n" + "\n".join(bad)


@pytest.mark.parametrize("old", OLD_NAMES)
def test_no_module_imports_an_old_top_level_name(old):
    """``import data``, ``from train.loop import ...``, ``import cli`` are gone everywhere:
    installed, only ``landscape`` exists (and under pytest the repository root is on
    sys.path, so such an import would even pass here while failing installed)."""
    bad = []
    for path in _files(*SCANNED):
        for line, name in imports(path):
            if _within(name, old):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not bad, f"imports of the old top-level name {old!r}:\n" + "\n".join(sorted(set(bad)))


def test_the_scanner_catches_each_kind_of_import(tmp_path, monkeypatch):
    """Every form of import is seen: plain, from, from-package, relative, inside a
    function, by importlib.import_module."""
    pkg = tmp_path / "landscape" / "mapping"
    pkg.mkdir(parents=True)
    src = pkg / "bad.py"
    src.write_text(
        "import landscape.train.loop\n"
        "from landscape.data import toy\n"
        "from landscape import cli\n"
        "from ..cli import main\n"
        "def f():\n"
        "    import data\n"
        "    import importlib\n"
        "    return importlib.import_module('train.loop')\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert {name for _, name in imports(src)} >= {
        "landscape.train.loop", "landscape.data.toy", "landscape.cli", "landscape.cli.main", "data", "train.loop",
    }
    forbidden = ("landscape.train", "landscape.data", "landscape.cli")
    bad = violations([src], lambda name: not any(_within(name, f) for f in forbidden))
    assert sorted({b.split(" imports ")[0] for b in bad}) == [f"landscape/mapping/bad.py:{k}" for k in (1, 2, 3, 4)]
