"""Real ASGI frameworks under ASGI2WSGI: FastAPI, Starlette, Litestar and Django, plus an
application written with trio's own primitives. WSGI side: wsgiref's validator."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel

# Imported here, not in the tests: the frameworks resolve the (string) annotations of the
# endpoints below in this module's globals.
from fastapi import BackgroundTasks, FastAPI
from fastapi import Request as FastAPIRequest
from fastapi.responses import StreamingResponse
from litestar import Litestar, get, post
from litestar import Request as LitestarRequest
from litestar.response import Stream
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route

from anysgi import ASGI2WSGI

from .wsgi_client import make_environ, request, start

TIMEOUT = 20


# --- FastAPI -----------------------------------------------------------------------------


def fastapi_app(events: list[str], done: threading.Event, release: threading.Event) -> Any:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        events.append("startup")
        yield {"greeting": "hello"}
        events.append("shutdown")

    app = FastAPI(lifespan=lifespan)

    @app.get("/items/{item_id}")
    async def item(item_id: int, q: str | None = None) -> dict[str, Any]:
        return {"item_id": item_id, "q": q}

    @app.get("/state")
    async def state(request: FastAPIRequest) -> dict[str, str]:
        return {"greeting": request.state.greeting}

    @app.post("/echo")
    async def echo(request: FastAPIRequest) -> dict[str, Any]:
        data = await request.json()
        return {"got": data}

    @app.post("/later")
    async def later(tasks: BackgroundTasks) -> dict[str, str]:
        def work() -> None:
            release.wait(TIMEOUT)
            events.append("background")
            done.set()

        tasks.add_task(work)
        return {"status": "accepted"}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def generate() -> AsyncIterator[bytes]:
            yield b"first\n"
            await anyio.to_thread.run_sync(release.wait, TIMEOUT)
            yield b"second\n"

        return StreamingResponse(generate(), media_type="text/plain")

    @app.get("/sync")
    def sync_endpoint() -> dict[str, str]:  # FastAPI runs it in a worker thread
        return {"thread": threading.current_thread().name}

    return app


def test_fastapi(make_asgi2wsgi: Any) -> None:
    events: list[str] = []
    done, release = threading.Event(), threading.Event()
    wsgi = make_asgi2wsgi(fastapi_app(events, done, release))

    response = request(wsgi, "GET", "/items/42", query="q=x")
    assert response.status_code == 200
    assert response.header("content-type") == "application/json"
    assert response.body == b'{"item_id":42,"q":"x"}'
    assert request(wsgi, "GET", "/items/nope").status_code == 422
    assert request(wsgi, "GET", "/missing").status_code == 404
    assert request(wsgi, "GET", "/state").body == b'{"greeting":"hello"}'
    response = request(
        wsgi, "POST", "/echo", body=b'{"a": [1, 2]}', headers=[("Content-Type", "application/json")]
    )
    assert response.body == b'{"got":{"a":[1,2]}}'
    assert b"thread" in request(wsgi, "GET", "/sync").body
    assert events == ["startup"]

    # BackgroundTasks: the response is complete before the task runs.
    assert request(wsgi, "POST", "/later").body == b'{"status":"accepted"}'
    assert not done.is_set()
    release.set()
    assert done.wait(TIMEOUT)

    wsgi.close()
    assert events == ["startup", "background", "shutdown"]


def test_fastapi_streaming_response(make_asgi2wsgi: Any) -> None:
    release = threading.Event()
    wsgi = make_asgi2wsgi(fastapi_app([], threading.Event(), release))
    call = start(wsgi, make_environ("GET", "/stream"))
    assert call.status == "200 OK"
    assert call.next_chunk() == b"first\n"  # while the generator is blocked
    release.set()
    assert call.rest() == b"second\n"
    call.close()


# --- Starlette ---------------------------------------------------------------------------


def starlette_app(seen: list[str]) -> Any:
    async def upload(request: Request) -> Response:
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
        return PlainTextResponse(str(total))

    async def where(request: Request) -> Response:
        return PlainTextResponse(
            f"{request.url.path} {request.scope['root_path']} {request.url_for('where')}"
        )

    async def disconnected(request: Request) -> Response:
        await request.body()
        seen.append(str(await request.is_disconnected()))
        return PlainTextResponse("ok")

    return Starlette(
        routes=[
            Route("/upload", upload, methods=["POST"]),
            Mount("/sub", routes=[Route("/where", where, name="where")]),
            Route("/disconnected", disconnected),
        ]
    )


def test_starlette(make_asgi2wsgi: Any) -> None:
    seen: list[str] = []
    wsgi = make_asgi2wsgi(starlette_app(seen), read_chunk_size=1000)
    assert request(wsgi, "POST", "/upload", body=b"x" * 10_000).body == b"10000"
    assert request(wsgi, "POST", "/upload", body=b"").body == b"0"
    response = request(
        wsgi,
        "GET",
        "/sub/where",
        script_name="/mount",
        headers=[("Host", "example.org")],
        SERVER_NAME="example.org",
    )
    # SCRIPT_NAME is the root path: the application builds its URLs below it (and
    # Starlette's Mount extends root_path for the routes it holds).
    assert response.body == b"/mount/sub/where /mount/sub http://example.org/mount/sub/where"
    assert request(wsgi, "GET", "/disconnected").body == b"ok"
    assert seen == ["False"]


# --- Litestar ----------------------------------------------------------------------------


def test_litestar(make_asgi2wsgi: Any) -> None:
    @get("/hello/{name:str}")
    async def hello(request: LitestarRequest[Any, Any, Any]) -> dict[str, str]:
        return {"hello": request.path_params["name"]}

    @post("/size")
    async def size(request: LitestarRequest[Any, Any, Any]) -> str:
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
        return str(total)

    @get("/stream")
    async def stream() -> Stream:
        async def generate() -> AsyncIterator[bytes]:
            for i in range(3):
                yield f"{i};".encode()
                await anyio.lowlevel.checkpoint()

        return Stream(generate(), media_type="text/plain")

    wsgi = make_asgi2wsgi(Litestar([hello, size, stream]), read_chunk_size=4096)
    assert request(wsgi, "GET", "/hello/world").body == b'{"hello":"world"}'
    response = request(wsgi, "POST", "/size", body=b"y" * 100_000)
    assert response.status_code == 201
    assert response.body == b"100000"
    assert request(wsgi, "GET", "/stream").body == b"0;1;2;"


# --- Django ------------------------------------------------------------------------------


def test_django() -> None:
    # In a fresh interpreter: Django's settings are global, and other tests set their own.
    result = subprocess.run(
        [sys.executable, "-m", "tests.asgi2wsgi_django"],
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "django ok"


# --- trio's own primitives ---------------------------------------------------------------


def test_an_app_written_for_trio() -> None:
    import trio

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        results: list[str] = []
        async with trio.open_nursery() as nursery:
            for i in range(3):
                nursery.start_soon(_work, i, results)
        send_channel, receive_channel = trio.open_memory_channel[bytes](1)
        async with send_channel:
            nursery_body = ",".join(sorted(results)).encode()
            await send_channel.send(nursery_body)
        body = await receive_channel.receive()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        with trio.move_on_after(5):
            await send({"type": "http.response.body", "body": body})

    async def _work(i: int, results: list[str]) -> None:
        await trio.sleep(0.001 * i)
        results.append(f"{i}@{trio.lowlevel.current_task().name.rsplit('.', 1)[-1]}")

    with ASGI2WSGI(app, backend="trio") as wsgi:
        assert request(wsgi).body == b"0@_work,1@_work,2@_work"
