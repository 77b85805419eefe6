"""Typing for the two interfaces anysgi bridges: ASGI 3.0 (HTTP + lifespan) and WSGI (PEP 3333).

Typing only: nothing here runs at request time. Scopes and messages are ``TypedDict``\\ s
where anysgi builds them (so mypy checks every key we set) and plain mappings where an
application hands them to us (an app may put any key in, and we read with ``.get``).
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from types import TracebackType
from typing import Any, Literal, Protocol, TypeAlias, TypedDict

if sys.version_info >= (3, 11):
    from typing import NotRequired
else:  # pragma: no cover
    from typing_extensions import NotRequired

__all__ = (
    "ASGIApp",
    "ASGIReceive",
    "ASGISend",
    "ASGIVersions",
    "Environ",
    "ExcInfo",
    "HTTPScope",
    "LifespanScope",
    "Message",
    "OptExcInfo",
    "Scope",
    "StartResponse",
    "WSGIApp",
    "WriteCallable",
)

# --- ASGI ---------------------------------------------------------------------------------

Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
ASGIReceive: TypeAlias = Callable[[], Awaitable[Message]]
ASGISend: TypeAlias = Callable[[Message], Awaitable[None]]
ASGIApp: TypeAlias = Callable[[Scope, ASGIReceive, ASGISend], Awaitable[None]]


class ASGIVersions(TypedDict):
    version: Literal["3.0"]
    spec_version: str


class HTTPScope(TypedDict):
    """The ``http`` connection scope, as the ASGI 3.0 HTTP spec lists its keys."""

    type: Literal["http"]
    asgi: ASGIVersions
    http_version: str
    method: str
    scheme: str
    path: str
    raw_path: bytes
    query_string: bytes
    root_path: str
    headers: list[tuple[bytes, bytes]]
    client: tuple[str, int] | None
    server: tuple[str, int | None] | None
    state: NotRequired[dict[str, Any]]
    extensions: NotRequired[dict[str, dict[object, object]]]


class LifespanScope(TypedDict):
    type: Literal["lifespan"]
    asgi: ASGIVersions
    state: NotRequired[dict[str, Any]]


# --- WSGI (PEP 3333) ----------------------------------------------------------------------

Environ: TypeAlias = dict[str, Any]
ExcInfo: TypeAlias = tuple[type[BaseException], BaseException, TracebackType]
OptExcInfo: TypeAlias = ExcInfo | tuple[None, None, None]
WriteCallable: TypeAlias = Callable[[bytes], object]


class StartResponse(Protocol):
    """PEP 3333: ``start_response(status, response_headers, exc_info=None)`` returns ``write``."""

    def __call__(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: OptExcInfo | None = ...,
        /,
    ) -> WriteCallable: ...


WSGIApp: TypeAlias = Callable[[Environ, StartResponse], Iterable[bytes]]
