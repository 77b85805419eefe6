"""``ASGI2WSGI``: run an ASGI application under any WSGI server.

How a request travels (see ``docs/discussion/asgi2wsgi.rst`` for the why):

* Each instance owns one event loop per process, in a thread started by
  :func:`anyio.from_thread.start_blocking_portal` on the first request (so a pre-fork
  server's master never has a loop thread that ``fork()`` cannot copy). A forked child
  notices the pid change and starts its own.
* The WSGI thread builds the scope (:func:`anysgi._cgi.scope_from_environ`), reads a small
  request body itself, and posts the request to the loop through an *inbox*: a deque plus a
  socket the loop waits on with :func:`anyio.wait_readable`. That is the only hop into the
  loop for a small request.
* In the loop, a pool of worker tasks runs requests. A worker runs the application in a
  fresh copy of its pristine :mod:`contextvars` context, so context variables never leak
  from one request to the next, without paying for a new task per request.
* The loop answers through the request's *outbox*: a deque plus a per-request doorbell (an
  eventfd, or a pipe) the WSGI thread sleeps on. The WSGI thread wakes once the response is
  complete or its first body chunk is ready: the only hop out for a small response.
* Streaming: each further body chunk is posted as it is sent; ``send()`` waits while more
  than ``send_buffer_size`` bytes have not been taken by the WSGI server. Request body
  chunks are read by the WSGI thread when ``receive()`` asks for them.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import functools
import logging
import math
import os
import socket
import threading
import weakref
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import AbstractContextManager
from types import CoroutineType, TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, cast, final

import anyio
import anyio.abc
import anyio.lowlevel
from anyio.from_thread import BlockingPortal, start_blocking_portal

from ._cgi import scope_from_environ, status_line
from ._errors import AnysgiError, ClientDisconnectedError, LifespanError
from ._lifespan import LifespanManager, LifespanMode
from ._threads import Doorbell

if TYPE_CHECKING:
    from concurrent.futures import Future

    from ._types import ASGIApp, Environ, ExcInfo, Message, Scope, StartResponse

__all__ = ("ASGI2WSGI",)

logger = logging.getLogger("anysgi.asgi2wsgi")

_BACKENDS = ("asyncio", "trio")
_LIFESPAN_MODES = ("auto", "on", "off")

# PEP 3333: "applications and middleware are forbidden from using HTTP/1.1 hop-by-hop
# features or headers". An ASGI application may send them; the WSGI server owns them.
_HOP_BY_HOP: Final = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
    }
)

# Messages from the event loop to the WSGI thread (the outbox).
_READ: Final = 0  # receive() wants a request body chunk
_BODY: Final = 1  # a response body chunk, more to come
_FINAL: Final = 2  # the last response body chunk (may be empty)
_END: Final = 3  # the application returned after starting the response: end it cleanly
_ERROR: Final = 4  # the application failed (payload: the exception)

_READ_MESSAGE: Final = (_READ, None)

_TEXT_PLAIN: Final = ("Content-Type", "text/plain; charset=utf-8")


class _LoopStoppedError(AnysgiError):
    """The instance's event loop is not running any more."""


# --- loop -> WSGI thread: doorbells ------------------------------------------------------

# Doorbells (see anysgi._threads.Doorbell) are pooled: a ring that arrives late, after its
# request is over, only makes the next user look at its (empty) outbox once more.
_doorbells: list[Doorbell] = []


def _take_doorbell() -> Doorbell:
    try:
        return _doorbells.pop()
    except IndexError:
        return Doorbell()


def _reset_doorbells_in_child() -> None:
    # A forked child must not share eventfds with its parent: a ring in one process could
    # be consumed by a waiter in the other.
    for doorbell in _doorbells:
        doorbell.close()
    _doorbells.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_doorbells_in_child)


# --- WSGI thread -> loop: the inbox ------------------------------------------------------


