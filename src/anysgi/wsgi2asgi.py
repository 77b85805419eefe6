"""WSGI2ASGI: run a WSGI application (PEP 3333) under any ASGI server, on asyncio or trio.

How a request flows (docs/discussion/wsgi2asgi.rst explains why):

1. On the event loop: the environ is built by ``_cgi.environ_from_scope``, and a
   small request body whose length is known (``prefetch_size``) is read before the app starts,
   so that ``wsgi.input`` never has to cross back to the loop for it.
2. The whole WSGI exchange is one job (:class:`_Exchange`) for the instance's own
   :class:`~anysgi._threads.ThreadPool` of at most ``max_threads`` threads: the app call,
   the iteration of its result and ``close()``. Frameworks keep thread-local state
   (Django's database connections) across those steps, so they never move between threads.
   The pool is not anyio's ``to_thread``: that hop costs about 55 us, most of a small
   request (docs/discussion/wsgi2asgi.rst, "Whose threads").
3. The event loop thread first waits for the worker blocked, for at most ``blocking_wait``
   (0.5 ms): a small app answers sooner than the loop could park the request's task and be
   woken through its self-pipe, and while the app runs Python code it holds the GIL, so
   the loop could not have run anyway. If the worker has not answered by then, the task
   waits for it as any task waits, and the next requests do not block for a while
   (:class:`_BlockingWaits`).
4. A response that is complete after its first chunk (a list or tuple, a body that reaches
   its Content-Length, an empty body) comes back to the loop as one value and is sent from
   there: one hop into the thread, one back. Anything longer is streamed by the worker:
   it hands each chunk to the request's task (``_Exchange.call_loop``) and waits for the
   send to finish, which is also the backpressure: the thread waits while the server
   cannot take more.
5. While a response streams, a watcher task waits on ``receive()`` for ``http.disconnect``;
   the worker checks the flag it sets before each ``next()`` and stops at once.
6. If the task is cancelled, it raises a flag the worker checks at its next chunk or read,
   and waits, shielded, for the worker to be done with the request before it returns.
"""

from __future__ import annotations

import contextvars
import io
import logging
import os
import re
import stat
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Final, cast, final

import anyio
import anyio.lowlevel

from ._cgi import environ_from_scope, parse_status_line
from ._threads import Doorbell, ThreadPool

_async_library: contextvars.ContextVar[str | None] | None
try:
    from sniffio import current_async_library_cvar as _async_library
except ImportError:  # pragma: no cover - sniffio is optional for anyio
    _async_library = None

if TYPE_CHECKING:
    from ._types import (
        ASGIReceive,
        ASGISend,
        Environ,
        Message,
        OptExcInfo,
        Scope,
        WriteCallable,
        WSGIApp,
    )

__all__ = ("WSGI2ASGI", "ClientDisconnected", "FileWrapper")

#: Messages about requests (app errors, disconnects, rejected WebSockets).
logger: Final = logging.getLogger("anysgi.wsgi")
#: What applications write to ``environ["wsgi.errors"]``, one record per line.
errors_logger: Final = logging.getLogger("anysgi.wsgi.errors")


# RFC 9110 5.1 field-name = token; 5.5 field values must not hold CR, LF or NUL.
_BAD_HEADER_NAME: Final = re.compile(r"[^!#$%&'*+\-.^_`|~0-9A-Za-z]")
_BAD_HEADER_VALUE: Final = re.compile(r"[\r\n\0]")

# What the worker thread hands back to the loop (a tuple, so the common case costs one
# allocation): (_COMPLETE, status, headers, body) -> send the whole response;
# (_CUT, status, headers, body) -> send it with more_body=True and stop: the response is
# shorter than its Content-Length and must not look complete; (_FINISH,) -> the worker
# streamed the body, send the final empty message; (_DONE,) -> nothing more to send (the
# response is complete, was cut after an error, or the client has gone).
_COMPLETE: Final = 0
_CUT: Final = 1
_FINISH: Final = 2
_DONE: Final = 3
_RAISE: Final = 4  # (_RAISE, exception): the worker ended with a BaseException

_DONE_OUTCOME: Final = (_DONE,)
_FINISH_OUTCOME: Final = (_FINISH,)
_ERROR_BODY: Final = b"Internal Server Error"
_ERROR_HEADERS: Final = (
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"content-length", str(len(_ERROR_BODY)).encode("ascii")),
)
_SMALL_JOIN: Final = 1024 * 1024
# HTTP versions where a request without Content-Length or Transfer-Encoding has no body.
_LENGTHY: Final = frozenset({"1.0", "1.1", None})
_NO_EXTENSIONS: Final[dict[str, object]] = {}

# Outcome is a tuple whose first item says what the loop must do; see the table above.
_Outcome = tuple[Any, ...]


class _Cancelled(BaseException):
    """Raised in the worker thread when the request's task was cancelled: like the event
    loop's own cancellation, a BaseException, so an application's ``except Exception``
    does not stop it."""


class _LoopGone(_Cancelled):
    """Raised in the worker thread when the request's event loop is closed: the task that
    waited for the request is gone, and nobody will ever answer the worker."""


