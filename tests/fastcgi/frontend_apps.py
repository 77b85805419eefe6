"""The application the front-end tests serve: ``anysgi serve tests.fastcgi.frontend_apps:app``.

One ASGI app with a few routes, plus a FastAPI app under ``/fastapi`` and a Flask app (through
WSGI2ASGI, wrapped in ``wsgiref.validate.validator``) under ``/flask``. ``CONTROL_DIR`` (an
environment variable) is where the tests and the app leave each other files: the test says
"go on" by creating one, the app says "I saw the client leave" by writing one.
"""

# No "from __future__ import annotations": FastAPI reads the route annotations at run time.
import hashlib
import json
import os
from pathlib import Path
from typing import Any
from wsgiref.validate import validator

import anyio

CONTROL_DIR = Path(os.environ.get("CONTROL_DIR", "/tmp"))


def _text(status: int, body: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    return (
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))],
        },
        {"type": "http.response.body", "body": body},
    )


async def _wait_for_file(path: Path, seconds: float = 20.0) -> bool:
    """Wait for a file the test creates in another process (no event crosses processes)."""
    with anyio.move_on_after(seconds):
        while not path.exists():  # noqa: ASYNC110, ASYNC240 (another process's file)
            await anyio.sleep(0.01)
        return True
    return False


async def core(scope: dict[str, Any], receive: Any, send: Any) -> None:
    path = scope["path"]
    query = dict(
        part.split("=", 1) for part in scope["query_string"].decode().split("&") if "=" in part
    )
    if path.endswith(("/upload", "/echo")):
        digest = hashlib.sha256()
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            digest.update(chunk)
            more = message.get("more_body", False)
        for message in _text(200, f"{size} {digest.hexdigest()}".encode()):
            await send(message)
        return
    if path.endswith("/stream"):
        go_on = CONTROL_DIR / query["key"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"chunk-1\n", "more_body": True})
        waited = await _wait_for_file(go_on)
        last = b"chunk-2\n" if waited else b"timed out waiting: the first chunk was held back\n"
        await send({"type": "http.response.body", "body": last})
        return
    if path.endswith("/forever"):
        report = CONTROL_DIR / query["key"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            with anyio.fail_after(30):
                while True:
                    await send(
                        {"type": "http.response.body", "body": b"x" * 1024, "more_body": True}
                    )
                    await anyio.sleep(0.02)
        except OSError:
            report.write_text("send raised OSError")
        return
    info = (
        f"{scope['method']} path={path} root_path={scope['root_path']} "
        f"query={scope['query_string'].decode()} pid={os.getpid()}"
    )
    for message in _text(200, info.encode()):
        await send(message)


def _make_fastapi() -> Any:
    from fastapi import FastAPI, Request

    api = FastAPI()

    @api.get("/items/{item_id}")
    async def get_item(item_id: int, request: Request) -> dict[str, Any]:
        return {"item_id": item_id, "root_path": request.scope["root_path"]}

    @api.post("/items")
    async def create_item(request: Request) -> dict[str, Any]:
        payload = await request.json()
        return {"created": payload, "url": str(request.url_for("get_item", item_id=7))}

    return api


def _make_flask() -> Any:
    from flask import Flask, request

    flask_app = Flask(__name__)

    @flask_app.get("/hello/<name>")
    def hello(name: str) -> dict[str, Any]:
        return {"hello": name, "script_name": request.script_root}

    @flask_app.post("/echo-json")
    def echo_json() -> dict[str, Any]:
        # PEP 3333's way, read(size) until b"": wsgiref.validate refuses the read() without
        # a size that werkzeug's get_json() makes when wsgi.input_terminated is set.
        chunks = []
        stream = request.environ["wsgi.input"]
        while chunk := stream.read(65536):
            chunks.append(chunk)
        return {"got": json.loads(b"".join(chunks))}

    return flask_app


_fastapi: Any = None
_flask: Any = None


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Dispatch on the path: /fastapi/..., /flask/..., anything else to :func:`core`."""
    global _fastapi, _flask  # built on first use: imports are slow
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    path = scope["path"]
    root = scope["root_path"]
    for prefix, kind in (("/fastapi", "fastapi"), ("/flask", "flask")):
        if path.startswith(root + prefix + "/"):
            scope = {**scope, "root_path": root + prefix}
            if kind == "fastapi":
                if _fastapi is None:
                    _fastapi = _make_fastapi()
                await _fastapi(scope, receive, send)
            else:
                if _flask is None:
                    from anysgi.wsgi2asgi import WSGI2ASGI

                    _flask = WSGI2ASGI(validator(_make_flask()))
                await _flask(scope, receive, send)
            return
    await core(scope, receive, send)
