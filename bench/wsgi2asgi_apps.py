"""The apps bench_wsgi2asgi measures: one WSGI hello app behind each WSGI-to-ASGI adapter.

Servers import ``bench.wsgi2asgi_apps:app``; ``W2A_CANDIDATE`` picks the adapter. The
``transfer`` candidate serves ``/upload`` and ``/download?size=N`` through WSGI2ASGI for the
memory figure.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator
from typing import Any, cast
from urllib.parse import parse_qs

HELLO = b"Hello, world!"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO)))]
CHUNK = 256 * 1024

ASGIApp = Callable[[Any, Any, Any], Any]


def hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", HEADERS)
    return [HELLO]


async def native(scope: Any, receive: Any, send: Any) -> None:
    """The same response written directly in ASGI: the floor for every adapter."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
        }
    )
    await send({"type": "http.response.body", "body": HELLO})


def transfer(environ: dict[str, Any], start_response: Any) -> Any:
    if environ["PATH_INFO"] == "/upload":
        stream = environ["wsgi.input"]
        size = 0
        while data := stream.read(CHUNK):
            size += len(data)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(size).encode()]
    size = int(parse_qs(environ["QUERY_STRING"])["size"][0])
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(size))])
    return _blocks(size)


def _blocks(size: int) -> Iterator[bytes]:
    block = b"d" * CHUNK
    while size > 0:
        yield block[:size]
        size -= CHUNK


#: name -> (factory, event loops it runs on)
CANDIDATES: dict[str, tuple[Callable[[], ASGIApp], tuple[str, ...]]] = {}


def _adapt(adapter: Any) -> ASGIApp:
    """The peers' own type hints disagree with each other: call them untyped."""
    return cast(ASGIApp, adapter(hello))


def _anysgi() -> ASGIApp:
    from anysgi import WSGI2ASGI

    return WSGI2ASGI(hello)


def _uvicorn() -> ASGIApp:
    from uvicorn.middleware.wsgi import _WSGIMiddleware

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return _adapt(_WSGIMiddleware)


def _a2wsgi() -> ASGIApp:
    from a2wsgi import WSGIMiddleware

    return _adapt(WSGIMiddleware)


def _asgiref() -> ASGIApp:
    from asgiref.wsgi import WsgiToAsgi

    return _adapt(WsgiToAsgi)


def _starlette() -> ASGIApp:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.middleware.wsgi import WSGIMiddleware

    return _adapt(WSGIMiddleware)


def _transfer() -> ASGIApp:
    from anysgi import WSGI2ASGI

    return WSGI2ASGI(transfer)


CANDIDATES.update(
    {
        "anysgi": (_anysgi, ("asyncio", "trio")),
        "uvicorn": (_uvicorn, ("asyncio",)),
        "a2wsgi": (_a2wsgi, ("asyncio",)),
        "asgiref": (_asgiref, ("asyncio",)),
        "starlette": (_starlette, ("asyncio", "trio")),
        "native": (lambda: native, ("asyncio", "trio")),
        "transfer": (_transfer, ("asyncio", "trio")),
    }
)


def build(name: str) -> ASGIApp:
    return CANDIDATES[name][0]()


app = build(os.environ.get("W2A_CANDIDATE", "anysgi"))