class _Inbox:
    """Runs callables in the event loop, posted from any thread without waiting.

    Two ways in, picked by measuring both on each backend (see the design notes):

    * asyncio: the event loop's own thread-safe callback queue, through
      ``EventLoopToken.backend_class.run_sync_soon`` (anyio >= 4.16): the callback runs in
      the very next loop iteration.
    * trio, whose own ``run_sync_soon`` goes through a system task anyway: a deque plus a
      socket pair. The dispatcher task sleeps in :func:`anyio.wait_readable` and is woken
      by one byte, sent only while it sleeps (the ``_armed`` flag: each side sets its flag
      before it looks at the other's, so a post is never missed). Under load one wake-up
      drains many posts.

    After :meth:`close`, posts raise :class:`_LoopStoppedError`; whatever was posted and
    never ran is accounted for by the runtime's teardown, which fails every request still
    in flight.
    """

    def __init__(self) -> None:
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        self._items: deque[tuple[Callable[..., object], tuple[Any, ...]]] = deque()
        self._closed = False
        self._armed = True
        self._run_sync_soon: Callable[..., None] | None = None
        self._native_token: object = None

    def bind(self, backend: str) -> bool:
        """Choose the way in, from inside the loop. Return True if the dispatcher is needed."""
        if backend == "asyncio":
            token = anyio.lowlevel.current_token()
            self._run_sync_soon = token.backend_class.run_sync_soon
            self._native_token = token.native_token
            return False
        return True

    def post(self, fn: Callable[..., object], *args: Any) -> None:
        """Run ``fn(*args)`` in the loop soon. Thread-safe; never blocks.

        No lock: a post that slips in while the loop closes the inbox may be dropped, but
        every request is registered as in flight before anything is posted for it, and the
        teardown, which runs after ``_closed`` is set, fails each one still in flight.

        :raises _LoopStoppedError: if the loop no longer takes work.
        """
        if self._closed:
            raise _LoopStoppedError("the ASGI2WSGI event loop is not running")
        run_sync_soon = self._run_sync_soon
        if run_sync_soon is not None:
            try:
                run_sync_soon(_call, (fn, args), self._native_token)
            except Exception as exc:  # the loop is closed
                raise _LoopStoppedError("the ASGI2WSGI event loop is not running") from exc
            return
        self._items.append((fn, args))
        if self._armed:
            with contextlib.suppress(BlockingIOError):  # full: a wake-up already
                self._writer.send(b"\0")

    async def run(self) -> None:
        """The dispatcher: run posted callables until cancelled."""
        items = self._items
        reader = self._reader
        while True:
            self._armed = True
            if not items:
                await anyio.wait_readable(reader)
                with contextlib.suppress(BlockingIOError):
                    while reader.recv(4096):
                        pass
            self._armed = False
            while items:
                _call(*items.popleft())

    def close(self) -> None:
        """Refuse further posts, drop what is queued, and close the sockets."""
        self._closed = True
        self._items.clear()
        self._reader.close()
        self._writer.close()


def _call(fn: Callable[..., object], args: tuple[Any, ...]) -> None:
    try:
        fn(*args)
    except Exception:
        # Only a bug of ours can get here: callbacks never run application code.
        logger.exception("Internal error in ASGI2WSGI (callback %r)", fn)


# --- running an application in a fresh context -------------------------------------------


class _InContext:
    """Await a coroutine with each of its steps run in *context*.

    A worker task serves many requests, and a task's own context would carry context
    variables from one request into the next. Each request gets a copy of the runtime's
    pristine context instead, as if it had a task of its own. Yielded values, sent values
    and thrown exceptions (cancellation included) pass through untouched, so this works on
    every event loop.

    It also marks the application's steps on the exchange: a doorbell rung during a step
    is rung when the step ends (all the chunks of one step wake the WSGI thread once), or,
    when the application has returned, by the worker (see :meth:`_Worker.run`).
    """

    __slots__ = ("_context", "_coro", "_ex")

    def __init__(self, coro: Any, context: contextvars.Context, ex: _Exchange) -> None:
        self._coro = coro
        self._context = context
        self._ex = ex

    def __await__(self) -> Generator[Any, Any, None]:
        run = self._context.run
        coro = self._coro
        ex = self._ex
        send = coro.send
        value: Any = None
        error: BaseException | None = None
        while True:
            ex._in_step = True
            try:
                if error is None:
                    yielded = run(send, value)
                else:
                    thrown, error = error, None
                    yielded = run(coro.throw, thrown)
            except StopIteration:
                return
            finally:
                ex._in_step = False
            if ex._ring_due:  # the application is about to wait: wake the WSGI thread now
                ex._ring_due = False
                ex.doorbell.ring()
            try:
                value = yield yielded
            except GeneratorExit:
                run(coro.close)
                raise
            except BaseException as exc:  # noqa: BLE001 - thrown in: passed on to coro
                error = exc


# --- one request -------------------------------------------------------------------------


