"""ASGI2WSGI, with the WSGI side driven directly (through wsgiref's validator).

Every test runs on asyncio and trio (the ``portal_backend`` fixture).
"""

from __future__ import annotations

import contextvars
import gc
import io
import logging
import os
import queue
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from anysgi import ASGI2WSGI
from anysgi._errors import ClientDisconnectedError, LifespanError
from anysgi._types import ASGIReceive, ASGISend, Message, Scope

from .wsgi_client import ChunkedInput, TrackingInput, make_environ, request, start

LOGGER = "anysgi.asgi2wsgi"
TIMEOUT = 20  # seconds any single wait in these tests may take before it is a failure

Make = Callable[..., ASGI2WSGI]


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    """Poll *predicate* (a state another thread reaches) until true, or fail."""
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        time.sleep(0.001)


def text_start(status: int = 200, **extra: Any) -> Message:
    return {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"text/plain")],
        **extra,
    }


async def read_body(receive: ASGIReceive) -> tuple[bytes, list[Message]]:
    messages: list[Message] = []
    body = b""
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return body, messages
        body += message["body"]
        if not message.get("more_body", False):
            return body, messages


async def hello(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
        }
    )
    await send({"type": "http.response.body", "body": b"Hello, world!"})


# --- the basics ------------------------------------------------------------------------


def test_hello_world(make_asgi2wsgi: Make) -> None:
    response = request(make_asgi2wsgi(hello))
    assert response.status == "200 OK"
    assert response.headers == [("content-type", "text/plain"), ("content-length", "13")]
    assert response.body == b"Hello, world!"


def test_status_line_and_hop_by_hop_headers(make_asgi2wsgi: Make) -> None:
    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 418,
                "headers": [
                    (b"content-type", b"text/plain"),
                    (b"Connection", b"close"),
                    (b"transfer-encoding", b"chunked"),
                    (b"set-cookie", b"a=1"),
                    (b"set-cookie", b"b=2"),
                    (b"x-latin", "caf\xe9".encode("latin-1")),
                ],
            }
        )
        await send({"type": "http.response.body", "body": bytearray(b"teapot")})

    response = request(make_asgi2wsgi(app))
    assert response.status == "418 I'm a Teapot"
    # PEP 3333 forbids hop-by-hop headers from applications: the server owns them.
    assert response.headers == [
        ("content-type", "text/plain"),
        ("set-cookie", "a=1"),
        ("set-cookie", "b=2"),
        ("x-latin", "caf\xe9"),
    ]
    assert response.body == b"teapot"


def test_scope_is_exact(make_asgi2wsgi: Make) -> None:
    scopes: list[Scope] = []

    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] == "lifespan":
            await receive()
            scope["state"]["pool"] = "db"
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        scopes.append(scope)
        await hello(scope, receive, send)

    path = "/app/caf\xc3\xa9/a b"  # UTF-8 bytes as a WSGI (latin-1) string
    environ = make_environ(
        "POST",
        path[len("/app") :],
        script_name="/app",
        query="x=1&y=%2F",
        body=b"abc",
        headers=[("Content-Type", "text/plain"), ("X-Custom", "one"), ("Host", "example.org")],
        SERVER_PROTOCOL="HTTP/1.0",
        REQUEST_URI="/app/caf%C3%A9/a%20b?x=1&y=%2F",
    )
    environ["wsgi.url_scheme"] = "https"
    call = start(make_asgi2wsgi(app), environ)
    call.rest()
    call.close()
    (scope,) = scopes
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.0"
    assert scope["method"] == "POST"
    assert scope["scheme"] == "https"
    assert scope["path"] == "/app/café/a b"
    assert scope["raw_path"] == b"/app/caf%C3%A9/a%20b"
    assert scope["root_path"] == "/app"
    assert scope["query_string"] == b"x=1&y=%2F"
    assert sorted(scope["headers"]) == sorted(
        [
            (b"content-type", b"text/plain"),
            (b"content-length", b"3"),
            (b"x-custom", b"one"),
            (b"host", b"example.org"),
        ]
    )
    assert scope["client"] == ("127.0.0.1", 50000)
    assert scope["server"] == ("testserver", 80)
    assert scope["state"] == {"pool": "db"}
    assert scope["extensions"]["wsgi"]["environ"]["PATH_INFO"] == environ["PATH_INFO"]
    assert scope["extensions"]["wsgi"]["environ"]["REQUEST_URI"] == environ["REQUEST_URI"]