class ClientDisconnected(OSError):  # noqa: N818 (named like uvicorn's and Starlette's)
    """The client went away: raised by ``wsgi.input`` reads and by ``write()``.

    It is an :class:`OSError`, like the error a WSGI server built on sockets would raise, so
    applications that already handle a broken connection handle this one too.
    """


@final
class FileWrapper:
    """``environ["wsgi.file_wrapper"]`` (PEP 3333, "Optional Platform-Specific File Handling").

    Iterating it reads *filelike* in blocks of *blksize* bytes; ``close()`` closes it. When
    the application returns one as its response, :class:`WSGI2ASGI` sends a regular file by
    path (``http.response.pathsend``) if the ASGI server offers that extension, and in
    bounded blocks otherwise.
    """

    __slots__ = ("blksize", "filelike")

    def __init__(self, filelike: Any, blksize: int = 8192) -> None:
        self.filelike = filelike
        self.blksize = blksize

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        data: bytes = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


class _ErrorStream:
    """``wsgi.errors``: a text stream whose lines go to the ``anysgi.wsgi.errors`` logger.

    Partial writes are kept until their line ends (``print(x, file=...)`` writes the text and
    the newline separately), so each log record is one whole line.
    """

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = ""

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"wsgi.errors.write() takes a str, not {type(s).__name__}")
        if "\n" not in s:
            self._pending += s
            return len(s)
        lines = (self._pending + s).split("\n")
        self._pending = lines.pop()
        for line in lines:
            errors_logger.error("%s", line)
        return len(s)

    def writelines(self, seq: Iterable[str]) -> None:
        for s in seq:
            self.write(s)

    def flush(self) -> None:
        if self._pending:
            errors_logger.error("%s", self._pending)
            self._pending = ""


class _Input:
    """``wsgi.input``: the request body as a blocking, read-only binary stream.

    It holds at most one ASGI message it has not handed out yet, plus what a pending
    ``read(n)``/``readline()`` is gathering. When the body was read before the app started
    (``prefetch_size``) *exchange* is None and every read is a slice of *body*. Otherwise
    each further message is fetched by the request's task on the event loop, only when the
    application asks for more: the server stops reading the socket in the meantime, which
    is the backpressure on uploads.
    """

    __slots__ = ("_buf", "_exchange", "_pos")

    def __init__(self, body: bytes, exchange: _Exchange | None) -> None:
        self._buf = body
        self._pos = 0
        self._exchange = exchange

    def _fill(self) -> bool:
        """Replace the (consumed) buffer with the next message; False at the end of the body."""
        exchange = self._exchange
        if exchange is None:
            return False
        # (Raises _Cancelled if the server cancelled the request: reading stops.)
        body, more_body = exchange.call_loop(exchange.receive_body)
        if not more_body:
            self._exchange = None
        self._buf = body
        self._pos = 0
        return bool(body) or more_body

    def read(self, size: int | None = -1, /) -> bytes:
        buf, pos = self._buf, self._pos
        available = len(buf) - pos
        if size is not None and 0 <= size <= available:
            self._pos = pos + size
            if pos == 0 and size == len(buf):
                return buf
            return buf[pos : pos + size]
        parts = [buf[pos:]] if available else []
        self._buf, self._pos = b"", 0
        if size is None or size < 0:
            while self._fill():
                parts.append(self._buf)
            self._buf = b""
            return b"".join(parts)
        needed = size - available
        while needed > 0 and self._fill():
            chunk = self._buf
            if len(chunk) > needed:
                parts.append(chunk[:needed])
                self._pos = needed
                break
            parts.append(chunk)
            needed -= len(chunk)
            self._buf = b""
        return b"".join(parts)

    def readline(self, size: int | None = -1, /) -> bytes:
        limit = sys.maxsize if size is None or size < 0 else size
        parts: list[bytes] = []
        while limit > 0:
            buf, pos = self._buf, self._pos
            end = buf.find(b"\n", pos, pos + limit)
            if end >= 0:
                self._pos = end + 1
                parts.append(buf[pos : end + 1])
                break
            taken = min(len(buf) - pos, limit)
            if taken:
                parts.append(buf[pos : pos + taken])
                limit -= taken
                self._pos = pos + taken
                if limit == 0:
                    break
            if not self._fill():
                break
        return b"".join(parts)

    def readlines(self, hint: int | None = -1, /) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if line:
            return line
        raise StopIteration

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        """Nothing to release: the server owns the connection."""