class _Exchange:
    """One request, shared by the WSGI thread and the event loop.

    Each field is written by one side only (the comments say which), except ``_pending``
    and ``_sender_waiting``, which ``_lock`` guards.
    """

    __slots__ = (
        "_app_done",
        "_body_done",
        "_cancel_scope",
        "_closed_out",
        "_complete",
        "_end_event",
        "_gone",
        "_head_posted",
        "_in_step",
        "_lock",
        "_pending",
        "_reading",
        "_received",
        "_recv_event",
        "_remaining",
        "_ring_due",
        "_send_event",
        "_sender_waiting",
        "_started",
        "_stash",
        "doorbell",
        "environ",
        "headers",
        "out",
        "rt",
        "scope",
        "status",
        "thread",
        "too_large",
        "wsgi_done",
    )

    def __init__(
        self,
        rt: _Runtime,
        scope: Scope,
        environ: Environ,
        remaining: int | None,
        first: Message | None,
    ) -> None:
        self.rt = rt
        self.scope = scope
        self.environ = environ
        self.thread = threading.get_ident()  # the WSGI thread serving it
        self.out: deque[tuple[int, Any]] = deque()
        self.doorbell = _take_doorbell()
        self.status = ""
        self.headers: list[tuple[str, str]] = []
        # WSGI side
        self.wsgi_done = False
        self.too_large = False
        self._remaining = remaining  # request body bytes still to read; None: up to EOF
        self._received = 0
        # loop side
        self._stash = first  # a receive() result waiting to be taken
        self._body_done = first is not None and not first.get("more_body", False)
        self._reading = False
        self._recv_event: anyio.Event | None = None
        self._end_event: anyio.Event | None = None
        self._send_event: anyio.Event | None = None
        self._started = False
        self._head_posted = False
        self._complete = False
        self._closed_out = False
        self._gone = False
        self._app_done = False
        self._cancel_scope: anyio.CancelScope | None = None
        self._in_step = False  # the application's own coroutine is running a step
        self._ring_due = False  # the doorbell is to be rung once that step ends
        # both sides
        self._lock = threading.Lock()
        self._pending = 0
        self._sender_waiting = False

    # --- loop side: the application's receive() and send() -------------------------------

    async def receive(self) -> Message:
        stash = self._stash
        if stash is not None:
            self._stash = None
            return stash
        if not self._body_done and not self._complete and not self._gone and not self._app_done:
            if not self._reading:
                self._reading = True
                self._recv_event = anyio.Event()
                self._post(_READ_MESSAGE)
            event = self._recv_event
            assert event is not None
            await event.wait()
            stash = self._stash
            if stash is not None:
                self._stash = None
                return stash
        # ASGI: once the body is read, receive() blocks until the response is complete or
        # the client is gone, then says http.disconnect.
        if not self._complete and not self._gone and not self._app_done:
            if self._end_event is None:
                self._end_event = anyio.Event()
            await self._end_event.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            if not self._started:
                raise RuntimeError("http.response.body sent before http.response.start")
            if self._complete:
                raise RuntimeError("http.response.body sent after the response was complete")
            if self._gone:
                raise ClientDisconnectedError("the client went away")
            body = message.get("body", b"")
            if type(body) is not bytes:
                body = bytes(body)
            if not message.get("more_body", False):
                self._complete = True
                self._post((_FINAL, body))
                self._response_over()
                return
            if not body:
                return
            size = len(body)
            with self._lock:
                self._pending += size
                wait = self._pending > self.rt.send_buffer_size
                self._sender_waiting = wait
                self.out.append((_BODY, body))
            self._head_posted = True
            self._ring()
            if wait:
                event = self._send_event = anyio.Event()
                await event.wait()
                if self._gone:
                    raise ClientDisconnectedError("the client went away")
        elif kind == "http.response.start":
            if self._started:
                raise RuntimeError("http.response.start sent twice")
            if self._gone:
                raise ClientDisconnectedError("the client went away")
            self.status = status_line(message["status"])
            headers = self.headers
            for name, value in message.get("headers", ()):
                if name.lower() in _HOP_BY_HOP:
                    continue
                headers.append((name.decode("latin-1"), value.decode("latin-1")))
            self._started = True
        elif kind == "http.response.trailers":
            # WSGI has no trailers; an application only sends them after asking for them
            # with "trailers": True, and then gets a complete response without them.
            if not message.get("more_trailers", False) and not self._complete:
                self._complete = True
                self._post((_FINAL, b""))
                self._response_over()
        else:
            raise RuntimeError(f"unexpected ASGI message type {kind!r} in an http scope")

    def _post(self, item: tuple[int, Any]) -> None:
        self.out.append(item)
        if item[0] != _READ:
            self._head_posted = True
            if item[0] != _BODY:
                self._closed_out = True
        self._ring()

    def _ring(self) -> None:
        # Within the application's own step, the ring waits for the step's end: sends
        # from its other tasks (Django answers from a child task) ring at once.
        if self._in_step:
            self._ring_due = True
        else:
            self.doorbell.ring()

    def flush_ring(self) -> None:
        if self._ring_due:
            self._ring_due = False
            self.doorbell.ring()

    def _response_over(self) -> None:
        """The response is complete: receive() says http.disconnect from now on."""
        if self._end_event is not None:
            self._end_event.set()
        if self._recv_event is not None:
            self._recv_event.set()
        self._start_wait_time()

    def _start_wait_time(self) -> None:
        scope = self._cancel_scope
        if scope is not None:
            scope.deadline = anyio.current_time() + self.rt.wait_time  # type: ignore[operator]

    # --- loop side: callbacks posted by the WSGI thread ----------------------------------

    def deliver(self, message: Message) -> None:
        """A request body chunk (or http.disconnect) read by the WSGI thread."""
        self._reading = False
        if message["type"] != "http.request" or not message["more_body"]:
            self._body_done = True
        self._stash = message
        event, self._recv_event = self._recv_event, None
        if event is not None:
            event.set()

    def wake_sender(self) -> None:
        if self._send_event is not None:
            self._send_event.set()
            self._send_event = None

    def on_gone(self) -> None:
        """The WSGI side stopped early (the client went away, or the server gave up)."""
        self._gone = True
        if self._end_event is not None:
            self._end_event.set()
        if self._recv_event is not None:
            self._recv_event.set()
        self.wake_sender()
        if not self._app_done:
            self._start_wait_time()

    # --- loop side: the end of the application -------------------------------------------

    def finish(self, error: BaseException | None, *, cancelled: bool = False) -> None:
        """The application returned (or raised, or was cancelled): tell the WSGI side."""
        self.flush_ring()
        self._app_done = True
        if self._end_event is not None:
            self._end_event.set()
        if self._recv_event is not None:
            self._recv_event.set()
        if self._closed_out or self._gone:
            if cancelled:
                logger.warning(
                    "ASGI application still running after its response ended: cancelled"
                    " (%s; %s %s)",
                    "shutdown" if self.rt.stopping else f"wait_time={self.rt.wait_time}",
                    self.scope["method"],
                    self.scope["path"],
                )
            elif error is not None and not (self._gone and isinstance(error, OSError)):
                logger.error(
                    "Exception in ASGI application after its response ended (%s %s)",
                    self.scope["method"],
                    self.scope["path"],
                    exc_info=error,
                )
            return
        if error is None:
            if self._started:
                self._post((_END, None))
                return
            error = RuntimeError("ASGI application returned without sending a response")
        elif cancelled:
            error = _LoopStoppedError("the ASGI2WSGI event loop stopped during the request")
        if not self._head_posted:
            # The WSGI server has not seen a status yet: this becomes a 500, so the
            # traceback is ours to log. After that, the server logs what it gets.
            logger.error(
                "Exception in ASGI application (%s %s)",
                self.scope["method"],
                self.scope["path"],
                exc_info=error,
            )
        self._post((_ERROR, error))

    def fail(self, error: BaseException) -> None:
        """The loop is going away under this request."""
        if not self._closed_out and not self._gone:
            self._post((_ERROR, error))

    # --- WSGI side -----------------------------------------------------------------------

    def next_message(self) -> tuple[int, Any]:
        out = self.out
        while not out:
            self.doorbell.wait()
        return out.popleft()

    def serve_read(self) -> None:
        """Read one request body chunk from wsgi.input and hand it to receive()."""
        rt = self.rt
        remaining = self._remaining
        size = rt.read_chunk_size if remaining is None else min(rt.read_chunk_size, remaining)
        message: Message
        try:
            data = self.environ["wsgi.input"].read(size)
        except Exception as exc:
            logger.debug("Reading the request body failed: client gone?", exc_info=exc)
            message = {"type": "http.disconnect"}
        else:
            if remaining is None:
                more = bool(data)
            elif not data:  # EOF before Content-Length bytes: the client went away
                more = False
                remaining = -1
            else:
                remaining -= len(data)
                more = remaining > 0
            self._remaining = remaining
            self._received += len(data)
            limit = rt.max_request_body
            if remaining == -1:
                message = {"type": "http.disconnect"}
            elif limit is not None and self._received > limit:
                self.too_large = True
                message = {"type": "http.disconnect"}
            else:
                message = {"type": "http.request", "body": data, "more_body": more}
        self._post_to_loop(self.deliver, message)

    def took(self, size: int) -> None:
        """The WSGI server took *size* bytes: let a waiting send() go on if it may."""
        with self._lock:
            self._pending -= size
            wake = self._sender_waiting and self._pending <= self.rt.send_buffer_size
            if wake:
                self._sender_waiting = False
        if wake:
            self._post_to_loop(self.wake_sender)

    def _post_to_loop(self, fn: Callable[..., object], *args: Any) -> None:
        try:
            self.rt.inbox.post(fn, *args)
        except _LoopStoppedError:
            # Nobody is left to answer: make sure whoever waits on the outbox wakes up.
            self.out.append((_ERROR, _LoopStoppedError("the ASGI2WSGI event loop stopped")))

    def release(self) -> None:
        """The WSGI side is done with this request (normally or not)."""
        if not self.wsgi_done:
            self.wsgi_done = True
            self.rt.inflight.discard(self)
            _doorbells.append(self.doorbell)

    def abandon(self) -> None:
        """The WSGI side stops before the response is complete."""
        if not self.wsgi_done:
            self.release()
            self._post_to_loop(self.on_gone)


