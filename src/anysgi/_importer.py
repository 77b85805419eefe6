"""``"module:attr"`` to an application object, and telling ASGI apps from WSGI apps.

Loading uses :func:`importlib.import_module` and a walk of :func:`getattr` over the dotted
attribute path: nothing is evaluated, so ``"mod:create_app()"`` is refused rather than run
(use ``--factory`` to call a factory).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
from typing import Literal

__all__ = ("AppImportError", "Interface", "detect_interface", "import_app")

Interface = Literal["asgi", "wsgi"]


class AppImportError(Exception):
    """The application path cannot be loaded; the message is one line for the user."""


def import_app(path: str, *, factory: bool = False) -> object:
    """Load ``"package.module:attribute.path"`` (attribute defaults to ``app``).

    :param factory: call the attribute with no arguments and return what it returns.
    :raises AppImportError: with a one-line message when the module or attribute is missing,
        the path is malformed, or the factory fails.
    """
    module_name, _, attr_path = path.partition(":")
    attr_path = attr_path or "app"
    if not module_name or not all(part.isidentifier() for part in module_name.split(".")):
        raise AppImportError(f"invalid application path {path!r}: expected 'module:attribute'")
    if not all(part.isidentifier() for part in attr_path.split(".")):
        raise AppImportError(
            f"invalid attribute {attr_path!r} in {path!r}: expected a dotted name "
            f"(use --factory to call a factory)"
        )
    if "" not in sys.path and "." not in sys.path:
        # Like `python -m`: modules in the current directory are found.
        sys.path.insert(0, "")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (
            module_name == exc.name or module_name.startswith(exc.name + ".")
        ):
            raise AppImportError(
                f"cannot import {module_name!r}: no module named {exc.name!r}"
            ) from None
        raise
    obj: object = module
    try:
        for part in attr_path.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise AppImportError(f"module {module_name!r} has no attribute {attr_path!r}") from None
    if factory:
        if not callable(obj):
            raise AppImportError(f"{path!r} is not callable, so it cannot be a --factory")
        obj = obj()
    if not callable(obj):
        raise AppImportError(f"{path!r} is {type(obj).__name__}, not a callable application")
    return obj


def _positional_count(fn: object) -> int | None:
    try:
        signature = inspect.signature(fn)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    count = 0
    for parameter in signature.parameters.values():
        if parameter.kind is parameter.VAR_POSITIONAL:
            return None
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            count += 1
    return count


def _is_coroutine_function(fn: object) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 (an instance whose __call__ is async)
    )


def detect_interface(app: object) -> Interface:
    """Whether *app* is an ASGI or a WSGI application (``--interface auto``).

    The rule, in order:

    1. a coroutine function, or an object whose ``__call__`` is one, is ASGI (Starlette,
       FastAPI, Django's ASGIHandler, Quart, any ``async def app(scope, receive, send)``);
    2. otherwise a callable taking exactly three positional arguments is ASGI, and one
       taking exactly two (``environ, start_response``) is WSGI (Flask, Django's
       WSGIHandler, Falcon, Bottle, Pyramid);
    3. anything else cannot be told apart, and :exc:`AppImportError` asks for
       ``--interface``.

    A class (an ASGI 2 "double callable") is not accepted.
    """
    if inspect.isclass(app):
        raise AppImportError(
            f"{app!r} is a class; pass an instance (ASGI 2 double callables are not supported)"
        )
    if _is_coroutine_function(app):
        return "asgi"
    count = _positional_count(app)
    if count == 3:
        return "asgi"
    if count == 2:
        return "wsgi"
    raise AppImportError(
        f"cannot tell whether {app!r} is an ASGI or a WSGI application: pass --interface asgi "
        f"or --interface wsgi"
    )