def test_invalid_utf8_in_path_does_not_crash(make_asgi2wsgi: Make) -> None:
    paths: list[str] = []

    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        paths.append(scope["path"])
        await hello(scope, receive, send)

    response = request(make_asgi2wsgi(app), "GET", "/bad\xff\xfe")
    assert response.status_code == 200
    assert paths[0].encode("utf-8", "surrogateescape") == b"/bad\xff\xfe"


def test_state_is_a_shallow_copy_per_request(make_asgi2wsgi: Make) -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] == "lifespan":
            await receive()
            scope["state"].update(counter=0, shared=[])
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        state = scope["state"]
        seen.append(dict(state))
        state["counter"] += 1  # rebinding a key stays within this request
        state["shared"].append(1)  # mutating a shared object is visible to all
        await hello(scope, receive, send)

    wsgi = make_asgi2wsgi(app)
    for _ in range(3):
        request(wsgi)
    assert [s["counter"] for s in seen] == [0, 0, 0]
    assert seen[-1]["shared"] == [1, 1, 1]


def test_context_variables_do_not_leak_between_requests(make_asgi2wsgi: Make) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    seen: list[str] = []

    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            return
        seen.append(var.get())
        var.set(scope["path"])
        await anyio.lowlevel.checkpoint()
        seen.append(var.get())
        await hello(scope, receive, send)

    wsgi = make_asgi2wsgi(app)
    request(wsgi, "GET", "/one")
    request(wsgi, "GET", "/two")
    assert seen == ["unset", "/one", "unset", "/two"]


def test_the_wsgi_threads_context_does_not_reach_the_app(make_asgi2wsgi: Make) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("wsgi_side", default="unset")
    seen: list[str] = []

    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] == "http":
            seen.append(var.get())
            await hello(scope, receive, send)

    wsgi = make_asgi2wsgi(app)
    token = var.set("set in the WSGI thread")
    try:
        request(wsgi)
        request(wsgi)
    finally:
        var.reset(token)
    assert seen == ["unset", "unset"]


# --- request bodies ----------------------------------------------------------------------


def echo_app(messages: list[Message] | None = None, done: threading.Event | None = None) -> Any:
    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            return
        try:
            body, received = await read_body(receive)
            if messages is not None:
                messages.extend(received)
            await send(text_start())
            await send({"type": "http.response.body", "body": body})
        finally:
            if done is not None:
                done.set()

    return app


def test_small_body_arrives_in_one_message(make_asgi2wsgi: Make) -> None:
    messages: list[Message] = []
    response = request(make_asgi2wsgi(echo_app(messages)), "POST", body=b"hello")
    assert response.body == b"hello"
    assert messages == [{"type": "http.request", "body": b"hello", "more_body": False}]


def test_large_body_streams_in_bounded_chunks(make_asgi2wsgi: Make) -> None:
    messages: list[Message] = []
    data = os.urandom(10_000)
    wsgi_input = TrackingInput(data)
    response = request(
        make_asgi2wsgi(echo_app(messages), read_chunk_size=1024),
        "POST",
        wsgi_input=wsgi_input,
        content_length=str(len(data)),
    )
    assert response.body == data
    assert max(wsgi_input.reads) == 1024
    assert len(messages) == 10
    assert [m["more_body"] for m in messages] == [True] * 9 + [False]


def test_chunked_body_is_read_to_eof_when_input_terminated(make_asgi2wsgi: Make) -> None:
    messages: list[Message] = []
    wsgi_input = ChunkedInput(5000, fill=b"z")
    response = request(
        make_asgi2wsgi(echo_app(messages), read_chunk_size=2048),
        "POST",
        wsgi_input=wsgi_input,
        input_terminated=True,
    )
    assert response.body == b"z" * 5000
    assert wsgi_input.reads == [2048, 2048, 2048, 2048]
    assert messages[-1] == {"type": "http.request", "body": b"", "more_body": False}