# --- the response body, as the WSGI server iterates it -----------------------------------


@final
class _ResponseBody:
    """The WSGI response iterable for a streamed response."""

    __slots__ = ("_done", "_ex", "_first")

    def __init__(self, ex: _Exchange, first: bytes) -> None:
        self._ex = ex
        self._first: bytes | None = first
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        first = self._first
        if first is not None:
            self._first = None
            return first
        if self._done:
            raise StopIteration
        ex = self._ex
        while True:
            kind, payload = ex.next_message()
            if kind == _BODY:
                ex.took(len(payload))
                return payload  # type: ignore[no-any-return]
            if kind == _READ:
                ex.serve_read()
                if ex.too_large:
                    self._done = True
                    ex.abandon()
                    raise AnysgiError(
                        "request body larger than max_request_body, after the response"
                        " started: response cut"
                    )
                continue
            self._done = True
            ex.release()
            if kind == _FINAL:
                if payload:
                    return payload  # type: ignore[no-any-return]
                raise StopIteration
            if kind == _END:
                raise StopIteration
            raise payload

    def close(self) -> None:
        # PEP 3333: the server calls close() on every exit path. Before the end, that
        # means the client went away (or the server gave up): the application's receive()
        # says http.disconnect and its send() raises ClientDisconnectedError.
        self._done = True
        self._ex.abandon()


# --- the per-process runtime: loop thread, lifespan, workers ------------------------------


