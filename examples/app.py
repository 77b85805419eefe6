"""The bundled example app: a small ASGI app with the cases that matter to a bridge.

``/``          a plain "Hello, world!" response
``/echo``      the request body back (POST)
``/stream``    a streamed response, one line every 0.1 s
``/scope``     the request's method, path, root_path and query string as JSON
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        raise RuntimeError(f"unsupported scope type {scope['type']!r}")

    path = scope["path"][len(scope.get("root_path", "")) :] or "/"
    headers = [(b"content-type", b"text/plain; charset=utf-8")]
    if path == "/echo":
        body = bytearray()
        more_body = True
        while more_body:
            message = await receive()
            body += message.get("body", b"")
            more_body = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": bytes(body)})
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for i in range(5):
            await send(
                {"type": "http.response.body", "body": f"line {i}\n".encode(), "more_body": True}
            )
            await anyio.sleep(0.1)
        await send({"type": "http.response.body", "body": b""})
    elif path == "/scope":
        info = {
            "method": scope["method"],
            "path": scope["path"],
            "root_path": scope.get("root_path", ""),
            "query_string": scope["query_string"].decode("latin-1"),
        }
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": json.dumps(info).encode()})
    elif path == "/":
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"Hello, world!\n"})
    else:
        await send({"type": "http.response.start", "status": 404, "headers": headers})
        await send({"type": "http.response.body", "body": b"Not Found\n"})