def test_no_length_and_no_input_terminated_means_no_body(make_asgi2wsgi: Make) -> None:
    messages: list[Message] = []
    response = request(
        make_asgi2wsgi(echo_app(messages)), "POST", wsgi_input=TrackingInput(forbid=True)
    )
    assert response.status_code == 200
    assert messages == [{"type": "http.request", "body": b"", "more_body": False}]


@pytest.mark.parametrize("value", ["abc", "-1", "1_0", " 12", "²"])
def test_invalid_content_length_is_400(make_asgi2wsgi: Make, value: str) -> None:
    called = threading.Event()

    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] == "http":
            called.set()

    # Not through the validator: it rejects such an environ itself. Servers pass them on.
    environ = make_environ("POST", content_length=value, wsgi_input=io.BytesIO(b"x"))
    started: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        started.append(status)

    body = make_asgi2wsgi(app)(environ, start_response)
    assert started == ["400 Bad Request"]
    assert b"".join(body) == b"Bad Request: invalid Content-Length"
    assert not called.is_set()


def test_truncated_body_is_a_disconnect(make_asgi2wsgi: Make) -> None:
    messages: list[Message] = []
    response = request(
        make_asgi2wsgi(echo_app(messages)),
        "POST",
        wsgi_input=io.BytesIO(b"abc"),
        content_length="10",
    )
    assert response.status_code == 200
    assert messages == [{"type": "http.disconnect"}]


def test_truncated_large_body_is_a_disconnect(make_asgi2wsgi: Make) -> None:
    messages: list[Message] = []
    request(
        make_asgi2wsgi(echo_app(messages), read_chunk_size=4),
        "POST",
        wsgi_input=io.BytesIO(b"abcdef"),
        content_length="10",
    )
    assert messages == [
        {"type": "http.request", "body": b"abcd", "more_body": True},
        {"type": "http.request", "body": b"ef", "more_body": True},
        {"type": "http.disconnect"},
    ]


def test_max_request_body_content_length_gets_413_without_calling_the_app(
    make_asgi2wsgi: Make,
) -> None:
    called = threading.Event()

    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] == "http":
            called.set()
            await hello(scope, receive, send)

    wsgi = make_asgi2wsgi(app, max_request_body=100)
    response = request(wsgi, "POST", content_length="101", wsgi_input=TrackingInput(forbid=True))
    assert response.status_code == 413
    assert response.header("content-type") == "text/plain; charset=utf-8"
    assert not called.is_set()
    assert request(wsgi, "POST", body=b"x" * 100).status_code == 200
    assert called.is_set()


def test_max_request_body_chunked_gets_413_and_the_app_a_disconnect(make_asgi2wsgi: Make) -> None:
    messages: list[Message] = []
    done = threading.Event()
    wsgi_input = ChunkedInput(10_000)
    response = request(
        make_asgi2wsgi(echo_app(messages, done), max_request_body=3000, read_chunk_size=1000),
        "POST",
        wsgi_input=wsgi_input,
        input_terminated=True,
    )
    assert response.status_code == 413
    assert done.wait(TIMEOUT)
    assert messages[-1] == {"type": "http.disconnect"}
    assert sum(len(m.get("body", b"")) for m in messages) == 3000
    assert len(wsgi_input.reads) == 4  # stopped as soon as the limit was passed


def test_max_request_body_exceeded_after_the_response_started_cuts_it(make_asgi2wsgi: Make) -> None:
    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        await send(text_start())
        await send({"type": "http.response.body", "body": b"early", "more_body": True})
        body, _ = await read_body(receive)
        await send({"type": "http.response.body", "body": body})

    call = start(
        make_asgi2wsgi(app, max_request_body=10, read_chunk_size=8),
        make_environ("POST", wsgi_input=ChunkedInput(100), input_terminated=True),
    )
    assert call.next_chunk() == b"early"
    with pytest.raises(Exception, match="max_request_body"):
        call.rest()
    call.close()


