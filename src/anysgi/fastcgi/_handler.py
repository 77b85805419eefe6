"""One FastCGI connection: a byte stream, a sans-IO :class:`~.protocol.Connection`, request tasks.

One task at a time reads the stream. It feeds what it reads to the codec and acts on each
event: STDIN goes to its request's bounded body buffer, management records are answered at
once, and a request whose PARAMS stream is complete is started. Requests write their
responses themselves, one write per batch of records (a stream takes one writer at a time;
requests multiplex).

Starting a request: when one read completes one request (nearly always: web servers send a
GET's records in one write and wait for the answer), the reading task runs the application
itself, inline, rather than paying for a task (more than the rest of a small request costs).
If the application has to wait, another task takes over the reading
(:meth:`ConnectionHandler._promote`, :mod:`anysgi._inline`), so a request never holds up the
others on its connection: at once if it waits for its body or the peer multiplexes, else
within PROMOTE_AFTER if it still waits then (web servers do not multiplex, and most waits,
a thread hop or a query, are over sooner; see :meth:`ConnectionHandler._on_suspend`). That
other task is the spare reader when there is one: a task whose own inline request has
finished waits to take the reading over again, so requests that wait take turns in two
tasks instead of starting one each. Several requests completed by one read each get a task
in the connection's group. The reading task's cancel scope must not reach an inline
application, so closing and the lingering-close deadline are applied to it only once the
application is done or has moved.

Backpressure, both ways (see :doc:`/discussion/backpressure`):

* request body: a request holds at most ``request_buffer_size`` bytes its application has not
  read; past that the reader stops reading the socket until the application catches up (or
  the request ends), so a fast client cannot make the server buffer an upload;
* response body: ``send()`` returns when the stream has taken the bytes, which waits while
  the socket's send buffer is full, so a slow client cannot make it buffer a download.

Ending things:

* ABORT_REQUEST: the application sees ``http.disconnect`` and its later ``send()`` calls raise
  :class:`ClientDisconnectedError`; END_REQUEST goes out at once, as spec 5.4 asks.
* the peer closes the connection (nginx's way of aborting): the same, minus END_REQUEST.
* FCGI_KEEP_CONN unset: after the request's END_REQUEST the server shuts down its sending
  side and reads until the peer closes (a "lingering close": closing with unread input would
  make the kernel send RST, which can destroy the response before the web server reads it).
* a protocol error: a warning naming the peer and the reason, and the connection is closed;
  other connections are not affected.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import logging
import math
import socket
import time
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.abc

from anysgi._cgi import CGIResponseError, cgi_response_head, scope_from_params
from anysgi._errors import ClientDisconnectedError
from anysgi._inline import run_inline

from . import protocol
from .protocol import (
    NEED_DATA,
    AbortRequest,
    BeginRequest,
    ConnectionClosed,
    EndRequest,
    GetValues,
    GetValuesResult,
    Params,
    ProtocolStatus,
    RemoteProtocolError,
    Role,
    Stdin,
    StdinEnd,
    Stdout,
    UnknownManagementRecord,
    UnknownType,
)

if TYPE_CHECKING:
    from anysgi._types import ASGIApp, Message

    from ._config import ServerConfig
    from ._io import Stream

__all__ = ("ConnectionHandler", "Promotions", "tune_socket")

logger = logging.getLogger("anysgi.fastcgi")
access_logger = logging.getLogger("anysgi.access")

#: Bytes asked of the stream per read. The codec then holds at most one incomplete record
#: (64 KiB) plus one read.
READ_SIZE: Final = 64 * 1024
#: Seconds a lingering close waits for the peer to close its side.
LINGER_TIMEOUT: Final = 5.0
#: Seconds an inline request may wait before its connection is read again (at most: the
#: promotions are made every PROMOTE_AFTER, see ConnectionHandler._on_suspend).
PROMOTE_AFTER: Final = 0.005

_GET_VALUES_KNOWN: Final = (
    protocol.FCGI_MAX_CONNS,
    protocol.FCGI_MAX_REQS,
    protocol.FCGI_MPXS_CONNS,
)
_DISCONNECT: Final = {"type": "http.disconnect"}
_STREAM_GONE: Final = (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError)


def tune_socket(sock: socket.socket) -> None:
    """Set TCP_NODELAY on a TCP socket: records leave as soon as they are written.

    Every batch of records is one write already, so Nagle's algorithm could only delay the
    last segment of a response (by up to the peer's delayed-ACK time, 40 ms on Linux).
    """
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _simple_response(status: int, text: str) -> bytes:
    body = text.encode() + b"\n"
    return (
        cgi_response_head(
            status,
            [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", b"%d" % len(body)),
            ],
        )
        + body
    )


class _Request:
    """One request on a connection: its body buffer and where its response stands."""

    __slots__ = (
        "body",
        "body_size",
        "body_total",
        "bytes_sent",
        "cancel_scope",
        "conn",
        "disconnected",
        "ended",
        "eof_delivered",
        "head",
        "input_ended",
        "keep_conn",
        "params",
        "request_id",
        "scope",
        "started",
        "status",
        "timed_out",
        "too_large",
        "waiter",
        "written",
    )

    def __init__(self, conn: ConnectionHandler, request_id: int, keep_conn: bool) -> None:
        self.conn = conn
        self.request_id = request_id
        self.keep_conn = keep_conn
        self.params: dict[bytes, bytes] = {}
        self.scope: dict[str, Any] = {}
        #: Cancels the application (request_timeout, max_request_body).
        self.cancel_scope: anyio.CancelScope | None = None
        #: Body chunks received and not yet given to the application.
        self.body: collections.deque[bytes] = collections.deque()
        self.body_size = 0
        self.body_total = 0
        self.input_ended = False
        self.eof_delivered = False
        #: The web server aborted the request or the connection is gone.
        self.disconnected = False
        self.too_large = False
        self.timed_out = False
        #: Set while receive() waits; the reader sets it when something happens.
        self.waiter: anyio.Event | None = None
        #: http.response.start received.
        self.started = False
        #: Response header block not yet written (sent with the first body bytes).
        self.head: bytes | None = None
        #: Some STDOUT bytes are on the wire.
        self.written = False
        #: END_REQUEST written (or the connection is gone): nothing more can be sent.
        self.ended = False
        self.status = 0
        self.bytes_sent = 0

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            waiter.set()

    async def receive(self) -> Message:
        while True:
            body = self.body
            if body:
                data = body.popleft() if len(body) == 1 else b"".join(body)
                body.clear()
                self.body_size = 0
                self.conn.body_consumed()
                more = not self.input_ended
                if not more:
                    self.eof_delivered = True
                return {"type": "http.request", "body": data, "more_body": more}
            if self.disconnected or self.ended:
                return _DISCONNECT
            if self.input_ended and not self.eof_delivered:
                self.eof_delivered = True
                return {"type": "http.request", "body": b"", "more_body": False}
            conn = self.conn
            if conn._inline:
                # Only the reader can bring what this waits for, and it is held up by the
                # inline request: no waiting for the promotions' next turn.
                if conn.waiting_inline:
                    conn.promote_waiting()  # another request, inline and waiting
                else:
                    conn.promote_on_suspend = True  # this one, about to wait
            waiter = self.waiter = anyio.Event()
            await waiter.wait()

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            if not self.started:
                raise RuntimeError(
                    "ASGI message http.response.body sent before http.response.start"
                )
            if self.ended:
                if self.disconnected:
                    raise ClientDisconnectedError("the web server aborted this request")
                raise RuntimeError("ASGI message http.response.body sent after the response ended")
            body = message.get("body", b"")
            if not message.get("more_body", False) and not self.disconnected:
                # The last (often the only) body message: headers, body and END_REQUEST in
                # one write, without going through write_body.
                head = self.head
                if head is not None:
                    self.head = None
                    body = head + body
                self.bytes_sent += len(body)
                await self.conn.end_request(self, body)
                return
            await self.conn.write_body(self, body, bool(message.get("more_body", False)))
        elif kind == "http.response.start":
            if self.started:
                raise RuntimeError("ASGI message http.response.start sent twice")
            status = message["status"]
            self.head = cgi_response_head(status, message.get("headers", ()))
            self.status = status
            self.started = True
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} for an http scope")


class Promotions:
    """Connections whose inline request waits, read again within PROMOTE_AFTER.

    One per server; :meth:`run` is its task, and sleeps while no connection waits.
    """

    def __init__(self) -> None:
        self.waiting: set[ConnectionHandler] = set()
        self._wake: anyio.Event | None = None

    def add(self, handler: ConnectionHandler) -> None:
        self.waiting.add(handler)
        wake = self._wake
        if wake is not None:
            self._wake = None
            wake.set()

    def discard(self, handler: ConnectionHandler) -> None:
        self.waiting.discard(handler)

    async def run(self) -> None:
        while True:
            if not self.waiting:
                wake = self._wake = anyio.Event()
                await wake.wait()
            await anyio.sleep(PROMOTE_AFTER)
            for handler in list(self.waiting):
                handler.promote_waiting()


class ConnectionHandler:
    """Serve one connection until it closes; :meth:`run` owns and closes the stream."""

    def __init__(
        self,
        stream: Stream,
        app: ASGIApp,
        config: ServerConfig,
        state: dict[str, Any] | None,
        peer: str,
        promotions: Promotions | None = None,
    ) -> None:
        self.stream = stream
        self.app = app
        #: The server's delayed promotions; None: an inline request that waits is promoted
        #: at once.
        self.promotions = promotions
        self.config = config
        self.state = state
        self.peer = peer
        self.codec = protocol.Connection(
            protocol.SERVER,
            max_params_size=config.max_params_size,
            max_concurrent_requests=config.max_requests_per_connection,
        )
        self.requests: dict[int, _Request] = {}
        self.running = 0
        #: No task will read the connection any more.
        self.reading_ended = False
        #: The peer has had two requests active at once on this connection.
        self.multiplexed = False
        #: The inline request waits, nobody reads, and a promotion is due (see _on_suspend).
        self.waiting_inline = False
        #: The inline request is about to wait for something only the reader brings.
        self.promote_on_suspend = False
        self.closing = False
        self.draining = False
        self.broken = False
        #: When the last request ended (time.monotonic()), for idle_timeout.
        self.idle_since = time.monotonic()
        self._space: anyio.Event | None = None
        #: Covers the reads of the task that reads the connection (it moves, see _promote).
        self._reader_scope = anyio.CancelScope()
        self._task_group: anyio.abc.TaskGroup | None = None
        #: Requests whose PARAMS ended in the current batch of events, not started yet.
        self._ready: list[_Request] = []
        #: The reading task is running a request inline (see _run_inline), and the reading
        #: has not moved to another task.
        self._inline = False
        #: A cancel or deadline for _reader_scope asked for while _inline: applied after.
        self._cancel_pending = False
        self._deadline_pending = math.inf
        #: Set by _promote to wake the task waiting in _wait_as_spare, if there is one...
        self._spare: anyio.Event | None = None
        #: ...with the cancel scope it is to read under.
        self._handover: anyio.CancelScope | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            async with anyio.create_task_group() as task_group:
                self._task_group = task_group
                await self._read(self._reader_scope)
        finally:
            with anyio.CancelScope(shield=True):
                await self.stream.aclose()

    async def _read(self, scope: anyio.CancelScope | None) -> None:
        """Read the connection under *scope*; between turns, wait as the spare reader."""
        while scope is not None:
            moved = False
            with scope:
                moved = await self._read_loop(scope)
            if not moved:
                self._end_reading()
                return
            # This task ran a request inline and the reading moved to another task while the
            # request waited. Rather than end, it waits to take over the reading the next
            # time a request waits: waking a task costs less than starting one.
            scope = await self._wait_as_spare()

    def _end_reading(self) -> None:
        self.reading_ended = True
        if self.broken:
            # The peer is gone or broke the protocol: nothing more can be written, so the
            # connection ends now, not when the last application task returns (the
            # descriptor itself is closed once nothing waits on it).
            self.stream.abort()
        spare = self._spare
        if spare is not None:  # nothing more to read: the spare reader ends too
            self._spare = None
            spare.set()

    async def _wait_as_spare(self) -> anyio.CancelScope | None:
        """Wait until :meth:`_promote` hands over the reading; None: end this task."""
        if self.reading_ended or self._spare is not None:
            return None  # one spare is enough
        spare = self._spare = anyio.Event()
        await spare.wait()
        scope, self._handover = self._handover, None
        return scope

    def drain(self) -> None:
        """Graceful stop: finish the requests in flight, then close; close now if idle."""
        self.draining = True
        if self.broken and self._task_group is not None:
            # Nobody can read these requests' responses any more: nothing to wait for.
            self._task_group.cancel_scope.cancel()
        elif not self._busy():
            self._close_now()

    def _busy(self) -> bool:
        return bool(self.running or self.codec.active_requests)

    def _close_now(self) -> None:
        self.closing = True
        if self._inline:
            # The reading task is running an application: stop reading once it is done.
            self._cancel_pending = True
        else:
            self._reader_scope.cancel()

    def check_idle(self, now: float) -> None:
        """Close the connection if it has had no request running for ``idle_timeout``.

        The server calls this for every connection a few times per ``idle_timeout``, with
        :func:`time.monotonic`; a timestamp per request is cheaper than moving a cancel
        scope's deadline (one timer each) twice per request.
        """
        timeout = self.config.idle_timeout
        if (
            timeout is not None
            and not self.running
            and not self.closing
            and now - self.idle_since >= timeout
        ):
            logger.debug("closing the connection from %s: idle for %ss", self.peer, timeout)
            self._close_now()

    # -- reading -----------------------------------------------------------------------------

    async def _read_loop(self, scope: anyio.CancelScope) -> bool:
        """Read and act on the connection until it ends; True if another task took over."""
        stream = self.stream
        codec = self.codec
        ready = self._ready
        data = b"x" * READ_SIZE
        while True:
            # After a full read more is probably waiting (an upload): read at once. After a
            # short one (a request, now answered), let the other connections run first: by
            # then the next request is usually there and needs no wait (see SocketIO).
            if len(data) == READ_SIZE:
                data = await stream.receive(READ_SIZE)
            else:
                data = await stream.receive_after_checkpoint(READ_SIZE)
            codec.receive_data(data)
            while True:
                try:
                    event = codec.next_event()
                except RemoteProtocolError as exc:
                    logger.warning("closing the connection from %s: %s", self.peer, exc)
                    self._connection_lost()
                    return False
                if event is NEED_DATA:
                    break
                event_type = type(event)
                if event_type is Stdin:
                    assert isinstance(event, Stdin)
                    request = self.requests.get(event.request_id)
                    if request is not None and not request.ended:
                        await self._receive_body(request, event.data)
                elif event_type is Params:
                    assert isinstance(event, Params)
                    request = self.requests.get(event.request_id)
                    if request is not None:
                        request.params = event.params
                        ready.append(request)
                elif event_type is StdinEnd:
                    request = self.requests.get(event.request_id)
                    if request is not None:
                        request.input_ended = True
                        request.wake()
                elif event_type is BeginRequest:
                    assert isinstance(event, BeginRequest)
                    if event.role is Role.RESPONDER and not self.closing:
                        request_id = event.request_id
                        if self.requests:
                            self.multiplexed = True
                        self.requests[request_id] = _Request(self, request_id, event.keep_conn)
                    else:
                        await self._begin_request(event)
                elif event_type is AbortRequest:
                    await self._abort_request(event.request_id)
                elif event_type is ConnectionClosed:
                    self._connection_lost()
                    return False
                elif event_type is GetValues:
                    assert isinstance(event, GetValues)
                    await self._get_values(event)
                elif event_type is UnknownManagementRecord:
                    assert isinstance(event, UnknownManagementRecord)
                    logger.debug(
                        "%s sent management record type %d: answering UNKNOWN_TYPE",
                        self.peer,
                        event.record_type,
                    )
                    await self._write_or_lose(self.codec.send(UnknownType(event.record_type)))
                # DATA and DataEnd belong to the Filter role, which is refused at BEGIN_REQUEST.
            if ready:
                if len(ready) == 1:
                    # The usual case: one request, often with all of its input read.
                    await self._run_inline(ready.pop())
                    if self._reader_scope is not scope:
                        return True
                else:
                    self._start_requests()
            if not data:
                self._connection_lost()
                return False

    async def _begin_request(self, event: BeginRequest) -> None:
        if self.closing:
            return  # after our END_REQUEST on a connection without KEEP_CONN, or stopping
        if event.role is not Role.RESPONDER:
            # Spec 5.5: "FCGI_UNKNOWN_ROLE: rejecting a request that specifies a role that
            # the application is unaware of" (we only play the Responder).
            logger.debug("%s asked for role %r: answering UNKNOWN_ROLE", self.peer, event.role)
            await self._write_or_lose(
                self.codec.send(
                    EndRequest(event.request_id, protocol_status=ProtocolStatus.UNKNOWN_ROLE)
                )
            )
            return
        self.requests[event.request_id] = _Request(self, event.request_id, event.keep_conn)

    def _start_requests(self) -> None:
        """Start a task for each request in _ready."""
        task_group = self._task_group
        assert task_group is not None
        self.multiplexed = True
        for request in self._ready:
            if not request.ended:  # not aborted before it started
                self.running += 1
                task_group.start_soon(self._run_request, request)
        self._ready.clear()

    async def _run_inline(self, request: _Request) -> None:
        """Run *request* in the reading task until its application first has to wait.

        Then the reading moves to another task (:meth:`_on_suspend`), and this task
        finishes the request (see :mod:`anysgi._inline`). An application that answers
        without waiting (a small response to a request whose body is all read) costs no
        task at all.
        """
        if request.ended:
            return  # aborted before it started
        self.running += 1
        self._inline = True
        try:
            # A context of its own, as a task would have: context variables the application
            # sets (request ids, in middleware that never resets them) must not reach the
            # next request on the connection.
            await run_inline(
                self._run_request(request), self._on_suspend, contextvars.copy_context()
            )
        finally:
            self.promote_on_suspend = False
            if self._inline:  # not promoted: this task goes on reading
                self._inline = False
                if self.waiting_inline:
                    self.waiting_inline = False
                    assert self.promotions is not None
                    self.promotions.discard(self)
                if self._cancel_pending:
                    self._cancel_pending = False
                    self._reader_scope.cancel()
                if self._deadline_pending != math.inf:
                    self._reader_scope.deadline = self._deadline_pending
                    self._deadline_pending = math.inf

    def _on_suspend(self) -> None:
        """The inline request has to wait: have the connection read again, soon or now.

        Reading while a request waits is how its connection serves other requests (if the
        web server multiplexes) and hears ABORT_REQUEST or a close. Web servers do not
        multiplex, and most waits are short (a thread hop, a database query), so handing
        the reading to another task at once would mostly cost a task switch and, on
        asyncio, a selector registration for nothing. So unless the peer has shown that it
        multiplexes, the promotion is left to the server's :class:`Promotions`, which
        makes it within PROMOTE_AFTER if the request still waits then; a request that
        waits for its body (receive()) is promoted at once.
        """
        promotions = self.promotions
        if promotions is None or self.multiplexed or self.promote_on_suspend:
            self.promote_on_suspend = False
            self._promote()
            return
        self.waiting_inline = True
        promotions.add(self)

    def promote_waiting(self) -> None:
        """Promote the waiting inline request now (see :meth:`_on_suspend`)."""
        if self.waiting_inline:
            self.waiting_inline = False
            assert self.promotions is not None
            self.promotions.discard(self)
            self._promote()

    def _promote(self) -> None:
        """The inline request must wait: another task reads the connection from now on.

        That is the spare reader if there is one (a task whose own inline request has
        finished since), otherwise a new task.
        """
        self._inline = False
        scope = self._reader_scope = anyio.CancelScope(deadline=self._deadline_pending)
        self._deadline_pending = math.inf
        if self._cancel_pending:
            self._cancel_pending = False
            scope.cancel()
        spare = self._spare
        if spare is not None:
            self._spare = None
            self._handover = scope
            spare.set()
            return
        assert self._task_group is not None
        self._task_group.start_soon(self._read, scope)

    async def _receive_body(self, request: _Request, data: bytes) -> None:
        limit = self.config.max_request_body
        request.body_total += len(data)
        if limit is not None and request.body_total > limit:
            if not request.too_large:
                # Past max_request_body: the application is cancelled and the client gets
                # a 413 (see _call_app); the rest of the body is read and dropped.
                request.too_large = True
                request.body.clear()
                request.body_size = 0
                if request.cancel_scope is not None:
                    request.cancel_scope.cancel()
                request.wake()
            return
        request.body.append(data)
        request.body_size += len(data)
        request.wake()
        if request.body_size >= self.config.request_buffer_size:
            # Backpressure: stop reading until the application has taken the body, or the
            # request is over (then further STDIN is dropped).
            while request.body_size >= self.config.request_buffer_size and not request.ended:
                space = self._space = anyio.Event()
                await space.wait()

    def body_consumed(self) -> None:
        space = self._space
        if space is not None:
            self._space = None
            space.set()

    async def _abort_request(self, request_id: int) -> None:
        request = self.requests.get(request_id)
        if request is None:
            return
        logger.debug("%s aborted request %d", self.peer, request_id)
        request.disconnected = True
        request.wake()
        if not request.ended:
            # Spec 5.4: "the application responds as soon as possible with
            # {FCGI_END_REQUEST, R, {FCGI_REQUEST_COMPLETE, appStatus}}", whether or not the
            # application has noticed yet.
            await self.end_request(request, b"", app_status=1)

    def _connection_lost(self) -> None:
        self.broken = True
        for request in self.requests.values():
            request.disconnected = True
            request.ended = True
            request.wake()
        self.requests.clear()
        self.body_consumed()

    async def _get_values(self, event: GetValues) -> None:
        # Spec 4.1: answer with the variables we know, with their real values.
        values = {
            protocol.FCGI_MAX_CONNS: b"%d" % self.config.max_connections,
            protocol.FCGI_MAX_REQS: b"%d" % self.config.max_requests_per_connection,
            protocol.FCGI_MPXS_CONNS: b"1",
        }
        answer = {name: values[name] for name in event.names if name in values}
        await self._write_or_lose(self.codec.send(GetValuesResult(answer)))

    # -- writing -----------------------------------------------------------------------------

    async def _write(self, data: bytes) -> None:
        if self.broken:
            raise ClientDisconnectedError("the web server closed the connection")
        try:
            await self.stream.send(data)
        except _STREAM_GONE as exc:
            if not self.broken:
                logger.debug("writing to %s failed: %r", self.peer, exc)
                self._connection_lost()
            raise ClientDisconnectedError("the web server closed the connection") from exc

    async def _write_or_lose(self, data: bytes) -> None:
        # A failure means the peer is gone, which the reader sees next.
        with contextlib.suppress(ClientDisconnectedError):
            await self._write(data)

    async def write_body(self, request: _Request, body: bytes, more_body: bool) -> None:
        if request.disconnected:
            raise ClientDisconnectedError("the web server aborted this request")
        head = request.head
        if head is not None:
            if not body and more_body:
                # A streamed response: the headers go now, so the client sees them early.
                request.head = None
                request.written = True
                await self._write(self.codec.send(Stdout(request.request_id, head)))
                return
            request.head = None
            body = head + body
        request.bytes_sent += len(body)
        if more_body:
            if body:
                request.written = True
                await self._write(self.codec.send(Stdout(request.request_id, body)))
        else:
            await self.end_request(request, body)

    async def end_request(self, request: _Request, body: bytes, app_status: int = 0) -> None:
        """Write the last STDOUT bytes and END_REQUEST in one write; close if asked to."""
        request.ended = True
        request.written = True
        request_id = request.request_id
        codec = self.codec
        data = codec.send(Stdout(request_id, body)) if body else b""
        data += codec.send(EndRequest(request_id, app_status))
        if self.requests.get(request_id) is request:
            del self.requests[request_id]
        request.wake()
        if request.body_size:
            request.body.clear()
            request.body_size = 0
            self.body_consumed()
        try:
            await self._write(data)
        finally:
            if not request.keep_conn or (self.draining and not self._busy_after(request)):
                await self._linger()

    def _busy_after(self, request: _Request) -> bool:
        # Busy apart from *request*, whose task is finishing.
        return bool(self.codec.active_requests) or self.running > 1

    async def _linger(self) -> None:
        """Shut down our sending side, then let the reader read until the peer closes."""
        if self.closing:
            return
        self.closing = True
        with contextlib.suppress(*_STREAM_GONE):  # gone already: the reader finds out
            await self.stream.send_eof()
        deadline = anyio.current_time() + LINGER_TIMEOUT
        if self._inline:
            self._deadline_pending = deadline
        else:
            self._reader_scope.deadline = deadline

    # -- running the application -------------------------------------------------------------

    async def _run_request(self, request: _Request) -> None:
        config = self.config
        start = time.monotonic() if config.access_log else 0.0
        try:
            scope: dict[str, Any] = scope_from_params(  # type: ignore[assignment]
                request.params, force_script_name=config.root_path
            )
            request.params = {}
            if self.state is not None:
                scope["state"] = self.state.copy()
            request.scope = scope
            limit = config.max_request_body
            if limit is not None:
                for name, value in scope["headers"]:
                    if name == b"content-length":
                        if value.isdigit() and int(value) > limit:
                            request.too_large = True
                        break
            if request.too_large:
                await self._error_response(request, 413, "Request body too large")
            else:
                await self._call_app(request)
        finally:
            self.running -= 1
            if not request.ended:
                request.ended = True
                if self.requests.get(request.request_id) is request:
                    del self.requests[request.request_id]
            request.wake()
            self.body_consumed()
            if config.access_log:
                self._log_access(request, time.monotonic() - start)
            if self.running == 0:
                self.idle_since = time.monotonic()
                if self.draining and not self.codec.active_requests and not self.closing:
                    self._close_now()

    async def _call_app(self, request: _Request) -> None:
        scope = request.scope
        timeout = self.config.request_timeout
        try:
            if timeout is None and self.config.max_request_body is None:
                # Nothing can cancel this request but its connection: no scope to pay for.
                cancel_scope = None
                await self.app(scope, request.receive, request.send)
            else:
                deadline = math.inf if timeout is None else anyio.current_time() + timeout
                with anyio.CancelScope(deadline=deadline) as cancel_scope:
                    request.cancel_scope = cancel_scope
                    await self.app(scope, request.receive, request.send)
        except ClientDisconnectedError:
            if not request.disconnected:
                raise
            logger.debug("request %d from %s: client went away", request.request_id, self.peer)
            return
        except CGIResponseError as exc:
            logger.error(
                "request %d from %s: the application sent an invalid response: %s",
                request.request_id,
                self.peer,
                exc,
            )
            await self._app_failed(request)
            return
        except Exception:
            if request.disconnected:
                logger.exception(
                    "request %d from %s: the application raised after the client went away",
                    request.request_id,
                    self.peer,
                )
                return
            logger.exception(
                "request %d from %s: the application raised", request.request_id, self.peer
            )
            await self._app_failed(request)
            return
        finally:
            request.cancel_scope = None
        if cancel_scope is not None and cancel_scope.cancelled_caught:
            if request.too_large:
                await self._error_response(request, 413, "Request body too large")
                return
            request.timed_out = True
            logger.error(
                "request %d from %s (%s %s): cancelled after request_timeout=%ss",
                request.request_id,
                self.peer,
                scope.get("method"),
                scope.get("path"),
                timeout,
            )
            await self._error_response(request, 504, "Gateway Timeout")
            return
        if not request.ended:
            if request.disconnected:
                return
            logger.error(
                "request %d from %s: the application returned without %s",
                request.request_id,
                self.peer,
                "finishing its response" if request.started else "sending a response",
            )
            await self._app_failed(request)

    async def _app_failed(self, request: _Request) -> None:
        """A 500 if nothing was written yet; otherwise close the connection.

        Once part of the response is on the wire, END_REQUEST would make the web server
        take the truncated response as complete; closing the connection without it makes
        the web server report an error to the client instead.
        """
        if request.ended:
            return
        if not request.written:
            await self._error_response(request, 500, "Internal Server Error")
            return
        request.ended = True
        self._connection_lost()
        self._close_now()

    async def _error_response(self, request: _Request, status: int, text: str) -> None:
        if request.ended:
            return
        if request.written:
            await self._app_failed(request)
            return
        request.status = status
        request.head = None
        with contextlib.suppress(ClientDisconnectedError):
            await self.end_request(request, _simple_response(status, text))

    def _log_access(self, request: _Request, duration: float) -> None:
        scope = request.scope
        query = scope.get("query_string", b"")
        access_logger.info(
            '%s - "%s %s%s" %s %d %.1fms',
            (scope.get("client") or ("-",))[0],
            scope.get("method", "-"),
            scope.get("path", "-"),
            "?" + query.decode("latin-1") if query else "",
            request.status or "-",
            request.bytes_sent,
            duration * 1000,
        )