class _Exchange:
    """One HTTP request: the state shared by the request's task and its worker thread.

    It is the job the instance's :class:`~anysgi._threads.ThreadPool` runs. The two sides
    take turns: the task waits on :attr:`wake` while the worker runs; when the worker needs
    the loop (to send a chunk, to read the body) it posts :attr:`op` and waits on its
    thread's doorbell while the task runs it and posts :attr:`reply`. Only two flags are
    written by the loop while the worker runs, and the worker just reads them:
    ``disconnected`` (the watcher task saw ``http.disconnect``) and ``cancelled``.
    """

    __slots__ = (
        "app",
        "body_left",
        "cancelled",
        "context",
        "disconnected",
        "doorbell",
        "environ",
        "headers",
        "headers_sent",
        "input_done",
        "mutex",
        "op",
        "outcome",
        "pathsend",
        "pool",
        "receive",
        "remaining",
        "reply",
        "send",
        "status",
        "token",
        "waiter",
        "wake",
    )

    def __init__(
        self,
        app: WSGIApp,
        environ: Environ,
        receive: ASGIReceive,
        send: ASGISend,
        *,
        input_done: bool,
        pathsend: bool,
    ) -> None:
        self.app = app
        self.environ = environ
        self.receive = receive
        self.send = send
        self.input_done = input_done
        self.pathsend = pathsend
        self.body_left: int | None = None  # body bytes still expected, if the length is known
        self.status = 0  # 0 until start_response() is called
        self.headers: list[tuple[bytes, bytes]] = []
        self.remaining: int | None = None  # bytes the Content-Length still allows
        self.headers_sent = False
        self.disconnected = False
        self.cancelled = False  # the request's task was cancelled: stop at the next chunk
        # The hand-offs (see serve()); set on the loop before the worker can need them.
        self.pool: ThreadPool
        #: Held by the event loop thread while it waits for the worker, blocked (see
        #: serve()); the worker releases it instead of waking the loop. None otherwise.
        self.waiter: threading.Lock | None = None
        self.mutex: threading.Lock  # orders the worker's release against the loop giving up
        self.token: anyio.lowlevel.EventLoopToken
        self.wake: anyio.Event  # set (from the worker) when the loop has something to do
        self.context: contextvars.Context
        self.doorbell: Doorbell  # the worker thread's own
        self.op: tuple[Callable[..., Any], tuple[Any, ...]] | None = None
        self.reply: tuple[Any, BaseException | None] | None = None
        self.outcome: _Outcome | None = None

    # --- PEP 3333 callables (worker thread) ----------------------------------------------

    def start_response(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: OptExcInfo | None = None,
        /,
    ) -> WriteCallable:
        if exc_info is not None and exc_info[0] is not None:
            try:
                if self.headers_sent:
                    # PEP 3333: "if exc_info is provided, and the HTTP headers have already
                    # been sent, start_response must raise an error, and should re-raise
                    # using the exc_info tuple."
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # no traceback -> frame -> exc_info cycle
        elif self.status:
            raise RuntimeError(
                "start_response() was called a second time without exc_info (PEP 3333)"
            )
        if not isinstance(cast(object, status), str):
            raise TypeError(f"the WSGI status must be a str, not {type(status).__name__}")
        code = parse_status_line(status)
        encoded: list[tuple[bytes, bytes]] = []
        remaining = None
        for name, value in cast("list[tuple[object, object]]", headers):
            raw_name = _HEADER_NAMES.get(name)  # type: ignore[call-overload]
            if raw_name is None:
                raw_name = _header_name(name)
            if not isinstance(value, str):
                raise TypeError(f"WSGI response headers must be str pairs, not {(name, value)!r}")
            if _BAD_HEADER_VALUE.search(value):
                raise ValueError(f"response header {name!r} has a CR, LF or NUL in its value")
            # Values are latin-1 (PEP 3333, "Unicode Issues").
            encoded.append((raw_name, value.encode("latin-1")))
            if raw_name == b"content-length":
                try:
                    remaining = int(value)
                except ValueError:
                    raise ValueError(f"invalid Content-Length {value!r}") from None
                if remaining < 0:
                    raise ValueError(f"invalid Content-Length {value!r}")
        self.status = code
        self.headers = encoded
        self.remaining = remaining
        return self.write

    def write(self, data: bytes) -> None:
        """The legacy ``write()`` callable: sends *data* before it returns (PEP 3333)."""
        if not self.status:
            raise RuntimeError("write() was called before start_response()")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"write() takes bytes, not {type(data).__name__}")
        if self.disconnected:
            raise ClientDisconnected("the client has disconnected")
        if data:
            self._deliver(bytes(data))

    # --- the pool's job (worker thread) --------------------------------------------------

    def run(self, doorbell: Doorbell) -> None:
        """The whole WSGI exchange, in the worker thread (called by the pool)."""
        self.doorbell = doorbell
        if self.cancelled:  # cancelled before a thread was free: the app never starts
            self.outcome = (_RAISE, _Cancelled())
            return
        try:
            self.outcome = self.context.run(self.exchange)
        except BaseException as exc:  # noqa: BLE001 (_Cancelled, SystemExit...: to the task)
            self.outcome = (_RAISE, exc)

    def done(self) -> None:
        """Wake the request's task (called by the pool once the thread is free again)."""
        outcome = self.outcome
        if outcome is not None and outcome[0] == _RAISE and type(outcome[1]) is _LoopGone:
            return  # call_loop() found the loop closed, and logged it
        self.wake_loop()

    def wake_loop(self) -> bool:
        """Have the request's task woken; False (logged) if its event loop is closed."""
        if self.waiter is not None:
            with self.mutex:
                waiter = self.waiter
                if waiter is not None:
                    # The event loop thread itself waits for this, blocked: no callback
                    # to schedule, no task to wake.
                    self.waiter = None
                    waiter.release()
                    return True
        token = self.token
        try:
            token.backend_class.run_sync_soon(self.wake.set, (), token.native_token)
        except Exception:
            # The event loop is closed: the task waiting for this request is gone with it.
            logger.exception("cannot wake the event loop: %s", _request_line(self.environ))
            return False
        return True

    def call_loop(self, fn: Callable[..., Any], *args: object) -> Any:
        """Have the request's task run ``await fn(*args)``; return what it returns or
        raise what it raises (worker thread). Raises :exc:`_Cancelled` if the request was
        cancelled."""
        if self.cancelled:
            raise _Cancelled
        self.op = (fn, args)
        if not self.wake_loop():
            # Nobody will answer: stop the app as if cancelled rather than wait forever,
            # which would hold this thread, and one of max_threads, for good.
            raise _LoopGone
        wait = self.doorbell.wait
        while (reply := self.reply) is None:
            wait()
        self.reply = None
        value, error = reply
        if error is not None:
            raise error
        return value

    # --- the exchange (worker thread) ----------------------------------------------------

    def exchange(self) -> _Outcome:
        """Call the app, consume its result, close it: everything in this one thread."""
        try:
            result = self.app(self.environ, self.start_response)
        except Exception as exc:  # noqa: BLE001 (the app boundary: every error becomes a 500)
            return self._failed(exc)
        try:
            outcome = self._consume(result)
        except BaseException as exc:
            close_error = self._close(result)
            if close_error is not None:
                logger.error(
                    "close() raised too: %s", _request_line(self.environ), exc_info=close_error
                )
            if not isinstance(exc, Exception):
                raise  # cancellation, KeyboardInterrupt, SystemExit
            return self._failed(exc)
        error = self._close(result)
        if error is not None:
            return self._failed(error)
        return outcome

    def _consume(self, result: Iterable[bytes]) -> _Outcome:
        if isinstance(result, (list, tuple)) and not self.headers_sent:
            # The common case: the whole body is already in memory. It goes back to the
            # loop in one piece, with no more thread hops.
            body_parts = result
            if not self.status:
                raise RuntimeError("the WSGI application returned without calling start_response()")
            if len(body_parts) == 1:
                body = body_parts[0]
                if type(body) is not bytes:
                    body = _as_bytes(body)
            elif sum(map(len, body_parts)) <= _SMALL_JOIN:
                body = b"".join(body_parts)
            else:
                return self._iterate(iter(body_parts))
            return self._complete(body)
        if (
            type(result) is FileWrapper
            and self.pathsend
            and not self.headers_sent
            and self.status
            and self.environ["REQUEST_METHOD"] != "HEAD"
        ):
            path = self._sendable_path(result)
            if path is not None:
                self._cross(self._send_pathsend, path)
                return _DONE_OUTCOME
        return self._iterate(iter(result))

    def _iterate(self, chunks: Iterator[bytes]) -> _Outcome:
        for chunk in chunks:
            if type(chunk) is not bytes:
                chunk = _as_bytes(chunk)
            if not chunk:
                continue  # PEP 3333: empty chunks must not trigger the headers
            if not self.headers_sent:
                if not self.status:
                    raise RuntimeError("the WSGI application yielded data before start_response()")
                remaining = self.remaining
                if remaining is not None and len(chunk) >= remaining:
                    # The first chunk completes the body (Flask, Django, Falcon set a
                    # Content-Length): done, in one hop; the iterator is closed unfinished.
                    return self._complete(chunk)
            self._deliver(chunk)
            if self.remaining == 0 or self.disconnected:
                break  # Content-Length reached, or the client has gone: stop iterating
        else:
            if not self.headers_sent:
                if not self.status:
                    raise RuntimeError(
                        "the WSGI application returned without calling start_response()"
                    )
                return self._complete(b"")
        if self.disconnected:
            logger.info("client disconnected: %s", _request_line(self.environ))
            return _DONE_OUTCOME
        if self._short():
            return _DONE_OUTCOME  # _short() logged it; the response stays unfinished
        return _FINISH_OUTCOME

    def _complete(self, body: bytes) -> _Outcome:
        remaining = self.remaining
        if remaining is not None:
            if len(body) > remaining:
                body = body[:remaining]  # PEP 3333: never more than Content-Length
            self.remaining = remaining - len(body)
            if self._short():
                return (_CUT, self.status, self.headers, body)
        return (_COMPLETE, self.status, self.headers, body)

    def _short(self) -> bool:
        """Whether the body ended before its Content-Length (and log it if so)."""
        remaining = self.remaining
        if not remaining or self.environ["REQUEST_METHOD"] == "HEAD":
            return False
        status = self.status
        if status < 200 or status == 204 or status == 304:
            return False
        logger.error(
            "the WSGI application's body is %d bytes shorter than its Content-Length; "
            "cutting the response: %s",
            remaining,
            _request_line(self.environ),
        )
        return True

    def _deliver(self, chunk: bytes) -> None:
        """Send one body chunk from the worker thread (headers first if still unsent)."""
        remaining = self.remaining
        if remaining is not None:
            if remaining == 0:
                return
            if len(chunk) > remaining:
                chunk = chunk[:remaining]
            self.remaining = remaining - len(chunk)
        if self.headers_sent:
            self._cross(self._send_body, chunk)
        else:
            self._cross(self._send_start, chunk)
        # If the server cancelled the request (it is shutting down), stop here: the
        # exchange closes the iterable on its way out. (The task waits for this thread
        # either way; without the check it would wait for the whole body.)
        if self.cancelled:
            raise _Cancelled

    def _cross(self, fn: Any, *args: object) -> None:
        try:
            self.call_loop(fn, *args)
        except OSError as exc:
            # The server could not send: the connection is gone.
            self.disconnected = True
            raise ClientDisconnected("the client has disconnected") from exc

    def _close(self, result: object) -> Exception | None:
        """PEP 3333: call the result's close(), on every path; return what it raised."""
        close = getattr(result, "close", None)
        if close is None:
            return None
        try:
            close()
        except Exception as exc:  # noqa: BLE001 (the caller logs it and answers like the app failed)
            return exc
        return None

    def _failed(self, exc: Exception) -> _Outcome:
        request = _request_line(self.environ)
        if self.disconnected:
            logger.info("client disconnected: %s (%s: %s)", request, type(exc).__name__, exc)
            return _DONE_OUTCOME
        if not self.headers_sent:
            logger.error("Exception in WSGI application: %s", request, exc_info=exc)
            return (_COMPLETE, 500, list(_ERROR_HEADERS), _ERROR_BODY)
        # Too late for a 500: the status line is out. Leave the response unfinished, which
        # makes uvicorn, hypercorn and granian close the connection without the final
        # chunk, so the client cannot take a truncated body for a whole one.
        logger.error(
            "Exception in WSGI application after the response started; cutting it: %s",
            request,
            exc_info=exc,
        )
        return _DONE_OUTCOME

    def _sendable_path(self, wrapper: FileWrapper) -> str | None:
        """The path of a wrapped regular file that pathsend can send whole, else None."""
        filelike = wrapper.filelike
        name = getattr(filelike, "name", None)
        if not isinstance(name, str) or isinstance(filelike, io.TextIOBase):
            return None
        try:
            opened = os.fstat(filelike.fileno())
            if not stat.S_ISREG(opened.st_mode) or filelike.tell() != 0:
                return None
            path = os.path.abspath(name)
            named = os.stat(path)
        except (AttributeError, OSError, ValueError):
            return None
        if (named.st_dev, named.st_ino) != (opened.st_dev, opened.st_ino):
            return None  # the name now points at another file
        if self.remaining is not None and self.remaining != opened.st_size:
            return None  # a partial response: send the bytes it says
        return path

    # --- event-loop side: the request's task --------------------------------------------

    async def serve(self, pool: ThreadPool, waits: _BlockingWaits) -> _Outcome:
        """Run the exchange in a pool thread and do what it asks of the loop until it ends.

        The worker runs in a fresh copy of this task's context, as if it were a task of its
        own (anyio's ``to_thread`` does the same), so context variables set by ASGI
        middleware reach the application.

        First the event loop thread waits for the worker blocked, for at most
        ``waits.next_timeout()`` (see ``blocking_wait`` in :class:`WSGI2ASGI`); then, if
        the worker has not answered, this task waits for it as any task waits.
        """
        self.pool = pool
        context = contextvars.copy_context()
        if _async_library is not None and _async_library.get() is not None:
            # Code in the thread must not believe it runs in the event loop (sniffio).
            context.run(_async_library.set, None)
        self.context = context
        timeout = waits.next_timeout()
        if timeout <= 0:
            self.token = anyio.lowlevel.current_token()
            self.wake = anyio.Event()
            pool.submit(self)
            outcome = await self._serve(watching=False)
        else:
            waiter = self.waiter = threading.Lock()
            waiter.acquire()
            self.mutex = threading.Lock()
            pool.submit(self)
            # Blocks the event loop, for at most `timeout`: see WSGI2ASGI's blocking_wait.
            woken = waiter.acquire(timeout=timeout)
            if not woken:
                woken = self._stop_blocking()
            if woken:
                waits.answered()
                answer = self.outcome
                if answer is None:
                    # The worker asks for the loop (a chunk to send, the body to read):
                    # the rest of the exchange is done the usual way (_serve makes the
                    # event the worker wakes next).
                    self.token = anyio.lowlevel.current_token()
                    answer = await self._serve(watching=False, woken=True)
                outcome = answer
            else:
                waits.timed_out()
                outcome = await self._serve(watching=False)
        if outcome[0] == _RAISE:
            raise outcome[1]
        return outcome

    def _stop_blocking(self) -> bool:
        """The blocking wait timed out: from now on the worker wakes this task through
        the event loop. True if the worker answered in the meantime after all."""
        with self.mutex:
            if self.waiter is None:
                return True  # released just now, after the timeout
            self.token = anyio.lowlevel.current_token()
            self.wake = anyio.Event()
            self.waiter = None
            return False

    async def _serve(self, *, watching: bool, woken: bool = False) -> _Outcome:
        while True:
            if woken:
                woken = False  # the worker has posted an op already
            else:
                try:
                    await self.wake.wait()
                except BaseException:
                    await self._stop(running_op=False)
                    raise
            outcome = self.outcome
            if outcome is not None:
                return outcome
            assert self.op is not None
            fn, args = self.op
            self.op = None
            self.wake = anyio.Event()  # before the worker can post again
            try:
                value = await fn(*args)
            except Exception as exc:  # noqa: BLE001 (raised in the worker, which handles it)
                self.reply = (None, exc)
            except BaseException:
                await self._stop(running_op=True)
                raise
            else:
                self.reply = (value, None)
            self.doorbell.ring()
            if not watching and self.input_done and self.headers_sent and not self.disconnected:
                # The response streams and the request body is all read: from now on,
                # receive() only has http.disconnect to tell, and it must be heard while
                # the worker streams. Only streamed responses pay for the task group.
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._watch)
                    watched = await self._serve(watching=True)
                    tg.cancel_scope.cancel()
                return watched

    async def _stop(self, *, running_op: bool) -> None:
        """The task is cancelled: stop the worker, and wait for it (shielded) to be done
        with the request, close() included. Thread work is never abandoned."""
        self.cancelled = True
        if not running_op and self.pool.withdraw(self):
            return  # no thread had started it
        with anyio.CancelScope(shield=True):
            if running_op:  # the worker waits for the op's reply
                self.reply = (None, _Cancelled())
                self.doorbell.ring()
            while True:
                await self.wake.wait()
                if self.outcome is not None:
                    break
                # It asked for more before it saw the flag.
                self.op = None
                self.wake = anyio.Event()
                self.reply = (None, _Cancelled())
                self.doorbell.ring()
        outcome = self.outcome
        assert outcome is not None
        if outcome[0] == _RAISE and not isinstance(outcome[1], _Cancelled):
            logger.error(
                "the WSGI application raised while its request was cancelled: %s",
                _request_line(self.environ),
                exc_info=outcome[1],
            )

    async def _watch(self) -> None:
        """Wait for ``http.disconnect`` while the response streams, and raise the flag the
        worker checks before each ``next()``."""
        try:
            while True:
                message = await self.receive()
                if message["type"] == "http.disconnect":
                    self.disconnected = True
                    return
        except Exception:
            logger.exception("receive() failed while watching for a client disconnect")

    async def receive_body(self) -> tuple[bytes, bool]:
        """The next piece of the body and whether more follows (on the loop, for wsgi.input)."""
        body, more_body = await self._receive_body()
        if not more_body:
            self.input_done = True
        if more_body and self.body_left is not None:
            self.body_left -= len(body)
            if self.body_left <= 0:
                # The announced length is in: fetch the end-of-body message in this same
                # trip, so an app that stops reading at CONTENT_LENGTH (Django) still sees
                # the body complete, and the disconnect watcher can start.
                tail, more_body = await self._receive_body()
                body += tail
                if not more_body:
                    self.input_done = True
        return body, more_body

    async def _receive_body(self) -> tuple[bytes, bool]:
        while True:
            message = await self.receive()
            kind = message["type"]
            if kind == "http.request":
                body: bytes = message.get("body", b"")
                more_body: bool = message.get("more_body", False)
                if body or not more_body:
                    return body, more_body
            elif kind == "http.disconnect":
                self.disconnected = True
                raise ClientDisconnected("the client disconnected before the end of the body")

    async def _send_start(self, body: bytes) -> None:
        self.headers_sent = True
        await self.send(
            {"type": "http.response.start", "status": self.status, "headers": self.headers}
        )
        await self.send({"type": "http.response.body", "body": body, "more_body": True})

    async def _send_body(self, body: bytes) -> None:
        await self.send({"type": "http.response.body", "body": body, "more_body": True})

    async def _send_pathsend(self, path: str) -> None:
        self.headers_sent = True
        await self.send(
            {"type": "http.response.start", "status": self.status, "headers": self.headers}
        )
        await self.send({"type": "http.response.pathsend", "path": path})


