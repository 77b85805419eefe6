"""Loading module:attr strings and telling ASGI from WSGI."""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from anysgi._importer import AppImportError, detect_interface, import_app


@pytest.fixture
def app_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"anysgi_test_app_{id(tmp_path)}"
    (tmp_path / f"{name}.py").write_text(
        "async def app(scope, receive, send): pass\n"
        "class Holder:\n    inner = app\n"
        "def create_app():\n    return app\n"
        "number = 3\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_import_attr_dotted_and_factory(app_module: str) -> None:
    module = sys.modules.get(app_module) or __import__(app_module)
    assert import_app(f"{app_module}:app") is module.app
    assert import_app(app_module) is module.app  # attribute defaults to "app"
    assert import_app(f"{app_module}:Holder.inner") is module.app
    assert import_app(f"{app_module}:create_app", factory=True) is module.app


@pytest.mark.parametrize(
    ("suffix", "message"),
    [
        (":missing", "has no attribute 'missing'"),
        (":create_app()", "use --factory"),
        (":number", "not a callable application"),
        ("_nope:app", "no module named"),
    ],
)
def test_import_errors_are_one_line(app_module: str, suffix: str, message: str) -> None:
    with pytest.raises(AppImportError, match=message.replace("(", r"\(").replace(")", r"\)")):
        import_app(app_module + suffix)


def test_import_never_evaluates() -> None:
    with pytest.raises(AppImportError, match="invalid"):
        import_app("os:system('true')")
    with pytest.raises(AppImportError, match="invalid application path"):
        import_app("__import__('os'):x")


async def asgi_function(scope: Any, receive: Any, send: Any) -> None: ...


class AsgiCallable:
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None: ...


class SyncThreeArgs:
    def __call__(self, scope: Any, receive: Any, send: Any) -> Any: ...


def wsgi_function(environ: Any, start_response: Any) -> list[bytes]:
    return []


class WsgiCallable:
    def __call__(self, environ: Any, start_response: Any) -> list[bytes]:
        return []


@pytest.mark.parametrize(
    ("app", "kind"),
    [
        (asgi_function, "asgi"),
        (AsgiCallable(), "asgi"),
        (functools.partial(asgi_function), "asgi"),
        (SyncThreeArgs(), "asgi"),
        (wsgi_function, "wsgi"),
        (WsgiCallable(), "wsgi"),
    ],
)
def test_detect_interface(app: Any, kind: str) -> None:
    assert detect_interface(app) == kind


def test_detect_interface_refuses_to_guess() -> None:
    with pytest.raises(AppImportError, match="--interface"):
        detect_interface(lambda *args: None)
    with pytest.raises(AppImportError, match="class"):
        detect_interface(AsgiCallable)


def test_detect_real_frameworks() -> None:
    fastapi = pytest.importorskip("fastapi")
    flask = pytest.importorskip("flask")
    assert detect_interface(fastapi.FastAPI()) == "asgi"
    assert detect_interface(flask.Flask("x")) == "wsgi"