# Let the WSGI thread just woken by a response run now, while this worker still counts as
# draining, so that the request it brings next is picked up here without a hop. A system
# call that releases the GIL: the scheduler then picks who runs. It pays off when a WSGI
# thread calls again at once (a client in the same process, a benchmark); behind a network
# it mostly costs a context switch, so it is adaptive: a yield after which that same thread
# has brought its next request earns credit, any other costs some, and without credit a
# yield is only tried once every _YIELD_PROBE responses.
_yield_gil: Callable[[], None] = getattr(os, "sched_yield", lambda: None)
_YIELD_CREDIT_MAX: Final = 8
_YIELD_PROBE: Final = 64

#: Requests a worker runs back to back within one step before it lets other tasks run.
_MAX_STREAK: Final = 8


class _Worker:
    """A task in the loop that runs requests one after another."""

    __slots__ = ("_event", "_next", "rt")

    def __init__(self, rt: _Runtime) -> None:
        self.rt = rt
        self._event: anyio.Event | None = None
        self._next: _Exchange | None = None

    def wake(self, ex: _Exchange) -> None:
        """Give this idle worker *ex* (loop thread)."""
        self._next = ex
        assert self._event is not None
        self._event.set()

    async def run(self, ex: _Exchange | None) -> None:
        rt = self.rt
        base = rt.base_context
        incoming = rt.incoming
        streak = 0  # requests run back to back without a checkpoint
        try:
            while True:
                if ex is None:
                    event = self._event = anyio.Event()
                    rt.idle.append(self)
                    await event.wait()
                    ex, self._next = self._next, None
                    assert ex is not None
                rt.busy += 1
                try:
                    error, cancelled = await rt.run_request(ex, base.copy())
                finally:
                    rt.busy -= 1
                    if rt.busy == 0 and rt.all_idle is not None:
                        rt.all_idle.set()
                # Say "draining" before the response's doorbell rings (in finish()): the
                # WSGI thread it wakes may bring the next request at once, and then leaves
                # it in `incoming` for this worker instead of waking the loop for it.
                rt.draining += 1
                try:
                    ex.finish(error, cancelled=cancelled)
                    if not incoming:
                        rt.responses += 1
                        credit = rt.yield_credit
                        if credit > 0 or rt.responses % _YIELD_PROBE == 0:
                            thread = ex.thread
                            _yield_gil()
                            if incoming and incoming[-1].thread == thread:
                                rt.yield_credit = min(credit + 2, _YIELD_CREDIT_MAX)
                            elif credit > 0:
                                rt.yield_credit = credit - 1
                    if streak >= _MAX_STREAK and incoming:
                        # Requests taken this way never leave the worker's step: let the
                        # loop's other tasks run now and then.
                        streak = 0
                        await anyio.lowlevel.checkpoint()
                    try:
                        ex = incoming.popleft()
                        streak += 1
                    except IndexError:
                        ex = None
                        streak = 0
                finally:
                    rt.draining -= 1
                # Whoever queued a request while this worker counted as draining did not
                # kick the loop (submit() checks `draining` after it appends): look again
                # now that it is back to zero, and kick for any others.
                if incoming:
                    if ex is None:
                        with contextlib.suppress(IndexError):
                            ex = incoming.popleft()
                    if incoming:
                        rt.kick()
        finally:
            rt.workers -= 1


