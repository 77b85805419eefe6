"""WSGI2ASGI in process: PEP 3333 point by point, through tests/asgi_driver.py and httpx.

Every WSGI app here is wrapped in :func:`wsgiref.validate.validator`, which checks the
environ, start_response, the iterable and its close() from the application's side; the
driver checks what reaches the ASGI server. Everything runs on asyncio, uvloop and trio.
"""

from __future__ import annotations

import contextvars
import io
import logging
import os
import signal
import sys
import threading
import time
import traceback
import warnings
import wsgiref.validate
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anysgi import WSGI2ASGI
from anysgi._threads import Doorbell, ThreadPool
from anysgi.wsgi2asgi import _RAISE, ClientDisconnected, FileWrapper, _BlockingWaits, _Exchange

from .asgi_driver import Driver, Result, body_messages, call, http_scope

WSGIApp = Callable[[dict[str, Any], Any], Iterable[bytes]]
TEXT = [("Content-Type", "text/plain")]

pytestmark = pytest.mark.anyio


@pytest.fixture(
    params=[
        pytest.param("asyncio", id="asyncio"),
        pytest.param(("asyncio", {"use_uvloop": True}), id="asyncio+uvloop"),
        pytest.param("trio", id="trio"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    """This module also runs on uvloop: WSGI2ASGI must work unchanged on it."""
    return request.param


@pytest.fixture(autouse=True, params=["blocking", "parked"])
def loop_wait(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs both ways the event loop can wait for a worker: blocked for a while
    first (the default ``blocking_wait``), and parked in a task from the start (as after a
    worker that did not answer in time, or with ``blocking_wait=0``)."""
    if request.param == "parked":
        monkeypatch.setattr(_BlockingWaits, "next_timeout", lambda self: 0.0)
    return str(request.param)


def wrap(app: WSGIApp, **options: Any) -> WSGI2ASGI:
    return WSGI2ASGI(wsgiref.validate.validator(app), **options)


def as_list(app: WSGIApp) -> WSGIApp:
    """A validated app whose result is a plain list, which takes WSGI2ASGI's fast path."""
    checked = wsgiref.validate.validator(app)

    def listed(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        iterable = checked(environ, start_response)
        try:
            return list(iterable)
        finally:
            iterable.close()  # type: ignore[attr-defined]

    return listed


def hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [b"Hello, world!"]


class Tracked:
    """An iterable that records how far it was consumed and whether close() was called."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self.produced = 0
        self.closed = threading.Event()
        self.close_thread: int | None = None

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        chunk = next(self._chunks)
        self.produced += 1
        return chunk

    def close(self) -> None:
        self.close_thread = threading.get_ident()
        self.closed.set()


def plenty(chunk: bytes = b"x" * 1000) -> Iterator[bytes]:
    """Far more chunks than any test lets through (bounded, so a regression fails, not hangs)."""
    for _ in range(5000):
        yield chunk


class CrossingCounter:
    """Counts the worker thread's trips back to the event loop, and the loop wake-ups.

    ``crossings`` counts what the worker asks the loop to do (``_Exchange.call_loop``: a
    send, a read of the body); ``wakeups`` counts every time a worker thread wakes the
    request's task (those trips plus the final "done"); ``submits`` counts the jobs handed
    to a pool, that is the hops into a thread.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        self.wakeups = 0
        self.submits = 0
        call_loop = _Exchange.call_loop
        wake_loop = _Exchange.wake_loop
        submit = ThreadPool.submit

        def counting_call_loop(exchange: _Exchange, *args: Any) -> Any:
            self.count += 1
            return call_loop(exchange, *args)

        def counting_wake_loop(exchange: _Exchange) -> bool:
            self.wakeups += 1
            return wake_loop(exchange)

        def counting_submit(pool: ThreadPool, job: Any) -> None:
            self.submits += 1
            submit(pool, job)

        monkeypatch.setattr(_Exchange, "call_loop", counting_call_loop)
        monkeypatch.setattr(_Exchange, "wake_loop", counting_wake_loop)
        monkeypatch.setattr(ThreadPool, "submit", counting_submit)


# --- environ --------------------------------------------------------------------------


async def test_environ_follows_pep_3333() -> None:
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.update(environ)
        start_response("204 No Content", [])
        return []

    scope = http_scope(
        "POST",
        "/caf\u00e9/x",
        root_path="/mount",
        query_string=b"a=1&b=%2F",
        headers=[
            (b"content-type", b"text/plain"),
            (b"content-length", b"2"),
            (b"x-many", b"one"),
            (b"x-many", b"two"),
            (b"cookie", b"a=1"),
            (b"cookie", b"b=2"),
            (b"host", b"example.org:8080"),
        ],
        scheme="https",
        server=("10.0.0.1", 8443),
        client=("192.0.2.7", 40000),
    )
    result = await call(wrap(app), scope, body_messages(b"ok"))
    assert result.status == 204
    assert seen["REQUEST_METHOD"] == "POST"
    assert seen["SCRIPT_NAME"] == "/mount"
    assert seen["PATH_INFO"] == "/caf\u00c3\u00a9/x"  # UTF-8 bytes as latin-1
    assert seen["QUERY_STRING"] == "a=1&b=%2F"
    assert seen["CONTENT_TYPE"] == "text/plain"
    assert seen["CONTENT_LENGTH"] == "2"
    assert "HTTP_CONTENT_TYPE" not in seen
    assert "HTTP_CONTENT_LENGTH" not in seen
    assert seen["HTTP_X_MANY"] == "one, two"
    assert seen["HTTP_COOKIE"] == "a=1; b=2"
    assert (seen["SERVER_NAME"], seen["SERVER_PORT"]) == ("10.0.0.1", "8443")
    assert (seen["REMOTE_ADDR"], seen["REMOTE_PORT"]) == ("192.0.2.7", "40000")
    assert seen["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert seen["wsgi.url_scheme"] == "https"
    assert seen["wsgi.version"] == (1, 0)
    assert seen["wsgi.multithread"] is True
    assert seen["wsgi.run_once"] is False
    assert seen["wsgi.input_terminated"] is True
    assert seen["asgi.scope"] is scope
    assert callable(seen["wsgi.file_wrapper"])
    assert all(isinstance(v, str) for k, v in seen.items() if "." not in k)


@pytest.mark.parametrize(
    ("server", "host", "expected"),
    [
        (None, b"example.org:8080", ("example.org", "8080")),
        (None, b"example.org", ("example.org", "80")),
        (None, None, ("localhost", "80")),
    ],
)
async def test_server_name_and_port_without_scope_server(
    server: None, host: bytes | None, expected: tuple[str, str]
) -> None:
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.update(environ)
        start_response("200 OK", TEXT)
        return []

    headers = [(b"host", host)] if host else []
    await call(wrap(app), http_scope(headers=headers, server=server, client=None))
    assert (seen["SERVER_NAME"], seen["SERVER_PORT"]) == expected
    assert "REMOTE_ADDR" not in seen


async def test_wsgi_errors_goes_to_logging(caplog: pytest.LogCaptureFixture) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        errors = environ["wsgi.errors"]
        print("first line", file=errors)  # two write() calls: text, then "\n"
        errors.write("second ")
        errors.writelines(["line\nthird", " line\n"])
        errors.write("unterminated")
        errors.flush()
        start_response("200 OK", TEXT)
        return []

    with caplog.at_level(logging.ERROR, logger="anysgi.wsgi.errors"):
        await call(wrap(app))
    lines = [r.getMessage() for r in caplog.records if r.name == "anysgi.wsgi.errors"]
    assert lines == ["first line", "second line", "third line", "unterminated"]


# --- wsgi.input -----------------------------------------------------------------------


def echo_ops(ops: list[tuple[str, int]]) -> WSGIApp:
    """Reads the body with the given operations, then echoes what each returned."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        stream = environ["wsgi.input"]
        out = []
        for op, n in ops:
            if op == "read":
                out.append(stream.read(n))
            elif op == "readline":
                out.append(stream.readline(n) if n >= 0 else stream.readline())
            elif op == "readlines":
                out.extend(stream.readlines(n) if n >= 0 else stream.readlines())
            else:
                out.extend(stream)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [repr(out).encode()]

    return app


def expected_ops(body: bytes, ops: list[tuple[str, int]]) -> bytes:
    stream = io.BytesIO(body)
    out: list[bytes] = []
    for op, n in ops:
        if op == "read":
            out.append(stream.read(n))
        elif op == "readline":
            out.append(stream.readline(n) if n >= 0 else stream.readline())
        elif op == "readlines":
            out.extend(stream.readlines(n) if n >= 0 else stream.readlines())
        else:
            out.extend(stream)
    return repr(out).encode()


OPS = [
    ("read", 3),
    ("readline", -1),
    ("readline", 4),
    ("read", 0),
    ("readlines", 10),
    ("read", 100),
    ("iter", 0),
    ("read", -1),
    ("read", 5),
]


@pytest.mark.parametrize("length", ["known-small", "known-large", "chunked"])
async def test_input_operations_across_message_boundaries(length: str) -> None:
    body = b"ab\ncdefgh\n\nij\nklmnopqrstuvwxyz\nlast line without newline"
    chunks = [body[i : i + 5] for i in range(0, len(body), 5)] + [b""]
    headers = [] if length == "chunked" else [(b"content-length", str(len(body)).encode())]
    if length == "chunked":
        headers = [(b"transfer-encoding", b"chunked")]
    app = wrap(echo_ops(OPS), prefetch_size=10 if length == "known-large" else 65536)
    result = await call(app, http_scope("POST", headers=headers), body_messages(*chunks))
    assert result.body == expected_ops(body, OPS)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    body=st.binary(max_size=300).map(lambda b: b.replace(b"\x00", b"\n")),
    cuts=st.lists(st.integers(0, 300), max_size=8),
    ops=st.lists(
        st.tuples(st.sampled_from(["read", "readline", "readlines", "iter"]), st.integers(-1, 40)),
        max_size=8,
    ),
)
async def test_input_behaves_like_a_file_whatever_the_chunking(
    body: bytes, cuts: list[int], ops: list[tuple[str, int]]
) -> None:
    points = sorted({min(c, len(body)) for c in cuts})
    chunks = [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True)]
    headers = [(b"transfer-encoding", b"chunked")]
    app = WSGI2ASGI(echo_ops(ops))  # unvalidated: the validator forbids read() with no size
    result = await call(app, http_scope("POST", headers=headers), body_messages(*chunks))
    assert result.body == expected_ops(body, ops)


async def test_input_streams_with_a_bounded_buffer() -> None:
    """A large body is fetched one message at a time, only as the app reads it."""
    chunk = b"x" * 1000
    progress: list[tuple[int, int]] = []
    driver = Driver(body_messages(*[chunk] * 50, b""))

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        stream = environ["wsgi.input"]
        total = 0
        while data := stream.read(1500):
            total += len(data)
            progress.append((total, driver.result.received))
        start_response("200 OK", TEXT)
        return [str(total).encode()]

    headers = [(b"content-length", b"50000")]
    result = await driver(wrap(app, prefetch_size=1000), http_scope("POST", headers=headers))
    assert result.body == b"50000"
    for read, received in progress:
        # never more than the one message the current read() needed beyond what was read
        assert received * 1000 < read + 1000 + 1000


async def test_small_body_is_read_before_the_app_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    crossings = CrossingCounter(monkeypatch)
    app = WSGI2ASGI(as_list(echo_ops([("read", -1)])))
    headers = [(b"content-length", b"10")]
    result = await call(app, http_scope("POST", headers=headers), body_messages(b"01234", b"56789"))
    assert result.body == repr([b"0123456789"]).encode()
    assert crossings.count == 0


async def test_disconnect_while_reading_the_body(caplog: pytest.LogCaptureFixture) -> None:
    raised: list[BaseException] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        try:
            while environ["wsgi.input"].read(100):
                pass
        except ClientDisconnected as exc:
            raised.append(exc)
            raise
        start_response("200 OK", TEXT)
        return []

    messages = [*body_messages(b"x" * 100, b"y" * 100)[:1], {"type": "http.disconnect"}]
    headers = [(b"content-length", b"1000000")]
    with caplog.at_level(logging.INFO, logger="anysgi.wsgi"):
        result = await call(wrap(app), http_scope("POST", headers=headers), messages)
    assert len(raised) == 1
    assert isinstance(raised[0], OSError)
    assert result.sent == []  # nobody to answer
    assert "client disconnected" in caplog.text


async def test_disconnect_before_the_app_starts() -> None:
    called = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        called.append(True)
        start_response("200 OK", TEXT)
        return []

    headers = [(b"content-length", b"10")]
    result = await call(
        wrap(app), http_scope("POST", headers=headers), [{"type": "http.disconnect"}]
    )
    assert called == []
    assert result.sent == []


async def test_get_without_body_does_not_wait_for_one() -> None:
    """HTTP/1.1 without Content-Length or Transfer-Encoding has no body (RFC 9112 6.3)."""
    result = await call(wrap(echo_ops([("read", -1)])), http_scope(), messages=[])
    assert result.body == repr([b""]).encode()
    assert result.received == 0


async def test_http2_body_without_length_is_read() -> None:
    scope = http_scope("POST", http_version="2")
    result = await call(wrap(echo_ops([("read", -1)])), scope, body_messages(b"ab", b"cd", b""))
    assert result.body == repr([b"abcd"]).encode()


# --- start_response and the headers ---------------------------------------------------


async def test_headers_wait_for_the_first_non_empty_chunk_so_exc_info_can_replace_them() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b""
        yield b""
        try:
            raise ValueError("boom")
        except ValueError:
            start_response("500 Internal Server Error", [*TEXT, ("X-Error", "1")], sys.exc_info())
        yield b"replaced"

    result = await call(wrap(app))
    assert result.status == 500
    assert result.headers == [(b"content-type", b"text/plain"), (b"x-error", b"1")]
    assert result.body == b"replaced"
    assert result.complete


async def test_exc_info_after_headers_were_sent_is_reraised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reraised: list[BaseException] = []
    tracked = Tracked([])

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])

        def body() -> Iterator[bytes]:
            yield b"partial"
            try:
                raise ValueError("late")
            except ValueError:
                try:
                    start_response("500 Internal Server Error", TEXT, sys.exc_info())
                except ValueError as exc:
                    reraised.append(exc)
                    raise

        tracked._chunks = body()
        return tracked

    with caplog.at_level(logging.ERROR, logger="anysgi.wsgi"):
        result = await call(wrap(app))
    assert [str(e) for e in reraised] == ["late"]
    assert result.status == 200
    assert result.body == b"partial"
    assert not result.complete  # cut: the client must not take it for a whole response
    assert tracked.closed.is_set()
    record = next(r for r in caplog.records if "after the response started" in r.getMessage())
    assert record.exc_info is not None
    assert record.exc_info[1] is reraised[0]


async def test_second_start_response_without_exc_info_is_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", TEXT)
        start_response("200 OK", TEXT)
        return []

    with caplog.at_level(logging.ERROR, logger="anysgi.wsgi"):
        result = await call(WSGI2ASGI(app))
    assert result.status == 500
    assert "a second time without exc_info" in caplog.text


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        ("OK", []),
        ("200 OK", [("X-Bad", "a\r\nSet-Cookie: x")]),
        ("200 OK", [("Bad Name", "v")]),
        ("200 OK", [("Content-Length", "-1")]),
        ("200 OK", [("X", "\u20ac")]),  # not latin-1
    ],
)
async def test_invalid_status_or_headers_give_a_500(status: str, headers: list[Any]) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response(status, headers)
        return [b"never sent"]

    result = await call(WSGI2ASGI(app))
    assert result.status == 500
    assert result.body == b"Internal Server Error"


async def test_write_callable(monkeypatch: pytest.MonkeyPatch) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"one ")
        write(b"")
        write(b"two ")
        return [b"three"]

    result = await call(wrap(app))
    assert result.status == 200
    assert [m["body"] for m in result.body_messages] == [b"one ", b"two ", b"three", b""]
    assert result.complete


async def test_headers_are_lowercased_latin1_and_in_order() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response(
            "201 Created",
            [("Set-Cookie", "a=1"), ("X-Caf\u00e9", "x"), ("Set-Cookie", "b=\u00e9")],
        )
        return []

    result = await call(WSGI2ASGI(app))
    assert result.status == 500  # "X-Café" is not a token: refused
    result = await call(
        WSGI2ASGI(
            lambda e, sr: (
                sr("201 Created", [("Set-Cookie", "a=1"), ("Set-Cookie", "b=\u00e9")]),
                [],
            )[1]
        )
    )
    assert result.status == 201
    assert result.headers == [(b"set-cookie", b"a=1"), (b"set-cookie", b"b=\xe9")]


# --- Content-Length -------------------------------------------------------------------


async def test_content_length_is_honoured_and_iteration_stops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tracked = Tracked([b"01234", b"56789", b"never"])

    def app(environ: dict[str, Any], start_response: Any) -> Tracked:
        start_response("200 OK", [*TEXT, ("Content-Length", "7")])
        return tracked

    result = await call(wrap(app))
    assert result.body == b"0123456"
    assert result.complete
    assert tracked.produced == 2
    assert tracked.closed.is_set()


async def test_one_chunk_reaching_content_length_takes_one_hop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    crossings = CrossingCounter(monkeypatch)
    tracked = Tracked([b"0123456789", b"never"])

    def app(environ: dict[str, Any], start_response: Any) -> Tracked:
        start_response("200 OK", [*TEXT, ("Content-Length", "10")])
        return tracked

    result = await call(wrap(app))
    assert result.body == b"0123456789"
    assert result.complete
    assert len(result.body_messages) == 1
    assert tracked.produced == 1
    assert tracked.closed.is_set()
    assert crossings.count == 0


async def test_list_longer_than_content_length_is_truncated() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [*TEXT, ("Content-Length", "4")])
        return [b"ab", b"cdef"]

    result = await call(WSGI2ASGI(app))
    assert result.body == b"abcd"
    assert result.complete


@pytest.mark.parametrize("shape", ["list", "generator"])
async def test_body_shorter_than_content_length_is_cut(
    shape: str, caplog: pytest.LogCaptureFixture
) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [*TEXT, ("Content-Length", "10")])
        chunks = [b"abc", b"def"]
        return chunks if shape == "list" else iter(chunks)

    with caplog.at_level(logging.ERROR, logger="anysgi.wsgi"):
        result = await call(WSGI2ASGI(app))
    assert result.body == b"abcdef"
    assert not result.complete
    assert "shorter than its Content-Length" in caplog.text


async def test_head_with_content_length_and_no_body_is_complete() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [*TEXT, ("Content-Length", "1000")])
        return []

    result = await call(wrap(app), http_scope("HEAD"))
    assert result.complete
    assert result.body == b""


# --- the fast path --------------------------------------------------------------------


async def test_list_response_takes_one_hop_each_way(monkeypatch: pytest.MonkeyPatch) -> None:
    crossings = CrossingCounter(monkeypatch)
    app = WSGI2ASGI(as_list(hello))
    result = await call(app)
    assert (result.status, result.body, result.complete) == (200, b"Hello, world!", True)
    # Into the thread once (one job for the instance's own pool), back to the loop once
    # (the wake-up that hands over the whole response), and nothing asked of the loop
    # in between.
    assert crossings.submits == 1
    assert crossings.wakeups == 1
    assert crossings.count == 0
    assert app._pool.threads == 1


async def test_streamed_response_crosses_once_per_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    """The counter above can see trips: a streamed body makes one per chunk."""
    crossings = CrossingCounter(monkeypatch)

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        yield b"one"
        yield b"two"

    result = await call(wrap(app))
    assert result.body == b"onetwo"
    assert result.complete
    assert crossings.submits == 1
    assert crossings.count == 2
    assert crossings.wakeups == 3  # each chunk, then done


async def test_empty_iterable_still_sends_the_headers() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("204 No Content", [])
        return iter([b"", b""])

    result = await call(wrap(app))
    assert result.status == 204
    assert result.complete
    assert result.body == b""


async def test_start_response_called_lazily_in_a_generator() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"lazy"

    result = await call(wrap(app))
    assert result.status == 200
    assert result.body == b"lazy"


async def test_app_that_never_calls_start_response(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="anysgi.wsgi"):
        result = await call(WSGI2ASGI(lambda environ, start_response: [b"data"]))
    assert result.status == 500
    assert "without calling start_response" in caplog.text


# --- close() on every path ------------------------------------------------------------


async def test_close_is_called_after_a_normal_end_in_the_app_thread() -> None:
    tracked = Tracked([b"a", b"b"])
    app_thread: list[int] = []

    def app(environ: dict[str, Any], start_response: Any) -> Tracked:
        app_thread.append(threading.get_ident())
        start_response("200 OK", TEXT)
        return tracked

    result = await call(wrap(app))
    assert result.body == b"ab"
    assert result.complete
    assert tracked.closed.is_set()
    assert tracked.close_thread == app_thread[0] != threading.get_ident()


async def test_close_is_called_when_the_iterable_raises(caplog: pytest.LogCaptureFixture) -> None:
    def failing() -> Iterator[bytes]:
        yield from ()
        raise RuntimeError("inside the iterable")

    tracked = Tracked(failing())

    def app(environ: dict[str, Any], start_response: Any) -> Tracked:
        start_response("200 OK", TEXT)
        return tracked

    with caplog.at_level(logging.ERROR, logger="anysgi.wsgi"):
        result = await call(wrap(app))
    assert result.status == 500
    assert result.body == b"Internal Server Error"
    assert tracked.closed.is_set()
    record = next(r for r in caplog.records if r.name == "anysgi.wsgi")
    assert record.exc_info is not None
    assert "inside the iterable" in str(record.exc_info[1])


async def test_exception_from_the_app_call_is_a_logged_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise KeyError("no such thing")

    with caplog.at_level(logging.ERROR, logger="anysgi.wsgi"):
        result = await call(wrap(app), http_scope("GET", "/where", query_string=b"q=1"))
    assert result.status == 500
    assert result.complete
    assert result.header(b"content-length") == b"21"
    [record] = [r for r in caplog.records if r.name == "anysgi.wsgi"]
    assert "GET /where?q=1" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], KeyError)


async def test_close_raising_turns_the_response_into_a_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class BadClose(list[bytes]):
        def close(self) -> None:
            raise RuntimeError("close failed")

    def app(environ: dict[str, Any], start_response: Any) -> BadClose:
        start_response("200 OK", TEXT)
        return BadClose([b"fine"])

    with caplog.at_level(logging.ERROR, logger="anysgi.wsgi"):
        result = await call(WSGI2ASGI(app))
    assert result.status == 500
    assert "close failed" in caplog.text


@pytest.mark.parametrize("send_fails", [False, True], ids=["http.disconnect", "failing-send"])
async def test_client_disconnect_stops_iteration_and_closes(send_fails: bool) -> None:
    tracked = Tracked(plenty())

    def app(environ: dict[str, Any], start_response: Any) -> Tracked:
        start_response("200 OK", TEXT)
        return tracked

    driver = Driver(body_messages(), disconnect_after_sends=3, send_fails=send_fails)
    with anyio.fail_after(10):
        result = await driver(wrap(app), http_scope())
    assert tracked.closed.is_set()
    assert not result.complete
    # Iteration stopped at once: a chunk or two may have been in flight, not more.
    assert 3 <= tracked.produced <= 5


async def test_slow_client_slows_the_iterator() -> None:
    """Backpressure: the app is never more than one chunk ahead of what was sent."""
    tracked = Tracked(b"%d" % i for i in range(20))
    gate_send, gate_receive = anyio.create_memory_object_stream[None](0)
    ahead: list[int] = []

    def app(environ: dict[str, Any], start_response: Any) -> Tracked:
        start_response("200 OK", TEXT)
        return tracked

    async def client(driver: Driver) -> None:
        async with gate_send:
            for _ in range(20):
                await gate_send.send(None)
                # what the app has produced beyond what the client has taken so far
                await anyio.sleep(0.005)
                ahead.append(tracked.produced - len(driver.result.body_messages))
            await gate_send.send(None)  # the final empty message

    driver = Driver(body_messages(), send_gate=gate_receive)
    async with gate_receive, anyio.create_task_group() as tg:
        tg.start_soon(client, driver)
        await driver(wrap(app), http_scope())
    assert driver.result.body == b"".join(b"%d" % i for i in range(20))
    assert max(ahead) <= 1


# --- threads --------------------------------------------------------------------------


async def test_max_threads_bounds_concurrency_with_its_own_limiter() -> None:
    active = 0
    peak = 0
    lock = threading.Lock()
    release = threading.Event()
    entered = threading.Semaphore(0)

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        entered.release()
        release.wait(10)
        with lock:
            active -= 1
        start_response("200 OK", TEXT)
        return []

    wsgi = wrap(app, max_threads=2)
    default = anyio.to_thread.current_default_thread_limiter()
    saved = default.total_tokens
    default.total_tokens = 1  # the instance must not depend on anyio's global limiter
    try:
        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(call, wsgi)
            for _ in range(2):
                await anyio.to_thread.run_sync(entered.acquire, limiter=anyio.CapacityLimiter(2))
            assert peak == 2
            release.set()
    finally:
        default.total_tokens = saved
    assert peak == 2
    assert wsgi._pool.threads == 2


async def test_max_threads_is_per_instance() -> None:
    """Two instances of one thread each serve at once: neither waits for the other's."""
    both_in = threading.Barrier(2, timeout=10)

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        both_in.wait()  # BrokenBarrierError (a 500) if the other request cannot get in
        start_response("200 OK", TEXT)
        return [b"ok"]

    first, second = wrap(app, max_threads=1), wrap(app, max_threads=1)
    statuses: list[int] = []

    async def one(wsgi: WSGI2ASGI) -> None:
        statuses.append((await call(wsgi)).status)

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(one, first)
            tg.start_soon(one, second)
    assert statuses == [200, 200]
    assert first._pool.threads == 1
    assert second._pool.threads == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork()")
def test_a_forked_child_serves_with_threads_of_its_own() -> None:
    """After fork() the parent's threads do not exist: the child makes a pool of its own
    (a child using its parent's pool would hand its request to a thread that is not
    there, and hang)."""
    app = WSGI2ASGI(as_list(hello), max_threads=1)
    assert anyio.run(call, app).body == b"Hello, world!"
    parent_pool = app._pool
    assert parent_pool.threads == 1  # an idle thread, which the child will not have

    async def call_in_child() -> Result:
        with anyio.fail_after(5):
            return await call(app)

    with warnings.catch_warnings():
        # Python 3.12+ warns about fork() while threads run: that is the case under test.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child, which coverage does not follow
        code = 1
        try:
            result = anyio.run(call_in_child)
            pool = app._pool
            if result.body == b"Hello, world!" and pool is not parent_pool:
                code = 0 if pool.pid == os.getpid() and pool.threads == 1 else 2
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    deadline = time.monotonic() + 20
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung")
        time.sleep(0.01)
    assert os.waitstatus_to_exitcode(status) == 0
    assert app._pool is parent_pool  # the parent keeps its own


def test_parameters_are_validated() -> None:
    with pytest.raises(ValueError, match="max_threads"):
        WSGI2ASGI(hello, max_threads=0)
    with pytest.raises(ValueError, match="prefetch_size"):
        WSGI2ASGI(hello, prefetch_size=-1)
    with pytest.raises(ValueError, match="file_block_size"):
        WSGI2ASGI(hello, file_block_size=0)
    assert "max_threads=40" in repr(WSGI2ASGI(hello))


# --- wsgi.file_wrapper ----------------------------------------------------------------


def file_app(get_file: Callable[[], Any], content_length: int | None = None) -> WSGIApp:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        headers = [("Content-Type", "application/octet-stream")]
        if content_length is not None:
            headers.append(("Content-Length", str(content_length)))
        start_response("200 OK", headers)
        return environ["wsgi.file_wrapper"](get_file(), 4096)

    return app


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(range(256)) * 1000)  # 256000 bytes
    return path


async def test_file_wrapper_is_sent_by_path_when_the_server_can(data_file: Path) -> None:
    opened: list[Any] = []

    def get_file() -> Any:
        opened.append(data_file.open("rb"))
        return opened[-1]

    scope = http_scope(extensions={"http.response.pathsend": {}})
    result = await call(WSGI2ASGI(file_app(get_file, 256000)), scope)
    assert result.status == 200
    assert result.sent[-1] == {"type": "http.response.pathsend", "path": str(data_file)}
    assert opened[0].closed  # closed after the server took the path


@pytest.mark.parametrize(
    "case", ["no-extension", "not-a-real-file", "already-read", "partial-length"]
)
async def test_file_wrapper_otherwise_streams_in_bounded_blocks(data_file: Path, case: str) -> None:
    content = bytes(range(256)) * 1000  # what data_file holds
    opened: list[Any] = []

    def get_file() -> Any:
        if case == "not-a-real-file":
            opened.append(io.BytesIO(content))
        else:
            opened.append(data_file.open("rb"))
        if case == "already-read":
            opened[-1].read(10)
        return opened[-1]

    length = 1000 if case == "partial-length" else None
    extensions: dict[str, Any] | None = {"http.response.pathsend": {}}
    if case == "no-extension":
        extensions = None
    app = wrap(file_app(get_file, length), file_block_size=64 * 1024)
    result = await call(app, http_scope(extensions=extensions))
    expected = content[10:] if case == "already-read" else content
    if length is not None:
        expected = expected[:length]
    assert result.body == expected
    assert result.complete
    assert all(m["type"] == "http.response.body" for m in result.sent[1:])
    assert max(len(m["body"]) for m in result.body_messages) <= 64 * 1024
    assert opened[0].closed


def test_file_wrapper_block_size_is_at_least_file_block_size() -> None:
    wrapper = WSGI2ASGI(hello, file_block_size=1000).file_wrapper(io.BytesIO(b"x" * 2500), 10)
    assert isinstance(wrapper, FileWrapper)
    assert [len(b) for b in wrapper] == [1000, 1000, 500]


# --- other scopes ---------------------------------------------------------------------


async def test_lifespan_is_answered() -> None:
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    with anyio.fail_after(5):
        await WSGI2ASGI(hello)(scope, receive, send)
    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]


async def test_websocket_is_refused_with_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    scope = {"type": "websocket", "path": "/ws", "headers": []}
    with caplog.at_level(logging.WARNING, logger="anysgi.wsgi"):
        await WSGI2ASGI(hello)(scope, receive, send)
    assert [m["type"] for m in sent] == ["websocket.close"]
    assert "refusing a WebSocket connection to /ws" in caplog.text


async def test_unknown_scope_type_raises() -> None:
    async def receive() -> dict[str, Any]:
        raise AssertionError("not called")

    async def send(message: MutableMapping[str, Any]) -> None:
        raise AssertionError("not called")

    with pytest.raises(ValueError, match="'unknown'"):
        await WSGI2ASGI(hello)({"type": "unknown"}, receive, send)


# --- through httpx.ASGITransport ------------------------------------------------------


def router(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/echo":
        stream = environ["wsgi.input"]
        body = b"".join(iter(lambda: stream.read(8192), b""))
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [body]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (b"line %d\n" % i for i in range(5))
    if path == "/env":
        start_response("200 OK", [("Content-Type", "text/plain")])
        keys = ("SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "HTTP_X_TEST")
        return [repr([environ.get(k) for k in keys]).encode()]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]


async def test_through_httpx_asgi_transport() -> None:
    transport = httpx.ASGITransport(app=wrap(router), root_path="/app")
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.post("/app/echo", content=b"x" * 100_000)
        assert response.status_code == 200
        assert response.content == b"x" * 100_000
        response = await client.get("/app/stream")
        assert response.text == "".join(f"line {i}\n" for i in range(5))
        response = await client.get("/app/env?a=b", headers={"X-Test": "yes"})
        assert response.text == repr(["/app", "/env", "a=b", "yes"])
        response = await client.get("/app/missing")
        assert response.status_code == 404


def test_works_when_driven_from_anyio_run_directly(portal_backend: str) -> None:
    """No test plugin involved: a plain anyio.run per backend (as servers do)."""
    result: Result = anyio.run(call, WSGI2ASGI(as_list(hello)), backend=portal_backend)
    assert result.body == b"Hello, world!"


def test_one_instance_serves_one_loop_after_another_on_both_backends() -> None:
    """A module-level app in a test suite that runs asyncio and trio tests in turn."""
    app = WSGI2ASGI(as_list(hello), max_threads=3)
    for backend in ("asyncio", "trio", "asyncio", "trio"):
        result: Result = anyio.run(call, app, backend=backend)
        assert result.body == b"Hello, world!"


def test_one_instance_serves_loops_in_several_threads_at_once() -> None:
    app = WSGI2ASGI(as_list(hello))
    bodies: list[bytes] = []

    def serve(backend: str) -> None:
        bodies.extend(anyio.run(call, app, backend=backend).body for _ in range(20))

    threads = [threading.Thread(target=serve, args=(b,)) for b in ("asyncio", "trio") * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert bodies == [b"Hello, world!"] * 80


# --- edges ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "misuse",
    ["write-str", "yield-str", "yield-before-start"],
)
async def test_app_misuse_is_a_500(misuse: str, caplog: pytest.LogCaptureFixture) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[Any]:
        if misuse == "yield-before-start":
            yield b"data"
        write = start_response("200 OK", TEXT)
        if misuse == "write-str":
            write("text")
        yield "text" if misuse == "yield-str" else b"ok"

    with caplog.at_level(logging.ERROR, logger="anysgi.wsgi"):
        result = await call(WSGI2ASGI(app))
    assert result.status == 500
    assert "Exception in WSGI application" in caplog.text


async def test_bytes_like_chunks_are_accepted() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[Any]:
        start_response("200 OK", TEXT)
        yield bytearray(b"ab")
        yield memoryview(b"cd")

    result = await call(WSGI2ASGI(app))
    assert result.body == b"abcd"

    def listed(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", TEXT)
        return [bytearray(b"z")]

    result = await call(WSGI2ASGI(listed))
    assert result.body == b"z"


async def test_write_after_the_client_left_raises_client_disconnected(
    caplog: pytest.LogCaptureFixture,
) -> None:
    raised: list[BaseException] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", TEXT)
        try:
            for chunk in plenty():
                write(chunk)
        except ClientDisconnected as exc:
            raised.append(exc)
            raise
        return []

    driver = Driver(body_messages(), disconnect_after_sends=3)
    with caplog.at_level(logging.INFO, logger="anysgi.wsgi"), anyio.fail_after(10):
        result = await driver(wrap(app), http_scope())
    assert len(raised) == 1
    assert not result.complete
    assert "client disconnected" in caplog.text


async def test_final_send_failing_is_a_disconnect(caplog: pytest.LogCaptureFixture) -> None:
    driver = Driver(body_messages(), send_fails=True)
    driver.disconnect()  # gone before the response
    with caplog.at_level(logging.INFO, logger="anysgi.wsgi"):
        result = await driver(WSGI2ASGI(as_list(hello)), http_scope())
    assert result.sent == []
    assert "client disconnected" in caplog.text


async def test_disconnect_is_watched_once_a_late_read_completes_the_body() -> None:
    tracked = Tracked([])

    def app(environ: dict[str, Any], start_response: Any) -> Tracked:
        start_response("200 OK", TEXT)

        def body() -> Iterator[bytes]:
            yield b"first"  # the response streams before the body is read
            assert environ["wsgi.input"].read(-1) == b"u" * 200_000
            yield from plenty()

        tracked._chunks = body()
        return tracked

    headers = [(b"content-length", b"200000")]
    messages = body_messages(*[b"u" * 50_000] * 4)
    driver = Driver(messages, disconnect_after_sends=3)
    with anyio.fail_after(10):
        result = await driver(wrap(app), http_scope("POST", headers=headers))
    assert tracked.closed.is_set()
    assert not result.complete
    assert tracked.produced <= 5


async def test_more_body_than_announced_streams_the_rest() -> None:
    headers = [(b"content-length", b"10")]  # a server that lets more through
    messages = body_messages(b"a" * 70_000, b"", b"b" * 10, b"")
    app = WSGI2ASGI(as_list(echo_ops([("read", -1)])))
    result = await call(app, http_scope("POST", headers=headers), messages)
    assert result.body == repr([b"a" * 70_000 + b"b" * 10]).encode()


async def test_input_extras() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        stream = environ["wsgi.input"]
        assert stream.readable()
        stream.close()  # harmless: the server owns the connection
        start_response("200 OK", TEXT)
        return [stream.read(None)]

    result = await call(WSGI2ASGI(app), http_scope("POST", http_version="2"), body_messages(b"x"))
    assert result.body == b"x"


async def test_file_wrapper_text_files_and_replaced_files_are_not_sent_by_path(
    data_file: Path,
) -> None:
    def replaced() -> Any:
        handle = data_file.open("rb")
        data_file.rename(data_file.with_name("moved.bin"))
        data_file.write_bytes(b"a new file with the old name")
        return handle

    scope = http_scope(extensions={"http.response.pathsend": {}})
    result = await call(WSGI2ASGI(file_app(replaced)), scope)
    assert result.body == bytes(range(256)) * 1000
    assert result.sent[-1]["type"] == "http.response.body"

    def text_file() -> Any:
        return data_file.open("r", encoding="latin-1")

    result = await call(WSGI2ASGI(file_app(text_file)), scope)
    assert result.status == 500  # a text file yields str: not a WSGI body, and not sent by path


async def test_close_raising_after_the_iterable_raised_is_logged_too(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Both:
        def __iter__(self) -> Iterator[bytes]:
            raise RuntimeError("iteration failed")

        def close(self) -> None:
            raise RuntimeError("close failed")

    def app(environ: dict[str, Any], start_response: Any) -> Both:
        start_response("200 OK", TEXT)
        return Both()

    with caplog.at_level(logging.ERROR, logger="anysgi.wsgi"):
        result = await call(WSGI2ASGI(app))
    assert result.status == 500
    messages = [(r.getMessage(), str(r.exc_info[1]) if r.exc_info else "") for r in caplog.records]
    assert any("close() raised too" in m and e == "close failed" for m, e in messages)
    assert any(
        "Exception in WSGI application" in m and e == "iteration failed" for m, e in messages
    )


async def test_cancelling_the_request_stops_the_app_and_closes_it() -> None:
    """A server that cancels the request (shutting down) gets the cancellation back, and
    the app is closed at its next chunk rather than left running."""
    tracked = Tracked(plenty())
    started = anyio.Event()

    def app(environ: dict[str, Any], start_response: Any) -> Tracked:
        start_response("200 OK", TEXT)
        return tracked

    driver = Driver(body_messages())

    async def send(message: Any) -> None:
        await driver.send(message)
        if len(driver.result.body_messages) == 3:
            started.set()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:

            async def serve() -> None:
                await wrap(app)(http_scope(), driver.receive, send)

            tg.start_soon(serve)
            await started.wait()
            tg.cancel_scope.cancel()
    assert tracked.closed.is_set()
    assert tracked.produced <= 5


async def test_cancelling_the_request_stops_the_upload_reads() -> None:
    reads = 0
    # A threading.Event, waited for from a thread of anyio's: the app runs in anysgi's own
    # worker threads, where anyio.from_thread is not available.
    read_some = threading.Event()
    go_on = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        nonlocal reads
        stream = environ["wsgi.input"]
        while stream.read(1000):
            reads += 1
            if reads == 3:
                read_some.set()
                go_on.wait(10)  # until the request is cancelled
        start_response("200 OK", TEXT)
        return []

    headers = [(b"content-length", str(1000 * 5000).encode())]
    driver = Driver(body_messages(*[b"u" * 1000] * 5000))
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:

            async def serve() -> None:
                await driver(wrap(app, prefetch_size=0), http_scope("POST", headers=headers))

            tg.start_soon(serve)
            assert await anyio.to_thread.run_sync(read_some.wait, 10)
            tg.cancel_scope.cancel()
            go_on.set()
    assert 3 <= reads <= 5
    assert driver.result.sent == []


async def test_a_cancelled_request_returns_only_after_its_worker_is_done() -> None:
    """A thread cannot be interrupted: the task waits, shielded, until the worker has
    stopped at its next chunk and closed the iterable. Returning earlier would leave the
    worker using a request (its send, its receive) that the server considers over."""
    timeline: list[str] = []
    in_next = threading.Event()
    release = threading.Event()
    produced = 0

    def chunks() -> Iterator[bytes]:
        nonlocal produced
        try:
            while True:
                produced += 1
                if produced == 2:
                    in_next.set()
                    assert release.wait(10)
                yield b"chunk"
        finally:
            timeline.append("closed")

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        return chunks()

    driver = Driver(body_messages())

    async def send(message: Any) -> None:
        await driver.send(message)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:

            async def serve() -> None:
                try:
                    await wrap(app)(http_scope(), driver.receive, send)
                finally:
                    timeline.append("returned")

            tg.start_soon(serve)
            assert await anyio.to_thread.run_sync(in_next.wait, 10)
            tg.cancel_scope.cancel()
            with anyio.CancelScope(shield=True):
                await anyio.wait_all_tasks_blocked()  # the request's task has seen it
                timeline.append("released")
                release.set()
    assert timeline == ["released", "closed", "returned"]
    assert produced == 2  # the chunk being produced was not sent, and no more asked for
    assert driver.result.body == b"chunk"


async def test_cancelling_during_a_send_stops_the_worker_before_the_task_returns() -> None:
    tracked = Tracked(plenty())
    stuck = anyio.Event()
    driver = Driver(body_messages())
    closed_when_returned: list[bool] = []

    async def send(message: Any) -> None:
        if message["type"] == "http.response.body" and len(driver.result.body_messages) == 2:
            stuck.set()
            await anyio.sleep_forever()  # a client that stopped reading
        await driver.send(message)

    def app(environ: dict[str, Any], start_response: Any) -> Tracked:
        start_response("200 OK", TEXT)
        return tracked

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:

            async def serve() -> None:
                try:
                    await wrap(app)(http_scope(), driver.receive, send)
                finally:
                    closed_when_returned.append(tracked.closed.is_set())

            tg.start_soon(serve)
            await stuck.wait()
            tg.cancel_scope.cancel()
    assert closed_when_returned == [True]
    assert tracked.produced == 3  # the chunk whose send was cancelled was the last
    assert len(driver.result.body_messages) == 2


@pytest.mark.parametrize("taken_back", [True, False], ids=["withdrawn", "too-late"])
async def test_a_request_cancelled_while_waiting_for_a_thread_never_starts(
    taken_back: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not taken_back:
        # The race where a thread picks the job up just as the task is cancelled: the
        # worker must see the flag and not start the app.
        monkeypatch.setattr(ThreadPool, "withdraw", lambda pool, job: False)
    started: list[str] = []
    first_in = threading.Event()
    release = threading.Event()
    second_over = anyio.Event()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        started.append(environ["PATH_INFO"])
        if environ["PATH_INFO"] == "/first":
            first_in.set()
            assert release.wait(10)
        start_response("200 OK", TEXT)
        return [b"ok"]

    wsgi = wrap(app, max_threads=1)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(call, wsgi, http_scope("GET", "/first"))
            assert await anyio.to_thread.run_sync(first_in.wait, 10)
            second_scope = anyio.CancelScope()

            async def second() -> None:
                with second_scope:
                    await call(wsgi, http_scope("GET", "/second"))
                second_over.set()

            tg.start_soon(second)
            await anyio.wait_all_tasks_blocked()  # queued behind /first
            second_scope.cancel()
            await anyio.wait_all_tasks_blocked()
            # Withdrawn, it is over at once; otherwise it waits for the thread to report
            # that it did not start the app.
            assert second_over.is_set() is taken_back
            release.set()
        assert (await call(wsgi, http_scope("GET", "/third"))).status == 200
    assert second_over.is_set()
    assert started == ["/first", "/third"]
    assert wsgi._pool.threads == 1


def test_a_worker_whose_event_loop_is_gone_stops_instead_of_waiting(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """If the loop closed under a running request, nobody will answer the worker: it
    stops the app (close() included) instead of holding its thread forever."""

    class Finished:
        @staticmethod
        def run_sync_soon(func: Any, args: Any, token: object) -> None:
            raise anyio.RunFinishedError

    class Token:
        backend_class = Finished
        native_token = None

    async def unused(*args: Any) -> Any:
        raise AssertionError

    tracked = Tracked(plenty())

    def app(environ: dict[str, Any], start_response: Any) -> Tracked:
        start_response("200 OK", TEXT)
        return tracked

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/gone"}
    exchange = _Exchange(app, environ, unused, unused, input_done=True, pathsend=False)
    exchange.token = Token()  # type: ignore[assignment]
    exchange.context = contextvars.copy_context()
    doorbell = Doorbell()

    def worker() -> None:
        exchange.run(doorbell)
        exchange.done()

    with caplog.at_level(logging.ERROR, logger="anysgi.wsgi"):
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join(10)
        if thread.is_alive():  # waiting for an answer that will not come: end it, and fail
            exchange.reply = (None, RuntimeError("no answer"))
            doorbell.ring()
            thread.join(10)
            pytest.fail("the worker waited for a closed event loop")
    doorbell.close()
    assert exchange.outcome is not None
    assert exchange.outcome[0] == _RAISE
    assert tracked.closed.is_set()
    assert tracked.produced == 1
    [record] = caplog.records  # once, not again when the job is done
    assert "cannot wake the event loop: GET /gone" in record.getMessage()


async def test_a_base_exception_from_the_app_reaches_the_server() -> None:
    """SystemExit, KeyboardInterrupt and the like are not the app's errors to turn into a
    500: they are raised again in the request's task, after close()."""

    class Fatal(BaseException):
        pass

    tracked = Tracked(plenty())

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        for chunk in tracked:
            yield chunk
            raise Fatal

    with pytest.raises(Fatal):
        await call(wrap(app))
    assert tracked.produced == 1
