"""The ASGI application that real WSGI servers serve through ASGI2WSGI in the tests.

``gunicorn tests.asgi2wsgi_apps:application`` (or waitress) with, in the environment:

* ``ANYSGI_TEST_BACKEND``: ``asyncio`` or ``trio``;
* ``ANYSGI_TEST_LOG``: a file that lifespan events are appended to (``startup PID``,
  ``shutdown PID``).

Routes: ``/hello``; ``/pid`` (the worker's pid and the pid lifespan startup ran in);
``/stream?release=PATH`` (a first chunk, then waits until PATH exists, then a second);
``/download?size=N``; ``/upload`` (a sink that answers with the byte count);
``/disconnect?marker=PATH`` (streams until the client goes away, then writes what it saw
to PATH).
"""

from __future__ import annotations

import os
import signal
import threading
from urllib.parse import parse_qs

import anyio

from anysgi import ASGI2WSGI
from anysgi._types import ASGIReceive, ASGISend, Scope

CHUNK = 64 * 1024


def _log(line: str) -> None:
    path = os.environ.get("ANYSGI_TEST_LOG")
    if path:
        with open(path, "a") as log:
            log.write(f"{line}\n")


def _query(scope: Scope) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}


async def _text(send: ASGISend, text: str, status: int = 200) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
    if scope["type"] == "lifespan":
        await receive()
        scope["state"]["startup_pid"] = os.getpid()
        _log(f"startup {os.getpid()}")
        await send({"type": "lifespan.startup.complete"})
        await receive()
        _log(f"shutdown {os.getpid()}")
        await send({"type": "lifespan.shutdown.complete"})
        return

    path = scope["path"]
    query = _query(scope)
    if path == "/hello":
        await _text(send, "Hello, world!")
    elif path == "/pid":
        threads = ",".join(sorted(t.name for t in threading.enumerate()))
        await _text(send, f"{os.getpid()} {scope['state']['startup_pid']} {threads}")
    elif path == "/stream":
        release = anyio.Path(query["release"])
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        await send({"type": "http.response.body", "body": b"data: first\n\n", "more_body": True})
        with anyio.move_on_after(20):
            # The test, another process, creates the file once it has the first chunk.
            while not await release.exists():  # noqa: ASYNC110 - no Event across processes
                await anyio.sleep(0.005)
        last = b"data: second\n\n" if await release.exists() else b"data: timed out\n\n"
        await send({"type": "http.response.body", "body": last})
    elif path == "/download":
        size = int(query["size"])
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/octet-stream"),
                    (b"content-length", str(size).encode()),
                ],
            }
        )
        while size > 0:
            piece = b"d" * min(size, CHUNK)  # a new buffer each time, as real data would be
            size -= len(piece)
            await send({"type": "http.response.body", "body": piece, "more_body": size > 0})
    elif path == "/upload":
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            total += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        await _text(send, str(total))
    elif path == "/disconnect":
        marker = anyio.Path(query["marker"])
        await receive()  # the (empty) request body
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/octet-stream")],
            }
        )
        seen: list[str] = []
        async with anyio.create_task_group() as tg:

            async def listen() -> None:
                message = await receive()
                seen.append(message["type"])
                tg.cancel_scope.cancel()

            tg.start_soon(listen)
            chunk = b"x" * CHUNK
            try:
                while True:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except OSError as exc:
                seen.append(type(exc).__name__)
                await anyio.sleep(20)  # let listen() see http.disconnect
        await marker.write_text(" ".join(seen))
    else:
        await _text(send, "Not Found", 404)


# A server started from a non-interactive shell's background job inherits SIGINT ignored;
# waitress is stopped with SIGINT (KeyboardInterrupt, then atexit hooks) in the tests.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _before_fork() -> None:
    # Under a pre-fork server: did the master have an event loop thread when it forked?
    portals = [t for t in threading.enumerate() if "-portal-" in t.name]
    _log(f"fork {os.getpid()} portals={len(portals)}")


os.register_at_fork(before=_before_fork)

application = ASGI2WSGI(
    app,
    backend=os.environ.get("ANYSGI_TEST_BACKEND", "asyncio"),  # type: ignore[arg-type]
)