@final
class _BlockingWaits:
    """When the event loop thread waits for a worker blocked, and for how long.

    Every request, while the application answers within *timeout*. When it does not,
    the next requests do not block at all, for longer each time it happens again (1, 2,
    4... up to _MAX_BACKOFF requests); one answer in time starts it all over. So an
    application that waits on the network costs the loop *timeout* at most once in that
    many requests. Shared by the event loops an instance serves; a race between them
    only shifts the count.
    """

    __slots__ = ("_backoff", "_skip", "timeout")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._backoff = 0
        self._skip = 0

    def next_timeout(self) -> float:
        """How long to block for the next request; 0: do not block."""
        if self._skip:
            self._skip -= 1
            return 0.0
        return self.timeout

    def answered(self) -> None:
        self._backoff = 0

    def timed_out(self) -> None:
        self._backoff = self._skip = min(self._backoff * 2 or 1, _MAX_BACKOFF)


_MAX_BACKOFF: Final = 1024


# Header names already checked, as the lowercased bytes ASGI wants ("Header names must be
# lowercased"): apps send the same few names on every response. Bounded, so names that
# vary cannot grow it without limit.
_HEADER_NAMES: dict[str, bytes] = {}
_HEADER_NAMES_MAX: Final = 512


def _header_name(name: object) -> bytes:
    if not isinstance(name, str):
        raise TypeError(f"WSGI response header names must be str, not {name!r}")
    if not name or _BAD_HEADER_NAME.search(name):
        raise ValueError(f"invalid response header name {name!r}")
    raw = name.lower().encode("ascii")
    if len(_HEADER_NAMES) < _HEADER_NAMES_MAX:
        _HEADER_NAMES[name] = raw
    return raw