class _Runtime:
    """Everything one process needs to serve one ASGI2WSGI instance."""

    def __init__(self, owner: ASGI2WSGI) -> None:
        self.pid = os.getpid()
        self.app = owner.app
        self.backend = owner.backend
        self.lifespan: LifespanMode = owner.lifespan
        self.startup_timeout = owner.startup_timeout
        self.shutdown_timeout = owner.shutdown_timeout
        self.max_concurrency = owner.max_concurrency
        self.max_request_body = owner.max_request_body
        self.wait_time = owner.wait_time
        self.read_chunk_size = owner.read_chunk_size
        self.send_buffer_size = owner.send_buffer_size

        self.inbox = _Inbox()
        # Requests waiting for a worker: appended by WSGI threads, taken in the loop.
        self.incoming: deque[_Exchange] = deque()
        self.idle: deque[_Worker] = deque()  # loop thread only
        # Workers whose application has returned and that will look at `incoming` before
        # they sleep (loop thread writes; WSGI threads read).
        self.draining = 0
        self.yield_credit = _YIELD_CREDIT_MAX  # see _yield_gil
        self.responses = 0
        self.inflight: set[_Exchange] = set()
        self.workers = 0
        self.busy = 0
        self.state: dict[str, Any] = {}
        self.failure: LifespanError | None = None
        self.dead = False
        self.stopping = False
        self.all_idle: anyio.Event | None = None
        # Each request runs in a copy of this: the context of the runtime's own task, made
        # before any request ran (a worker's own context would be a copy of whichever
        # WSGI thread's context posted the request that spawned it).
        self.base_context = contextvars.Context()
        self._task_group: anyio.abc.TaskGroup | None = None
        self._stop: anyio.Event | None = None
        self._portal_cm: AbstractContextManager[BlockingPortal] | None = None
        self._portal: BlockingPortal | None = None
        self._serve_future: Future[None] | None = None

    # --- lifecycle (WSGI threads, under the owner's lock) --------------------------------

    def start(self, backend: str, backend_options: dict[str, Any] | None) -> None:
        """Start the loop thread, run lifespan startup, start the dispatcher."""
        cm = start_blocking_portal(backend, backend_options)
        portal = cm.__enter__()
        try:
            # From an empty context: the loop would otherwise copy that of the WSGI thread
            # that happens to serve the first request, into every request after it.
            self._serve_future, _ = contextvars.Context().run(
                portal.start_task, self._serve, name="ASGI2WSGI"
            )
        except BaseException:
            self.inbox.close()
            cm.__exit__(None, None, None)
            raise
        self._portal_cm = cm
        self._portal = portal

    def stop(self) -> None:
        """Stop taking requests, wait for running ones, run lifespan shutdown, stop the loop.

        :raises LifespanError: if lifespan shutdown fails.
        """
        portal, cm = self._portal, self._portal_cm
        self._portal = self._portal_cm = None
        if portal is None or cm is None:
            return
        try:
            with contextlib.suppress(RuntimeError):  # the portal is already gone
                portal.call(self._request_stop)
            assert self._serve_future is not None
            self._serve_future.result()
        finally:
            cm.__exit__(None, None, None)

    def _request_stop(self) -> None:
        self.stopping = True
        if self._stop is not None:
            self._stop.set()

    # --- in the loop -----------------------------------------------------------------------

    async def _serve(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        self.base_context = contextvars.copy_context()
        self._stop = anyio.Event()
        started = False
        try:
            async with (
                LifespanManager(
                    self.app,
                    mode=self.lifespan,
                    startup_timeout=self.startup_timeout,
                    shutdown_timeout=self.shutdown_timeout,
                    state=self.state,
                ),
                anyio.create_task_group() as tg,
            ):
                self._task_group = tg
                if self.inbox.bind(self.backend):
                    tg.start_soon(self.inbox.run, name="ASGI2WSGI inbox")
                started = True
                task_status.started()
                await self._stop.wait()
                await self._drain()
                tg.cancel_scope.cancel()
        except LifespanError as exc:
            if started:
                raise
            logger.error("ASGI lifespan startup failed: every request gets a 500: %s", exc)
            self.failure = exc
            task_status.started()
            await self._stop.wait()
        finally:
            self._teardown()

    async def _drain(self) -> None:
        """Give running and queued requests up to shutdown_timeout to finish."""
        if self.busy == 0 and not self.incoming:
            return
        self.all_idle = anyio.Event()
        timeout = math.inf if self.shutdown_timeout is None else self.shutdown_timeout
        with anyio.move_on_after(timeout):
            while self.busy or self.incoming:
                await self.all_idle.wait()
                self.all_idle = anyio.Event()
        if self.busy or self.incoming:
            logger.warning(
                "ASGI2WSGI: cancelling %d request(s) still running",
                self.busy + len(self.incoming),
            )

    def _teardown(self) -> None:
        self.dead = True
        self.inbox.close()
        error = _LoopStoppedError("the ASGI2WSGI event loop stopped")
        for ex in list(self.inflight):
            ex.fail(error)
        self.inflight.clear()

    def kick(self) -> None:
        """Hand queued requests to idle or new workers (loop thread)."""
        if self.dead:
            return  # torn down: the requests have been failed already
        incoming = self.incoming
        while incoming:
            try:
                worker = self.idle.pop()
            except IndexError:
                worker = None
                if self.max_concurrency is not None and self.workers >= self.max_concurrency:
                    return  # the busy workers take them as they finish
            try:
                ex = incoming.popleft()
            except IndexError:
                if worker is not None:
                    self.idle.append(worker)
                return
            if worker is not None:
                worker.wake(ex)
            else:
                assert self._task_group is not None
                self.workers += 1
                self._task_group.start_soon(_Worker(self).run, ex)

    async def run_request(
        self, ex: _Exchange, context: contextvars.Context
    ) -> tuple[BaseException | None, bool]:
        """Run the application for *ex*: return (its exception or None, cancelled?).

        Reporting the outcome (:meth:`_Exchange.finish`) is the worker's, except when the
        worker itself is cancelled (shutdown): then it is reported here, and re-raised.
        """
        app = self.app
        try:
            coro: Any = context.run(app, ex.scope, ex.receive, ex.send)
            if type(coro) is not CoroutineType:
                coro = coro.__await__()
            if self.wait_time is None:
                await _InContext(coro, context, ex)
            else:
                with anyio.CancelScope() as scope:
                    ex._cancel_scope = scope
                    await _InContext(coro, context, ex)
                ex._cancel_scope = None
                if scope.cancelled_caught:
                    return None, True
        except anyio.get_cancelled_exc_class():
            ex.finish(None, cancelled=True)
            raise
        except BaseException as exc:  # noqa: BLE001 - reported (500 or log) by finish()
            # SystemExit or KeyboardInterrupt raised by application code in the loop
            # thread cannot stop the process from there; raised on, they would only take
            # down every other request with this one. They are reported like any error.
            return exc, False
        return None, False

    # --- WSGI side -----------------------------------------------------------------------

    def submit(self, ex: _Exchange) -> None:
        """Start *ex* in the loop (WSGI thread)."""
        self.inflight.add(ex)
        self.incoming.append(ex)
        # A draining worker looks at `incoming` after it stops counting as draining (see
        # _Worker.run): with one about, the loop needs no wake-up.
        if not self.draining:
            self.inbox.post(self.kick)


# --- the public class --------------------------------------------------------------------


@final
class ASGI2WSGI:
    """Run an ASGI application (FastAPI, Starlette, Quart, Litestar, Django...) as a WSGI one.

    .. code-block:: python

        from anysgi import ASGI2WSGI

        application = ASGI2WSGI(app, backend="trio")

    Then any WSGI server serves ``application``: gunicorn (sync or gthread workers, with
    or without ``--preload``), waitress, mod_wsgi, Passenger.

    The instance runs one event loop per process, in a thread, started on the first request
    (and again in a forked child). Lifespan startup runs there before the first request
    reaches the application; :meth:`close` (or leaving a ``with`` block, or interpreter
    exit) runs lifespan shutdown and stops the loop.

    Request bodies stream from ``wsgi.input`` as the application calls ``receive()``;
    response bodies stream to the server as the application calls ``send()``, with
    backpressure. Memory stays flat whatever the body sizes.

    :param app: the ASGI 3 application.
    :param backend: ``"asyncio"`` or ``"trio"``: the event loop the application runs on.
    :param backend_options: options for that event loop, as for :func:`anyio.run` (for
        example ``{"use_uvloop": True}`` with asyncio).
    :param lifespan: ``"auto"`` (run the ASGI lifespan protocol if the application
        supports it), ``"on"`` (it must: otherwise every request gets a 500) or ``"off"``.
        If startup fails, every request gets a 500 and the failure is logged.
    :param max_request_body: the largest request body accepted, in bytes; ``None`` (the
        default) for no limit. A larger ``Content-Length`` gets a 413 without calling the
        application; a chunked body that grows past the limit ends the body with
        ``http.disconnect`` and gets a 413 (or, if the response has already started, the
        response is cut). Never silent truncation.
    :param wait_time: seconds the application may keep running once its response is
        complete (background tasks) or once the client is gone, before it is cancelled;
        ``None`` (the default) never cancels it. Either way the WSGI thread is free as soon
        as the response is complete.
    :param max_concurrency: the most requests the application runs at once in this
        process, background work included; further requests wait in order. ``None`` (the
        default) for no limit: the WSGI server's own thread count is the limit then.
    :param read_chunk_size: the most request body bytes read from ``wsgi.input`` for one
        ``receive()`` (and the largest body read ahead, before the application is called).
    :param send_buffer_size: how many response body bytes ``send()`` may queue for the WSGI
        server before it waits for the server to take them.
    :param startup_timeout: seconds to wait for lifespan startup; ``None`` for ever.
    :param shutdown_timeout: seconds :meth:`close` waits for running requests, and then for
        lifespan shutdown; ``None`` for ever.
    """

    def __init__(
        self,
        app: ASGIApp,
        backend: Literal["asyncio", "trio"] = "asyncio",
        backend_options: dict[str, Any] | None = None,
        lifespan: Literal["auto", "on", "off"] = "auto",
        max_request_body: int | None = None,
        wait_time: float | None = None,
        *,
        max_concurrency: int | None = None,
        read_chunk_size: int = 65536,
        send_buffer_size: int = 65536,
        startup_timeout: float | None = 60.0,
        shutdown_timeout: float | None = 60.0,
    ) -> None:
        if backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {_BACKENDS}, not {backend!r}")
        if lifespan not in _LIFESPAN_MODES:
            raise ValueError(f"lifespan must be one of {_LIFESPAN_MODES}, not {lifespan!r}")
        _check_size("max_request_body", max_request_body, minimum=0, optional=True)
        _check_size("max_concurrency", max_concurrency, minimum=1, optional=True)
        _check_size("read_chunk_size", read_chunk_size, minimum=1)
        _check_size("send_buffer_size", send_buffer_size, minimum=0)
        for name, seconds in (
            ("wait_time", wait_time),
            ("startup_timeout", startup_timeout),
            ("shutdown_timeout", shutdown_timeout),
        ):
            if seconds is not None and not seconds >= 0:
                raise ValueError(f"{name} must be None or a number >= 0, not {seconds!r}")

        self.app = app
        self.backend = backend
        self.backend_options = backend_options
        self.lifespan: LifespanMode = lifespan
        self.max_request_body = max_request_body
        self.wait_time = wait_time
        self.max_concurrency = max_concurrency
        self.read_chunk_size = read_chunk_size
        self.send_buffer_size = send_buffer_size
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout

        self._lock = threading.Lock()
        self._runtime: _Runtime | None = None
        self._closed = False
        # Interpreter exit closes a forgotten instance; the hook holds only a weak
        # reference, and close() removes it.
        ref = weakref.ref(self)
        self._atexit_hook: Callable[[], None] = functools.partial(_close_at_exit, ref)
        atexit.register(self._atexit_hook)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=lambda: _after_fork_in_child(ref))

    def __repr__(self) -> str:
        return f"ASGI2WSGI({self.app!r}, backend={self.backend!r})"

    # --- the WSGI application --------------------------------------------------------------

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Serve one request (PEP 3333)."""
        rt = self._runtime
        if rt is None or rt.dead or rt.pid != os.getpid():
            rt = self._get_runtime()
        if rt.failure is not None:
            return _plain(start_response, 500, "Internal Server Error")

        # The request body: Content-Length up front, else to EOF if the server says the
        # input ends there (chunked uploads, PEP 3333 amendment wsgi.input_terminated),
        # else none.
        content_length = environ.get("CONTENT_LENGTH")
        if content_length:
            if not (content_length.isascii() and content_length.isdigit()):
                return _plain(start_response, 400, "Bad Request: invalid Content-Length")
            remaining: int | None = int(content_length)
            limit = rt.max_request_body
            if limit is not None and remaining > limit:  # type: ignore[operator]
                return _plain(start_response, 413, "Content Too Large")
        elif environ.get("wsgi.input_terminated"):
            remaining = None
        else:
            remaining = 0

        first: Message | None
        if remaining == 0:
            first = {"type": "http.request", "body": b"", "more_body": False}
        elif remaining is not None and remaining <= rt.read_chunk_size:
            # A small body is read here, in one go: receive() then needs no hop.
            data = environ["wsgi.input"].read(remaining)
            if len(data) == remaining:
                first = {"type": "http.request", "body": data, "more_body": False}
            else:
                first = {"type": "http.disconnect"}
            remaining = 0
        else:
            first = None

        # HTTPScope is what we build; the application gets a plain mutable mapping.
        scope = cast("Scope", scope_from_environ(environ))
        scope["state"] = rt.state.copy()
        ex = _Exchange(rt, scope, environ, remaining, first)
        try:
            rt.submit(ex)
        except _LoopStoppedError:
            ex.release()
            return _plain(start_response, 503, "Service Unavailable")
        try:
            return self._respond(ex, start_response)
        except BaseException:
            ex.abandon()
            raise

    def _respond(self, ex: _Exchange, start_response: StartResponse) -> Iterable[bytes]:
        """Wait for the status and the first body chunk (or the end), then answer."""
        while True:
            kind, payload = ex.next_message()
            if kind == _READ:
                ex.serve_read()
                if ex.too_large:
                    # The application got http.disconnect; whatever it answers is dropped.
                    ex.abandon()
                    return _plain(start_response, 413, "Content Too Large")
                continue
            if kind == _ERROR:
                ex.release()
                exc_info: ExcInfo = (type(payload), payload, payload.__traceback__)
                return _plain(start_response, 500, "Internal Server Error", exc_info)
            start_response(ex.status, ex.headers)
            if kind == _FINAL:
                ex.release()
                return [payload] if payload else []
            if kind == _END:
                ex.release()
                return []
            ex.took(len(payload))
            return _ResponseBody(ex, payload)

    # --- lifecycle -------------------------------------------------------------------------

    def _get_runtime(self) -> _Runtime:
        with self._lock:
            if self._closed:
                raise RuntimeError("this ASGI2WSGI instance is closed")
            rt = self._runtime
            if rt is not None and rt.pid != os.getpid():
                # Forked: the parent's loop thread does not exist here. Its objects stay
                # referenced so that collecting them cannot touch the parent's resources.
                _abandoned.append(rt)
                rt = None
            if rt is not None and rt.dead:
                logger.error("ASGI2WSGI: the event loop stopped unexpectedly; restarting it")
                try:
                    rt.stop()
                except Exception:
                    logger.exception("ASGI2WSGI: the stopped event loop failed with")
                rt = None
            if rt is None:
                rt = _Runtime(self)
                rt.start(self.backend, self.backend_options)
                self._runtime = rt
            return rt

    def close(self) -> None:
        """Wait for running requests, run lifespan shutdown and stop the event loop.

        Idempotent. A closed instance refuses further requests.

        :raises LifespanError: if the application's lifespan shutdown fails.
        """
        with self._lock:
            self._closed = True
            rt, self._runtime = self._runtime, None
        atexit.unregister(self._atexit_hook)
        if rt is not None and rt.pid == os.getpid():
            rt.stop()

    def __enter__(self) -> ASGI2WSGI:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


_abandoned: list[_Runtime] = []


def _close_at_exit(ref: weakref.ref[ASGI2WSGI]) -> None:
    instance = ref()
    if instance is None:
        return
    try:
        instance.close()
    except Exception:
        logger.exception("Closing %r at interpreter exit failed", instance)


def _after_fork_in_child(ref: weakref.ref[ASGI2WSGI]) -> None:
    instance = ref()
    if instance is not None:
        # A thread of the parent may have held the lock while it forked.
        instance._lock = threading.Lock()


def _check_size(name: str, value: int | None, *, minimum: int, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        allowed = "None or " if optional else ""
        raise ValueError(f"{name} must be {allowed}an int >= {minimum}, not {value!r}")


def _plain(
    start_response: StartResponse, status: int, text: str, exc_info: ExcInfo | None = None
) -> list[bytes]:
    body = text.encode()
    headers = [_TEXT_PLAIN, ("Content-Length", str(len(body)))]
    if exc_info is None:
        start_response(status_line(status), headers)
    else:
        start_response(status_line(status), headers, exc_info)
    return [body]
