"""The public surface is deliberate: every exported name exists, is documented and typed."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import anysgi

PUBLIC_MODULES = [
    "anysgi",
    "anysgi.fastcgi",
    "anysgi.fastcgi.protocol",
    "anysgi.fastcgi.client",
]


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_all_lists_exactly_what_exists(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert len(set(exported)) == len(exported), "duplicates in __all__"
    for attr in exported:
        assert hasattr(module, attr), f"{name}.__all__ names {attr!r}, which does not exist"


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_public_classes_and_functions_have_docstrings(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__doc__, f"{name} has no module docstring"
    for attr in module.__all__:
        obj = getattr(module, attr)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), f"{name}.{attr} has no docstring"


def test_top_level_surface_is_the_designed_one() -> None:
    # DESIGN.md: "names are fixed; add, don't rename".
    assert {"ASGI2WSGI", "WSGI2ASGI", "__version__"} <= set(anysgi.__all__)
    from anysgi import fastcgi
    from anysgi.fastcgi.client import FastCGITransport

    assert callable(fastcgi.serve)
    assert callable(fastcgi.run)
    assert FastCGITransport.__name__ == "FastCGITransport"


def test_package_ships_py_typed() -> None:
    assert (Path(anysgi.__file__).parent / "py.typed").is_file()


def test_version_is_a_pep440_string() -> None:
    from packaging.version import Version

    assert str(Version(anysgi.__version__)) == anysgi.__version__


def test_importing_does_not_import_trio_or_start_anything() -> None:
    # anyio is the only runtime dependency: importing the public modules must neither pull in
    # trio (an optional extra) nor start threads or event loops.
    code = (
        "import sys, threading\n"
        + "".join(f"import {name}\n" for name in PUBLIC_MODULES)
        + "assert 'trio' not in sys.modules, 'trio imported'\n"
        + "assert threading.active_count() == 1, threading.enumerate()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