def test_body_can_be_read_after_the_response_started(make_asgi2wsgi: Make) -> None:
    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        await send(text_start())
        await send({"type": "http.response.body", "body": b"<", "more_body": True})
        while True:
            message = await receive()
            await send({"type": "http.response.body", "body": message["body"], "more_body": True})
            if not message["more_body"]:
                break
        await send({"type": "http.response.body", "body": b">"})

    response = request(make_asgi2wsgi(app, read_chunk_size=3), "POST", body=b"abcdefgh")
    assert response.body == b"<abcdefgh>"


# --- responses ---------------------------------------------------------------------------


def test_first_chunk_reaches_the_server_before_the_app_finishes(make_asgi2wsgi: Make) -> None:
    release = threading.Event()
    finished = threading.Event()

    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        await send(text_start())
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        await anyio.to_thread.run_sync(release.wait, TIMEOUT)
        finished.set()
        await send({"type": "http.response.body", "body": b"data: 2\n\n"})

    call = start(make_asgi2wsgi(app), make_environ())
    assert call.status == "200 OK"  # start_response was called before __call__ returned
    assert call.next_chunk() == b"data: 1\n\n"
    assert not finished.is_set()
    release.set()
    assert call.rest() == b"data: 2\n\n"
    call.close()


def test_send_waits_for_the_server_to_take_chunks(make_asgi2wsgi: Make) -> None:
    sent = 0
    total = 50
    chunk = b"x" * 1000

    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        nonlocal sent
        await send(text_start())
        for _ in range(total):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            sent += 1
        await send({"type": "http.response.body", "body": b""})

    call = start(make_asgi2wsgi(app, send_buffer_size=4000), make_environ())
    taken = 1
    assert call.next_chunk() == chunk
    while taken < total:
        # The app runs ahead of the server by at most the buffer (4 chunks) plus the
        # chunk its blocked send() holds, and it does reach that point.
        target = min(total, taken + 4)
        wait_until(lambda: sent >= target, f"the app sent {target} chunks")  # noqa: B023
        assert sent <= taken + 5
        assert call.next_chunk() == chunk
        taken += 1
    assert call.rest() == b""
    call.close()


def test_app_returning_after_start_without_body_ends_cleanly(make_asgi2wsgi: Make) -> None:
    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        await send({"type": "http.response.start", "status": 204})

    response = request(make_asgi2wsgi(app))
    assert response.status == "204 No Content"
    assert response.body == b""


def test_app_returning_mid_body_ends_cleanly(make_asgi2wsgi: Make) -> None:
    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        await send(text_start())
        await send({"type": "http.response.body", "body": b"part", "more_body": True})

    response = request(make_asgi2wsgi(app))
    assert response.status_code == 200
    assert response.body == b"part"


def test_trailers_are_dropped_and_the_response_completes(make_asgi2wsgi: Make) -> None:
    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        await send(text_start(trailers=True))
        await send({"type": "http.response.body", "body": b"body"})
        await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"1")]})

    response = request(make_asgi2wsgi(app))
    assert response.body == b"body"


# --- errors ------------------------------------------------------------------------------


