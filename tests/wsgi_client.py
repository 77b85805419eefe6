"""Drive a WSGI application the way a server does, through ``wsgiref.validate.validator``.

Every call goes through the validator (PEP 3333 checks on both sides), so a WSGI bug in
the application under test fails the test, and so does an iterable that is never closed
(the validator warns, and pytest turns warnings into errors).
"""

from __future__ import annotations

import io
import sys
import wsgiref.util
import wsgiref.validate
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from anysgi._types import ExcInfo, WSGIApp


@dataclass
class Response:
    status: str
    headers: list[tuple[str, str]]
    body: bytes
    exc_info: ExcInfo | None = None

    @property
    def status_code(self) -> int:
        return int(self.status[:3])

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


class TrackingInput(io.RawIOBase):
    """A wsgi.input that records every read size and can fail on reading."""

    def __init__(self, data: bytes = b"", *, forbid: bool = False) -> None:
        self._data = io.BytesIO(data)
        self.reads: list[int] = []
        self.forbid = forbid

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if self.forbid:
            raise AssertionError("wsgi.input must not be read")
        self.reads.append(-1 if size is None else size)
        return self._data.read(size)

    def readinto(self, buffer: Any) -> int:  # pragma: no cover - not used by the adapter
        raise NotImplementedError


class ChunkedInput(io.RawIOBase):
    """A wsgi.input of unknown length producing *total* bytes in *chunk*-sized pieces."""

    def __init__(self, total: int, chunk: int = 65536, fill: bytes = b"x") -> None:
        self.remaining = total
        self.chunk = chunk
        self.fill = fill
        self.reads: list[int] = []

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        self.reads.append(-1 if size is None else size)
        n = self.remaining if size is None or size < 0 else min(size, self.remaining)
        self.remaining -= n
        return self.fill * n

    def readinto(self, buffer: Any) -> int:  # pragma: no cover - not used by the adapter
        raise NotImplementedError


@dataclass
class Call:
    """An application call whose body is iterated by the test, chunk by chunk."""

    result: Iterable[bytes]
    started: list[tuple[str, list[tuple[str, str]], ExcInfo | None]] = field(default_factory=list)
    _iterator: Iterator[bytes] | None = None

    @property
    def status(self) -> str:
        return self.started[-1][0]

    @property
    def headers(self) -> list[tuple[str, str]]:
        return self.started[-1][1]

    def next_chunk(self) -> bytes:
        if self._iterator is None:
            self._iterator = iter(self.result)
        return next(self._iterator)

    def rest(self) -> bytes:
        if self._iterator is None:
            self._iterator = iter(self.result)
        return b"".join(self._iterator)

    def close(self) -> None:
        close = getattr(self.result, "close", None)
        if close is not None:
            close()


def make_environ(
    method: str = "GET",
    path: str = "/",
    *,
    query: str = "",
    body: bytes | None = None,
    content_length: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    script_name: str = "",
    wsgi_input: Any = None,
    input_terminated: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """A PEP 3333 environ: *path* is the PATH_INFO as a WSGI ("latin-1") string."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "50000",
        "wsgi.errors": sys.stderr,
    }
    wsgiref.util.setup_testing_defaults(environ)
    if wsgi_input is not None:
        environ["wsgi.input"] = wsgi_input
    elif body is not None:
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
    if content_length is not None:
        environ["CONTENT_LENGTH"] = content_length
    if input_terminated:
        environ["wsgi.input_terminated"] = True
    for name, value in headers:
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        environ[key] = value
    environ.update(extra)
    return environ


def start(app: WSGIApp, environ: dict[str, Any]) -> Call:
    """Call *app* (wrapped in the validator) and return the call, body not yet iterated."""
    started: list[tuple[str, list[tuple[str, str]], ExcInfo | None]] = []

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Any:
        started.append((status, headers, exc_info))
        return lambda data: None

    result = wsgiref.validate.validator(app)(environ, start_response)  # type: ignore[arg-type]
    return Call(result, started)


def request(app: WSGIApp, *args: Any, **kwargs: Any) -> Response:
    """One complete request: the body is read to the end and the iterable closed."""
    call = start(app, make_environ(*args, **kwargs))
    try:
        body = call.rest()
    finally:
        call.close()
    status, headers, exc_info = call.started[-1]
    return Response(status, headers, body, exc_info)
