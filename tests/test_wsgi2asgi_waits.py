"""How WSGI2ASGI's event loop waits for a worker thread: blocked first, then parked.

``blocking_wait``: the event loop thread waits for the worker blocked, for at most that
long, and only then lets the request's task wait like any task. Each test probes the
request with :func:`anysgi._inline.run_inline`, whose callback runs exactly when the
request's coroutine first has to suspend, that is when the loop stopped blocking.
Everything runs on asyncio and trio; every app is wrapped in ``wsgiref.validate``.
"""

from __future__ import annotations

import threading
import wsgiref.validate
from collections.abc import Iterator, MutableMapping
from typing import Any

import anyio
import pytest

import anysgi.wsgi2asgi
from anysgi import WSGI2ASGI
from anysgi._inline import run_inline

from .asgi_driver import http_scope

pytestmark = pytest.mark.anyio

Message = dict[str, Any]
HELLO = b"Hello, world!"


def hello_or_gated(gate: threading.Event) -> Any:
    """``/slow`` answers only once *gate* is set; anything else answers at once."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/slow" and not gate.wait(10):
            raise AssertionError("the gate was never opened")
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
        return [HELLO]

    return wsgiref.validate.validator(app)


async def probe(
    app: WSGI2ASGI, path: str = "/", on_suspend: Any = None
) -> tuple[bool, list[Message]]:
    """Serve one GET: (whether the request had to suspend, the messages it sent)."""
    suspended: list[bool] = []
    sent: list[Message] = []
    received: list[bool] = []

    async def receive() -> Message:
        if received:  # as servers do: nothing more until the client disconnects
            await anyio.sleep_forever()
        received.append(True)
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    def suspending() -> None:
        suspended.append(True)
        if on_suspend is not None:
            on_suspend()

    with anyio.fail_after(10):
        await run_inline(app(http_scope(path=path), receive, send), suspending)
    return bool(suspended), sent


def hello_messages() -> list[Message]:
    return [
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
        },
        {"type": "http.response.body", "body": HELLO, "more_body": False},
    ]


async def test_an_answer_in_time_costs_the_request_no_suspension() -> None:
    app = WSGI2ASGI(hello_or_gated(threading.Event()), blocking_wait=10)
    for _ in range(3):  # the first one starts the pool's thread
        suspended, sent = await probe(app)
        assert not suspended
        assert sent == hello_messages()


async def test_a_late_answer_parks_the_task_and_the_next_requests_do_not_block() -> None:
    gate = threading.Event()
    app = WSGI2ASGI(hello_or_gated(gate), blocking_wait=0.02)

    # The worker cannot answer before the task is parked: the gate opens only then.
    suspended, sent = await probe(app, "/slow", gate.set)
    assert suspended
    assert sent == hello_messages()
    # Backoff: the next request does not block at all, the one after blocks again.
    assert (await probe(app))[0]
    assert not (await probe(app))[0]

    # A second late answer in a row doubles the backoff: 1 request, then 2.
    gate.clear()
    assert (await probe(app, "/slow", gate.set))[0]
    assert (await probe(app))[0]
    gate.clear()
    assert (await probe(app, "/slow", gate.set))[0]
    assert [(await probe(app))[0] for _ in range(3)] == [True, True, False]


async def test_the_backoff_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(anysgi.wsgi2asgi, "_MAX_BACKOFF", 2)
    gate = threading.Event()
    app = WSGI2ASGI(hello_or_gated(gate), blocking_wait=0.02)

    async def slow() -> None:
        gate.clear()
        assert (await probe(app, "/slow", gate.set))[0]

    # Late answers in a row, each after the requests the backoff skips: the backoff goes
    # 1, 2, then stays at 2 (it would be 4 without the bound).
    await slow()  # late: skip 1
    await slow()  # skipped
    await slow()  # late: skip 2
    await slow()
    await slow()  # skipped twice
    await slow()  # late: skip 2, not 4
    assert [(await probe(app))[0] for _ in range(3)] == [True, True, False]


class LateLock:
    """A lock whose timed acquire reports a timeout only after the lock was released: the
    worker answering just after the event loop stopped waiting, the race the mutex in
    ``_Exchange`` settles."""

    def __init__(self) -> None:
        self._lock = _real_lock()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        got = self._lock.acquire(blocking, 10 if timeout != -1 else -1)
        if timeout != -1:
            assert got, "the worker never answered"
            return False
        return got

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


_real_lock = threading.Lock


async def test_an_answer_right_after_the_timeout_is_taken_as_in_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = WSGI2ASGI(hello_or_gated(threading.Event()), blocking_wait=10)
    fake_threading = type("threading", (), {"Lock": LateLock})
    monkeypatch.setattr(anysgi.wsgi2asgi, "threading", fake_threading)
    suspended, sent = await probe(app)
    assert not suspended  # nothing was left to wait for
    assert sent == hello_messages()
    monkeypatch.undo()
    assert not (await probe(app))[0]  # and it counted as in time: no backoff


async def test_a_streamed_response_that_starts_during_the_blocking_wait() -> None:
    def chunks() -> Iterator[bytes]:
        yield b"one "
        yield b"two "
        yield b"three"

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return chunks()

    # The worker asks the loop to send the first chunk while the loop blocks for it: the
    # loop sends it, and the rest goes the parked way.
    suspended, sent = await probe(WSGI2ASGI(wsgiref.validate.validator(app), blocking_wait=10))
    assert suspended
    assert sent[0]["type"] == "http.response.start"
    assert b"".join(m.get("body", b"") for m in sent[1:]) == b"one two three"
    assert sent[-1]["more_body"] is False


async def test_zero_never_blocks() -> None:
    app = WSGI2ASGI(hello_or_gated(threading.Event()), blocking_wait=0)
    for _ in range(3):
        suspended, sent = await probe(app)
        assert suspended
        assert sent == hello_messages()


@pytest.mark.parametrize("value", [-0.001, float("nan")])
def test_blocking_wait_must_not_be_negative(value: float) -> None:
    with pytest.raises(ValueError, match="blocking_wait must not be negative"):
        WSGI2ASGI(hello_or_gated(threading.Event()), blocking_wait=value)


async def test_the_event_loop_still_runs_other_tasks_around_a_blocking_wait() -> None:
    # Blocking is bounded: a task that was ready before a late request runs once the
    # request is parked, long before the request is answered.
    gate = threading.Event()
    app = WSGI2ASGI(hello_or_gated(gate), blocking_wait=0.02)
    ran = anyio.Event()
    order: list[str] = []

    async def other() -> None:
        order.append("other")
        ran.set()

    async def late() -> None:
        await probe(app, "/slow")
        order.append("late")

    async with anyio.create_task_group() as tg:
        tg.start_soon(late)
        tg.start_soon(other)
        await ran.wait()
        gate.set()
    assert order == ["other", "late"]