def test_exception_before_start_is_a_logged_500(
    make_asgi2wsgi: Make, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        raise ValueError("boom before start")

    with caplog.at_level(logging.ERROR, logger=LOGGER):
        response = request(make_asgi2wsgi(app), "GET", "/broken")
    assert response.status == "500 Internal Server Error"
    assert response.exc_info is not None
    assert isinstance(response.exc_info[1], ValueError)
    (record,) = [r for r in caplog.records if r.name == LOGGER]
    assert "GET /broken" in record.getMessage()
    assert record.exc_info is not None
    assert record.exc_info[1] is response.exc_info[1]


def test_exception_after_start_before_any_body_is_still_a_500(make_asgi2wsgi: Make) -> None:
    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        await send(text_start())
        raise ValueError("boom after start")

    response = request(make_asgi2wsgi(app))
    assert response.status_code == 500


def test_exception_after_the_first_chunk_propagates_to_the_server(
    make_asgi2wsgi: Make, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        await send(text_start())
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise ValueError("boom mid-body")

    call = start(make_asgi2wsgi(app), make_environ())
    assert call.next_chunk() == b"partial"
    with pytest.raises(ValueError, match="boom mid-body"):
        call.next_chunk()
    call.close()


def test_app_returning_without_a_response_is_a_logged_500(
    make_asgi2wsgi: Make, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        return

    with caplog.at_level(logging.ERROR, logger=LOGGER):
        response = request(make_asgi2wsgi(app))
    assert response.status_code == 500
    assert any("without sending a response" in str(r.exc_info) for r in caplog.records)


def test_system_exit_in_the_app_is_a_500_and_the_loop_lives_on(make_asgi2wsgi: Make) -> None:
    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] == "http" and scope["path"] == "/exit":
            raise SystemExit(3)
        await hello(scope, receive, send)

    wsgi = make_asgi2wsgi(app)
    assert request(wsgi, "GET", "/exit").status_code == 500
    assert request(wsgi).status_code == 200


def test_a_failing_wsgi_input_is_a_disconnect(make_asgi2wsgi: Make) -> None:
    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def read(self, size: int | None = -1) -> bytes:
            raise OSError("connection reset by peer")

    messages: list[Message] = []
    done = threading.Event()
    response = request(
        make_asgi2wsgi(echo_app(messages, done), read_chunk_size=10),
        "POST",
        wsgi_input=Broken(),
        content_length="100",
    )
    assert response.status_code == 200
    assert done.wait(TIMEOUT)
    assert messages == [{"type": "http.disconnect"}]


@pytest.mark.parametrize(
    "messages",
    [
        pytest.param([{"type": "http.response.body", "body": b"x"}], id="body-before-start"),
        pytest.param([text_start(), text_start()], id="start-twice"),
        pytest.param([{"type": "http.response.start", "status": 99}], id="bad-status"),
        pytest.param([{"type": "websocket.accept"}], id="unknown-type"),
    ],
)
def test_protocol_errors_are_500s(make_asgi2wsgi: Make, messages: list[Message]) -> None:
    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        for message in messages:
            await send(message)

    assert request(make_asgi2wsgi(app)).status_code == 500


def test_send_after_complete_raises(make_asgi2wsgi: Make) -> None:
    errors: queue.Queue[BaseException] = queue.Queue()

    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        await send(text_start())
        await send({"type": "http.response.body", "body": b"done"})
        try:
            await send({"type": "http.response.body", "body": b"again"})
        except RuntimeError as exc:
            errors.put(exc)

    assert request(make_asgi2wsgi(app)).body == b"done"
    assert "complete" in str(errors.get(timeout=TIMEOUT))


def test_exception_after_the_response_is_logged(
    make_asgi2wsgi: Make, caplog: pytest.LogCaptureFixture
) -> None:
    logged = threading.Event()

    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "after its response ended" in record.getMessage():
                logged.set()

    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        await send(text_start())
        await send({"type": "http.response.body", "body": b"ok"})
        raise ValueError("background failure")

    handler = Handler()
    logging.getLogger(LOGGER).addHandler(handler)
    try:
        assert request(make_asgi2wsgi(app)).body == b"ok"
        assert logged.wait(TIMEOUT)
    finally:
        logging.getLogger(LOGGER).removeHandler(handler)


# --- disconnect and background work -----------------------------------------------------


def test_receive_says_disconnect_once_the_response_is_complete(make_asgi2wsgi: Make) -> None:
    after: queue.Queue[Message] = queue.Queue()

    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        await receive()  # the (empty) body
        await send(text_start())
        await send({"type": "http.response.body", "body": b"ok"})
        after.put(await receive())

    assert request(make_asgi2wsgi(app)).body == b"ok"
    assert after.get(timeout=TIMEOUT) == {"type": "http.disconnect"}


def test_receive_blocks_until_the_response_is_complete(make_asgi2wsgi: Make) -> None:
    order: queue.Queue[str] = queue.Queue()

    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        await receive()

        async def listen() -> None:
            message = await receive()
            order.put(message["type"])

        async with anyio.create_task_group() as tg:
            tg.start_soon(listen)
            await send(text_start())
            await send({"type": "http.response.body", "body": b"a", "more_body": True})
            await anyio.sleep(0.05)
            order.put("still streaming")
            await send({"type": "http.response.body", "body": b"b"})

    assert request(make_asgi2wsgi(app)).body == b"ab"
    assert order.get(timeout=TIMEOUT) == "still streaming"
    assert order.get(timeout=TIMEOUT) == "http.disconnect"


def test_client_gone_mid_stream_the_app_sees_disconnect(make_asgi2wsgi: Make) -> None:
    seen: queue.Queue[object] = queue.Queue()

    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        await receive()
        await send(text_start())
        await send({"type": "http.response.body", "body": b"1", "more_body": True})
        seen.put(await receive())
        try:
            await send({"type": "http.response.body", "body": b"2", "more_body": True})
        except OSError as exc:
            seen.put(exc)

    call = start(make_asgi2wsgi(app), make_environ())
    assert call.next_chunk() == b"1"
    call.close()  # what a server does when the client goes away
    assert seen.get(timeout=TIMEOUT) == {"type": "http.disconnect"}
    error = seen.get(timeout=TIMEOUT)
    assert isinstance(error, ClientDisconnectedError)
    assert isinstance(error, OSError)


def test_background_work_runs_after_the_response_without_holding_the_thread(
    make_asgi2wsgi: Make,
) -> None:
    proceed = threading.Event()
    done = threading.Event()

    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        await send(text_start())
        await send({"type": "http.response.body", "body": b"accepted"})
        await anyio.to_thread.run_sync(proceed.wait, TIMEOUT)
        done.set()

    assert request(make_asgi2wsgi(app)).body == b"accepted"  # returned while the app still runs
    assert not done.is_set()
    proceed.set()
    assert done.wait(TIMEOUT)


def test_wait_time_cancels_work_left_after_the_response(
    make_asgi2wsgi: Make, caplog: pytest.LogCaptureFixture
) -> None:
    cancelled = threading.Event()

    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        await send(text_start())
        await send({"type": "http.response.body", "body": b"ok"})
        try:
            await anyio.sleep(TIMEOUT)
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise

    wsgi = make_asgi2wsgi(app, wait_time=0.05)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert request(wsgi).body == b"ok"
        assert cancelled.wait(TIMEOUT)
        # The worker is still usable.
        assert request(wsgi).body == b"ok"
    assert any("wait_time=0.05" in r.getMessage() for r in caplog.records)


def test_wait_time_cancels_an_app_ignoring_a_gone_client(make_asgi2wsgi: Make) -> None:
    cancelled = threading.Event()

    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        await send(text_start())
        await send({"type": "http.response.body", "body": b"1", "more_body": True})
        try:
            await anyio.sleep(TIMEOUT)
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise

    call = start(make_asgi2wsgi(app, wait_time=0.01), make_environ())
    assert call.next_chunk() == b"1"
    call.close()
    assert cancelled.wait(TIMEOUT)


# --- concurrency -------------------------------------------------------------------------


def test_fifty_threads_get_their_own_responses(make_asgi2wsgi: Make) -> None:
    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        body, _ = await read_body(receive)
        await anyio.lowlevel.checkpoint()
        await send(text_start())
        tag = scope["path"].encode()
        await send({"type": "http.response.body", "body": tag, "more_body": True})
        await anyio.lowlevel.checkpoint()
        await send({"type": "http.response.body", "body": b"|" + body})

    wsgi = make_asgi2wsgi(app, read_chunk_size=16)
    errors: list[str] = []
    barrier = threading.Barrier(50)

    def client(n: int) -> None:
        barrier.wait()
        for i in range(20):
            payload = f"{n}-{i}-".encode() * (1 + i % 5)
            response = request(wsgi, "POST", f"/{n}/{i}", body=payload)
            if response.body != f"/{n}/{i}|".encode() + payload:
                errors.append(f"{n}/{i}: {response.body!r}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []


def test_other_tasks_run_while_requests_come_back_to_back(make_asgi2wsgi: Make) -> None:
    ticks = 0

    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        nonlocal ticks
        if scope["type"] == "lifespan":
            await receive()
            async with anyio.create_task_group() as tg:

                async def tick() -> None:
                    nonlocal ticks
                    while True:
                        ticks += 1
                        await anyio.lowlevel.checkpoint()

                tg.start_soon(tick)
                await send({"type": "lifespan.startup.complete"})
                await receive()
                tg.cancel_scope.cancel()
            await send({"type": "lifespan.shutdown.complete"})
            return
        await hello(scope, receive, send)

    wsgi = make_asgi2wsgi(app)
    request(wsgi)
    before = ticks
    for _ in range(200):
        request(wsgi)
    # A worker that takes each next request without leaving its step (the fast path)
    # still lets the loop's other tasks run every few requests.
    assert ticks - before >= 10


def test_max_concurrency_queues_requests(make_asgi2wsgi: Make) -> None:
    running = 0
    peak = 0

    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        nonlocal running, peak
        if scope["type"] != "http":
            return
        running += 1
        peak = max(peak, running)
        await anyio.sleep(0.01)
        running -= 1
        await hello(scope, receive, send)

    wsgi = make_asgi2wsgi(app, max_concurrency=2)
    results: list[int] = []
    threads = [
        threading.Thread(target=lambda: results.append(request(wsgi).status_code)) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert results == [200] * 8
    assert peak == 2


# --- lifespan ----------------------------------------------------------------------------


class LifespanApp:
    """Records lifespan events; *startup* can be "complete", "failed" or "raise"."""

    def __init__(self, startup: str = "complete", shutdown: str = "complete") -> None:
        self.startup = startup
        self.shutdown = shutdown
        self.events: list[str] = []

    async def __call__(self, scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            self.events.append(message["type"])
            if self.startup == "raise":
                raise RuntimeError("no lifespan here")
            if self.startup == "failed":
                await send({"type": "lifespan.startup.failed", "message": "db is down"})
                return
            scope["state"]["ready"] = True
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
            self.events.append(message["type"])
            if self.shutdown == "failed":
                await send({"type": "lifespan.shutdown.failed", "message": "flush failed"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
            return
        self.events.append(f"request {scope.get('state')}")
        await hello(scope, receive, send)


def test_lifespan_runs_once_around_requests(make_asgi2wsgi: Make) -> None:
    app = LifespanApp()
    wsgi = make_asgi2wsgi(app)
    assert app.events == []  # lazy: nothing before the first request
    request(wsgi)
    request(wsgi)
    wsgi.close()
    assert app.events == [
        "lifespan.startup",
        "request {'ready': True}",
        "request {'ready': True}",
        "lifespan.shutdown",
    ]


def test_startup_failed_makes_every_request_a_500(
    make_asgi2wsgi: Make, caplog: pytest.LogCaptureFixture
) -> None:
    app = LifespanApp(startup="failed")
    wsgi = make_asgi2wsgi(app)
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        assert request(wsgi).status_code == 500
        assert request(wsgi).status_code == 500
    assert app.events == ["lifespan.startup"]
    assert any("db is down" in r.getMessage() for r in caplog.records)


def test_lifespan_auto_goes_on_without_an_app_that_raises(
    make_asgi2wsgi: Make, caplog: pytest.LogCaptureFixture
) -> None:
    app = LifespanApp(startup="raise")
    with caplog.at_level(logging.DEBUG, logger="anysgi"):
        assert request(make_asgi2wsgi(app)).status_code == 200
    assert any(
        r.levelno == logging.DEBUG and "unsupported" in r.getMessage() for r in caplog.records
    )


def test_lifespan_on_requires_support(make_asgi2wsgi: Make) -> None:
    assert request(make_asgi2wsgi(LifespanApp(startup="raise"), lifespan="on")).status_code == 500


def test_lifespan_off_never_calls_the_app_with_it(make_asgi2wsgi: Make) -> None:
    app = LifespanApp()
    wsgi = make_asgi2wsgi(app, lifespan="off")
    request(wsgi)
    wsgi.close()
    assert app.events == ["request {}"]


def test_shutdown_failed_is_raised_by_close(make_asgi2wsgi: Make) -> None:
    wsgi = make_asgi2wsgi(LifespanApp(shutdown="failed"))
    request(wsgi)
    with pytest.raises(LifespanError, match="flush failed"):
        wsgi.close()


# --- lifecycle ---------------------------------------------------------------------------


def test_close_waits_for_running_work_then_cancels_it(
    make_asgi2wsgi: Make, caplog: pytest.LogCaptureFixture
) -> None:
    finished = threading.Event()
    cancelled = threading.Event()

    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            return
        await hello(scope, receive, send)
        try:
            await anyio.sleep(0.05 if scope["path"] == "/short" else TIMEOUT)
            finished.set()
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise

    wsgi = make_asgi2wsgi(app, shutdown_timeout=0.5)
    request(wsgi, "GET", "/short")
    wsgi.close()  # waits for /short's background work: it finishes
    assert finished.is_set()

    wsgi = make_asgi2wsgi(app, shutdown_timeout=0.1)
    request(wsgi, "GET", "/long")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        wsgi.close()  # gives up on /long after 0.1 s
    assert cancelled.is_set()
    assert any("cancelling 1 request" in r.getMessage() for r in caplog.records)


def portal_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if "-portal-" in t.name]


def test_loop_thread_starts_lazily_and_close_stops_it(make_asgi2wsgi: Make) -> None:
    before = portal_threads()
    wsgi = make_asgi2wsgi(hello)
    assert portal_threads() == before
    request(wsgi)
    assert len(portal_threads()) == len(before) + 1
    wsgi.close()
    assert portal_threads() == before
    wsgi.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        request(wsgi)


def test_context_manager_closes(portal_backend: str) -> None:
    app = LifespanApp()
    with ASGI2WSGI(app, backend=portal_backend) as wsgi:  # type: ignore[arg-type]
        request(wsgi)
    assert app.events[-1] == "lifespan.shutdown"


def test_atexit_hook_closes_a_forgotten_instance_and_keeps_nothing_alive(
    portal_backend: str,
) -> None:
    app = LifespanApp()
    wsgi = ASGI2WSGI(app, backend=portal_backend)  # type: ignore[arg-type]
    request(wsgi)
    hook = wsgi._atexit_hook
    hook()  # what interpreter exit does
    assert app.events[-1] == "lifespan.shutdown"
    ref = weakref.ref(wsgi)
    del wsgi
    gc.collect()
    assert ref() is None


def test_an_unclosed_idle_instance_can_be_collected(portal_backend: str) -> None:
    wsgi = ASGI2WSGI(hello, backend=portal_backend)  # type: ignore[arg-type]
    ref = weakref.ref(wsgi)
    del wsgi
    gc.collect()
    assert ref() is None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_starts_its_own_loop(make_asgi2wsgi: Make) -> None:
    app = LifespanApp()
    wsgi = make_asgi2wsgi(app)
    assert request(wsgi).body == b"Hello, world!"  # the parent's loop is running
    read_fd, write_fd = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork() with threads running: that is the point here.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        status = 1
        try:
            response = request(wsgi)
            wsgi.close()
            os.write(write_fd, response.body + b"|" + ",".join(app.events).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        report = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    body, events = report.split(b"|")
    assert body == b"Hello, world!"
    # The child ran its own lifespan: startup again, then its own shutdown.
    assert events.decode().split(",")[-3:] == [
        "lifespan.startup",
        "request {'ready': True}",
        "lifespan.shutdown",
    ]
    assert request(wsgi).body == b"Hello, world!"  # the parent is unaffected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backend": "curio"}, "backend"),
        ({"lifespan": "maybe"}, "lifespan"),
        ({"max_request_body": -1}, "max_request_body"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"read_chunk_size": 0}, "read_chunk_size"),
        ({"send_buffer_size": 1.5}, "send_buffer_size"),
        ({"wait_time": -1}, "wait_time"),
        ({"startup_timeout": float("nan")}, "startup_timeout"),
    ],
)
def test_bad_parameters_are_rejected(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ASGI2WSGI(hello, **kwargs)


def test_public_export() -> None:
    import anysgi

    assert anysgi.ASGI2WSGI is ASGI2WSGI
    assert "ASGI2WSGI" in anysgi.__all__
    assert sys.modules["anysgi.asgi2wsgi"].__all__ == ("ASGI2WSGI",)