_POOL_NAME: Final = "anysgi.WSGI2ASGI worker"
# Taken only when a forked child makes its first pool.
_NEW_POOL_LOCK: Final = threading.Lock()

#: ``wsgi.input`` of every request without a body: it has no state that reads can change.
_NO_BODY: Final = _Input(b"", None)


def _as_bytes(chunk: object) -> bytes:
    if isinstance(chunk, (bytearray, memoryview)):
        return bytes(chunk)
    raise TypeError(f"a WSGI application must produce bytes, not {type(chunk).__name__}")


def _request_line(environ: Environ) -> str:
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    query = environ.get("QUERY_STRING")
    return f"{environ['REQUEST_METHOD']} {path}{'?' + query if query else ''}"


@final
class WSGI2ASGI:
    """An ASGI application that serves the WSGI application *app* (PEP 3333).

    It runs on any ASGI server and any event loop anyio supports (asyncio, uvloop, trio)::

        from anysgi import WSGI2ASGI

        app = WSGI2ASGI(flask_app)  # uvicorn mod:app, hypercorn -k trio mod:app, granian

    The application runs in the instance's own worker threads, at most *max_threads* at a
    time. Each request stays in one thread from the app call to ``close()``, and a
    streamed response keeps its thread until the last chunk is sent.

    The threads are not anyio's (:func:`anyio.to_thread.run_sync`), so the application
    cannot use :mod:`anyio.from_thread` without an explicit ``token``: it raises "Not
    running inside an AnyIO worker thread". The reason is speed: anyio's hop into a
    thread and back costs about 55 us, and the WSGI hello app driven in process took
    36.8 us per request on these threads against 67.9 us on anyio's (uvicorn's own WSGI
    middleware: 83 us). With the loop's blocking wait (*blocking_wait*) it takes about
    18 us.
    ``lifespan`` is answered (there is nothing to start), ``websocket`` connections are
    refused, and any other scope type raises :exc:`ValueError`.

    :param app: the WSGI application.
    :type app: ~anysgi._types.WSGIApp
    :param max_threads: how many requests the application may handle at once, counting
        streamed responses still sending. Requests beyond that wait for a free thread. The
        default, 40, is anyio's own default thread limit. The threads are the instance's
        own, shared by every event loop it serves, so other users of ``to_thread`` and
        other instances neither take from it nor wait on it. They start on demand; one
        idle for more than 10 seconds ends when another thread goes idle.
    :param prefetch_size: a request body with a Content-Length of at most this many bytes
        is read on the event loop before the application starts, so that reading
        ``wsgi.input`` costs no thread hops. Larger bodies, and bodies of unknown length
        beyond their first message, stream to the application as it reads them, one ASGI
        message at a time: memory stays flat whatever the upload size. 64 KiB covers
        forms and JSON APIs and matches the chunk size ASGI servers deliver.
    :param file_block_size: the smallest block ``wsgi.file_wrapper`` reads when a file is
        streamed rather than sent by path. Each block is one hop to the event loop, so
        blocks smaller than this (Django asks for 4 KiB) are raised to it. Memory per
        streaming response is about one block. 256 KiB.
    :param pathsend: send a response made with ``wsgi.file_wrapper`` over a regular file
        by path, when the server offers the ``http.response.pathsend`` extension (granian
        does), so the server can use ``sendfile``. The file must be read from its start and
        its size must match any Content-Length; the iterable is closed after the server
        has taken the path.
    :param blocking_wait: how long, in seconds, the event loop's own thread waits for a
        request's worker thread, blocked, before the request's task waits like any task
        and the loop serves others. Parking the task and waking it again through the
        loop costs more than a small application takes to answer, and while the
        application runs Python code it holds the GIL, so the loop could not have run
        anyway. An application that answers later (it waits on a database, say) costs
        the loop this long; then the next request does not block at all, and if it
        happens again, the next 2, 4... up to 1024 requests do not, until one answers in
        time. 0 never blocks. 0.5 ms.
    """

    __slots__ = (
        "_pool",
        "_waits",
        "app",
        "blocking_wait",
        "file_block_size",
        "max_threads",
        "pathsend",
        "prefetch_size",
    )

    def __init__(
        self,
        app: WSGIApp,
        *,
        max_threads: int = 40,
        prefetch_size: int = 64 * 1024,
        file_block_size: int = 256 * 1024,
        pathsend: bool = True,
        blocking_wait: float = 0.0005,
    ) -> None:
        if max_threads < 1:
            raise ValueError(f"max_threads must be at least 1, not {max_threads}")
        if prefetch_size < 0:
            raise ValueError(f"prefetch_size must not be negative, not {prefetch_size}")
        if file_block_size < 1:
            raise ValueError(f"file_block_size must be at least 1, not {file_block_size}")
        if not blocking_wait >= 0:  # NaN too
            raise ValueError(f"blocking_wait must not be negative, not {blocking_wait}")
        self.app = app
        self.max_threads = max_threads
        self.prefetch_size = prefetch_size
        self.file_block_size = file_block_size
        self.pathsend = pathsend
        self.blocking_wait = blocking_wait
        self._waits = _BlockingWaits(blocking_wait)
        # The instance's own threads, started on demand; shared by every event loop the
        # instance serves (in turn or at once), on either backend.
        self._pool = ThreadPool(max_threads, name=_POOL_NAME)

    def __repr__(self) -> str:
        return f"WSGI2ASGI({self.app!r}, max_threads={self.max_threads})"

    def file_wrapper(self, filelike: Any, blksize: int = 8192) -> FileWrapper:
        """``environ["wsgi.file_wrapper"]``: wrap *filelike* for the response.

        :param filelike: a file-like object opened for reading in binary mode.
        :param blksize: the block size the application suggests; it is raised to
            ``file_block_size`` if smaller.
        :rtype: ~anysgi.wsgi2asgi.FileWrapper
        """
        return FileWrapper(filelike, max(blksize, self.file_block_size))

    async def __call__(self, scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            await self._not_http(scope, receive, send)
            return
        environ = environ_from_scope(scope)
        body = b""
        input_done = True
        length_text = environ.get("CONTENT_LENGTH")
        if length_text is not None:
            length = int(length_text) if length_text.isdigit() else -1
            if length > self.prefetch_size or length < 0:
                input_done = False
            elif length:
                prefetched = await self._prefetch(receive)
                if prefetched is None:
                    return  # the client left before the app started: nothing to close
                body, input_done = prefetched
        elif "HTTP_TRANSFER_ENCODING" in environ or scope.get("http_version") not in _LENGTHY:
            # A body of unknown length (chunked, or HTTP/2 without a content-length): take
            # its first message now; a GET usually ends right there.
            prefetched = await self._prefetch(receive, 1)
            if prefetched is None:
                return
            body, input_done = prefetched
        # (HTTP/1.x without Content-Length or Transfer-Encoding has no body: RFC 9112 6.3.)

        extensions = scope.get("extensions") or _NO_EXTENSIONS
        exchange = _Exchange(
            self.app,
            environ,
            receive,
            send,
            input_done=input_done,
            pathsend=self.pathsend and "http.response.pathsend" in extensions,
        )
        if not input_done and length_text is not None and length_text.isdigit():
            exchange.body_left = int(length_text) - len(body)
        if input_done:
            environ["wsgi.input"] = _Input(body, None) if body else _NO_BODY
        else:
            environ["wsgi.input"] = _Input(body, exchange)
        environ["wsgi.errors"] = _ErrorStream()
        environ["wsgi.input_terminated"] = True
        environ["wsgi.file_wrapper"] = self.file_wrapper

        pool = self._pool
        if pool.pid != os.getpid():
            pool = self._pool_of_this_process()
        try:
            outcome = await exchange.serve(pool, self._waits)
            kind = outcome[0]
            if kind in (_COMPLETE, _CUT):
                await send(
                    {"type": "http.response.start", "status": outcome[1], "headers": outcome[2]}
                )
                await send(
                    {"type": "http.response.body", "body": outcome[3], "more_body": kind == _CUT}
                )
            elif kind == _FINISH:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            logger.info("client disconnected: %s", _request_line(environ), exc_info=True)

    def _pool_of_this_process(self) -> ThreadPool:
        """A new pool in a forked child, whose parent's threads do not exist in it."""
        # Locked: event loops in several threads of the child may get here at once, and
        # two new pools would allow twice max_threads.
        with _NEW_POOL_LOCK:
            pool = self._pool
            if pool.pid != os.getpid():
                pool = self._pool = ThreadPool(self.max_threads, name=_POOL_NAME)
        return pool

    async def _prefetch(
        self, receive: ASGIReceive, max_messages: int = sys.maxsize
    ) -> tuple[bytes, bool] | None:
        """Read the start of the body: (body so far, whether that is all), None on disconnect."""
        parts: list[bytes] = []
        size = 0
        for _ in range(max_messages):
            message = await receive()
            kind = message["type"]
            if kind == "http.request":
                chunk: bytes = message.get("body", b"")
                parts.append(chunk)
                size += len(chunk)
                if not message.get("more_body", False):
                    return b"".join(parts), True
                if size > self.prefetch_size:
                    break  # more than announced: stream the rest
            elif kind == "http.disconnect":
                return None
        return b"".join(parts), False

    async def _not_http(self, scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            # Nothing to start or stop, but servers warn (or fail, with lifespan "on") when
            # an app does not answer.
            while True:
                message: Message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        elif kind == "websocket":
            logger.warning(
                "refusing a WebSocket connection to %s: WSGI applications cannot serve WebSockets",
                scope.get("path", "/"),
            )
            message = await receive()
            if message["type"] == "websocket.connect":
                await send({"type": "websocket.close", "code": 1000})
        else:
            raise ValueError(f"WSGI2ASGI cannot serve an ASGI {kind!r} scope")
