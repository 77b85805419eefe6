"""The applications ``bench_asgi2wsgi`` serves, one attribute per candidate.

``gunicorn bench._asgi2wsgi_app:anysgi_asyncio`` and so on. Each candidate is built on
first access (module ``__getattr__``), so a server process only ever holds the one it
serves: a2wsgi starts a loop thread as soon as it is built.

The ASGI application: ``/`` says hello (the throughput benchmark), ``/pid`` gives the
worker's pid, ``/upload`` counts a request body, ``/download?size=N`` streams N bytes.
"""

from __future__ import annotations

import os
from typing import Any

HELLO = b"Hello, world!"
HELLO_HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"13")]
CHUNK = 64 * 1024


async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return  # no lifespan: every candidate runs the same code per request
    path = scope["path"]
    if path == "/":
        await send({"type": "http.response.start", "status": 200, "headers": HELLO_HEADERS})
        await send({"type": "http.response.body", "body": HELLO})
    elif path == "/pid":
        body = str(os.getpid()).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
    elif path == "/upload":
        total = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return
            total += len(message.get("body", b""))
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(total).encode()})
    elif path == "/download":
        size = int(scope["query_string"].decode().partition("=")[2])
        headers = [(b"content-length", str(size).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        while size > 0:
            piece = os.urandom(min(size, CHUNK))  # fresh data, as a real app would send
            size -= len(piece)
            await send({"type": "http.response.body", "body": piece, "more_body": size > 0})


def native(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """The same hello world, written for WSGI: the ceiling for any adapter."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [HELLO]


class LoopFloor:
    """The least any adapter with a background event loop can do: a reference, not a peer.

    Each request is handed to one asyncio loop thread (``call_soon_threadsafe``), the ASGI
    hello app runs there as a task with a ``receive``/``send`` that only collect, and the
    WSGI thread waits on a lock for the answer. No scope, no headers, no validation, no
    streaming, no error handling: what is left is the two thread hand-offs and one task,
    which every design that runs the ASGI app on a loop of its own pays per request.
    """

    def __init__(self) -> None:
        import asyncio
        import threading

        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        self._lock_type = threading.Lock

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        done = self._lock_type()
        done.acquire()
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        async def run() -> None:
            try:
                await asgi_app({"type": "http", "path": "/"}, receive, send)
            finally:
                done.release()

        self._loop.call_soon_threadsafe(self._loop.create_task, run())
        done.acquire()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
        return [sent[1]["body"]]


def build(name: str) -> Any:
    if name == "native":
        return native
    if name == "loop_floor":
        return LoopFloor()
    if name == "a2wsgi":
        from a2wsgi import ASGIMiddleware

        return ASGIMiddleware(asgi_app)
    from anysgi import ASGI2WSGI

    if name == "anysgi_asyncio":
        return ASGI2WSGI(asgi_app, backend="asyncio", lifespan="off")
    if name == "anysgi_uvloop":
        return ASGI2WSGI(
            asgi_app, backend="asyncio", backend_options={"use_uvloop": True}, lifespan="off"
        )
    if name == "anysgi_trio":
        return ASGI2WSGI(asgi_app, backend="trio", lifespan="off")
    raise AttributeError(name)


_built: dict[str, Any] = {}


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    if name not in _built:
        _built[name] = build(name)
    return _built[name]
