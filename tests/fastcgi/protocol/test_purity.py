"""House rule 1: the codec imports only the standard library, and never an event loop."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import anysgi.fastcgi.protocol

PACKAGE = "anysgi.fastcgi.protocol"
ROOT = Path(anysgi.fastcgi.protocol.__file__).parent
MODULES = sorted(ROOT.glob("*.py"))
#: Standard-library modules that are I/O or concurrency, which a sans-IO codec has no use for.
FORBIDDEN = {"asyncio", "trio", "anyio", "socket", "selectors", "threading", "ssl", "select"}


def _imports(path: Path) -> list[tuple[str, int]]:
    """Every module *path* imports, absolute, with the line it is imported on."""
    module = f"{PACKAGE}.{path.stem}" if path.stem != "__init__" else PACKAGE
    package_parts = (module if path.stem == "__init__" else module.rpartition(".")[0]).split(".")
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if node.level > len(package_parts):
                    found.append(("." * node.level + (node.module or ""), node.lineno))
                    continue
                base = package_parts[: len(package_parts) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.append((name, node.lineno))
    return found


def test_the_package_has_modules() -> None:
    assert {path.stem for path in MODULES} >= {
        "__init__",
        "_buffer",
        "_connection",
        "_constants",
        "_errors",
        "_events",
        "_pairs",
        "_records",
        "_state",
    }


def _violations(path: Path) -> list[str]:
    problems = []
    for name, line in _imports(path):
        top = name.partition(".")[0]
        where = f"{path.name}:{line} imports {name}"
        if name == PACKAGE or name.startswith(PACKAGE + "."):
            continue
        if name.startswith("."):
            problems.append(f"{where}: a relative import leaving the package")
        elif top == "anysgi":
            problems.append(f"{where}: the codec must not depend on the rest of anysgi")
        elif top not in sys.stdlib_module_names and top != "__future__":
            problems.append(f"{where}: not in the standard library")
        elif top in FORBIDDEN:
            problems.append(f"{where}: the codec does no I/O")
    return problems


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.name)
def test_imports_only_the_standard_library_and_itself(path: Path) -> None:
    assert _violations(path) == []


def test_the_checker_catches_what_it_should(tmp_path: Path) -> None:
    bad = tmp_path / "_bad.py"
    bad.write_text(
        "import socket\n"
        "from ... import cli\n"
        "from ..server import serve\n"
        "import httpx\n"
        "from . import _state\n"
        "from .....x import y\n",
        encoding="utf-8",
    )
    assert [problem.split(": ", 1)[1] for problem in _violations(bad)] == [
        "the codec does no I/O",
        "the codec must not depend on the rest of anysgi",
        "the codec must not depend on the rest of anysgi",
        "not in the standard library",
        "a relative import leaving the package",
    ]
