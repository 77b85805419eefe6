"""The async FastCGI client: a pool of connections to one server, on anyio (asyncio or trio).

This is the hand-written driver; ``_client_sync.py`` is generated from it by
``scripts/unasync.py`` (a test checks that it is up to date). All protocol knowledge is in
``_client_common.py`` and the codec; this module moves bytes and manages connections.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from contextlib import asynccontextmanager
from types import TracebackType

from . import protocol as p
from ._client_common import (
    DEFAULT_KEEPALIVE_EXPIRY,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_RESPONSE_HEAD,
    DEFAULT_MAX_STDERR,
    DEFAULT_TIMEOUTS,
    DEFAULT_VALUE_NAMES,
    MUX_BUFFER_LIMIT,
    USE_CLIENT_DEFAULT,
    ClientError,
    ConnectionState,
    Exchange,
    NetworkError,
    Params,
    PoolTimeoutError,
    ReadTimeoutError,
    RequestRejectedError,
    ResponseError,
    Timeouts,
    UseDefault,
    WriteTimeoutError,
    encode_params,
    logger,
    parse_address,
)
from ._client_io import (
    AsyncBody,
    AsyncCondition,
    AsyncLock,
    AsyncNetworkStream,
    AsyncShieldCancellation,
    aiter_body,
)

__all__ = ("AsyncFastCGIClient", "AsyncFastCGIResponse")

#: Longest wait for the answer to the GET_VALUES that ``multiplex=True`` sends first: a
#: server that ignores management records must not stall the first request for long.
NEGOTIATION_TIMEOUT = 5.0


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(deadline - time.monotonic(), 0.0)


class _AsyncConnection:
    """One connection of the pool: a stream, its sans-IO state, and who may use it.

    A connection carries one request at a time unless the server multiplexes (capacity > 1);
    then requests share it, and whichever of them needs data reads for all of them.
    """

    __slots__ = (
        "active",
        "condition",
        "idle_since",
        "reading",
        "reused",
        "state",
        "stream",
        "write_lock",
    )

    def __init__(self, stream: AsyncNetworkStream, capacity: int) -> None:
        self.stream = stream
        self.state = ConnectionState(capacity)
        #: Guards ``state`` and ``reading`` when the connection is shared.
        self.condition = AsyncCondition()
        #: Keeps the records of requests that share the connection from interleaving.
        self.write_lock = AsyncLock()
        #: Whether a request is reading for everyone (multiplexed connections only).
        self.reading = False
        #: Requests using the connection now (kept by the pool).
        self.active = 0
        self.idle_since = 0.0
        #: Whether it is carrying a request after having been idle in the pool.
        self.reused = False

    @property
    def multiplexed(self) -> bool:
        return self.state.capacity > 1

    async def begin(
        self,
        params: dict[bytes, bytes],
        body: bytes | None,
        *,
        role: int,
        keep_conn: bool,
        max_head: int,
        max_stderr: int,
    ) -> tuple[Exchange, bytes]:
        async with self.condition:
            return self.state.begin(
                params,
                role=role,
                keep_conn=keep_conn,
                max_head=max_head,
                max_stderr=max_stderr,
                body=body,
            )

    async def write(self, data: bytes, timeout: float | None) -> None:
        if not data:
            return
        try:
            if self.multiplexed:
                async with self.write_lock:
                    await self.stream.write(data, timeout)
            else:
                await self.stream.write(data, timeout)
        except ClientError as exc:
            # Part of a record may have gone out: nothing more can be said on this connection.
            with AsyncShieldCancellation():
                async with self.condition:
                    self.state.fail(exc)
                    self.condition.notify_all()
            raise

    async def send_body(self, exchange: Exchange, body: AsyncBody, timeout: float | None) -> None:
        """Stream *body* as STDIN records, one write per chunk, then end it."""
        chunks = aiter_body(body)
        try:
            async for chunk in chunks:
                async with self.condition:
                    data = self.state.body(exchange, chunk)
                if not data:
                    break  # the server has already ended the request
                await self.write(data, timeout)
        finally:
            await chunks.aclose()
        async with self.condition:
            data = self.state.end_of_body(exchange)
        await self.write(data, timeout)

    async def read_head(self, exchange: Exchange, timeout: float | None) -> None:
        while not exchange.has_head:
            await self.pump(exchange, True, timeout)

    async def read_chunk(self, exchange: Exchange, timeout: float | None) -> bytes:
        """The next body chunk, or ``b""`` once the request has ended."""
        while True:
            if self.multiplexed:
                async with self.condition:
                    backlogged = exchange.buffered >= MUX_BUFFER_LIMIT
                    try:
                        chunk = exchange.next_chunk()
                    finally:
                        if backlogged:
                            self.condition.notify_all()
            else:
                chunk = exchange.next_chunk()
            if chunk is not None:
                return chunk
            await self.pump(exchange, False, timeout)

    async def pump(self, exchange: Exchange, head: bool, timeout: float | None) -> None:
        """Read once and hand out what came, or wait while another request reads."""
        if not self.multiplexed:
            self.state.receive(await self.stream.read(timeout))
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        async with self.condition:
            while not exchange.ready(head):
                if not self.reading and not self.state.backlogged(exchange):
                    self.reading = True
                    break
                if not await self.condition.wait(_remaining(deadline)):
                    raise ReadTimeoutError(f"{self.stream.address} sent nothing for {timeout} s")
            else:
                return
        try:
            data = await self.stream.read(_remaining(deadline))
        except BaseException as exc:
            with AsyncShieldCancellation():
                async with self.condition:
                    self.reading = False
                    if isinstance(exc, NetworkError):
                        self.state.fail(exc)
                    self.condition.notify_all()
            raise
        with AsyncShieldCancellation():
            async with self.condition:
                self.reading = False
                self.state.receive(data)
                self.condition.notify_all()

    async def finish(self, exchange: Exchange | None, timeout: float | None) -> bool:
        """The caller is done with *exchange*: whether the connection may carry another.

        Awaits only on a multiplexed connection (to send ABORT_REQUEST).
        """
        if exchange is None:
            return False
        exchange.log_stderr(self.stream.address)
        if not self.multiplexed:
            return exchange.ended and exchange.keep_conn and self.state.reusable
        async with self.condition:
            data = b"" if exchange.finished else self.state.abandon(exchange)
            self.condition.notify_all()
        try:
            await self.write(data, timeout)
        except ClientError:
            return False
        return self.state.broken is None and not self.state.closed


class AsyncFastCGIClient:
    """A FastCGI client for one server, with a pool of connections, on anyio (asyncio or trio).

    ::

        async with AsyncFastCGIClient("unix:/run/php/php-fpm.sock") as client:
            params = cgi_params("GET", "/ping") | {b"SCRIPT_FILENAME": b"/ping"}
            response = await client.request(params)
            print(response.status, response.content)

    Connections are kept open between requests (FCGI_KEEP_CONN) and reused only when the last
    request on them ended cleanly. Every method may be called from any number of tasks.

    :param address: ``"host:port"``, ``"[::1]:port"`` or ``"unix:/path/to/socket"``.
    :param max_connections: most connections open at once; a request waits for a free one up
        to ``Timeouts.pool``. Keep it at or below the server's workers (php-fpm's
        ``pm.max_children``): each php-fpm worker serves one connection while it is open.
    :param keepalive_expiry: seconds an idle connection stays in the pool; ``0`` closes each
        connection after its request.
    :param keep_conn: send FCGI_KEEP_CONN, so the server keeps the connection open for the
        next request. Without it the server closes it after each response.
    :param multiplex: ask the server first (GET_VALUES, waiting at most 5 s) and, if it
        advertises FCGI_MPXS_CONNS, send up to its FCGI_MAX_REQS requests at once on each
        connection. php-fpm does not multiplex.
    :param timeout: the :class:`Timeouts` of every request, or one number for all steps.
    :param max_response_head: most bytes of CGI header block accepted before the body.
    :param max_stderr: most bytes of STDERR kept per request (the rest is dropped).
    """

    def __init__(
        self,
        address: str,
        *,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        keepalive_expiry: float = DEFAULT_KEEPALIVE_EXPIRY,
        keep_conn: bool = True,
        multiplex: bool = False,
        timeout: Timeouts | float | None = DEFAULT_TIMEOUTS,
        max_response_head: int = DEFAULT_MAX_RESPONSE_HEAD,
        max_stderr: int = DEFAULT_MAX_STDERR,
    ) -> None:
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, not {max_connections!r}")
        self._address = parse_address(address)
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._keep_conn = keep_conn
        self._timeouts = Timeouts.coerce(timeout)
        self._max_head = max_response_head
        self._max_stderr = max_stderr
        #: Requests per connection: 1, or what the server advertised (None: not asked yet).
        self._capacity: int | None = None if multiplex else 1
        self._connections: list[_AsyncConnection] = []
        self._connecting = 0
        self._pool = AsyncCondition()
        self._negotiation = AsyncLock()
        self._closed = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._address} connections={len(self._connections)}>"

    @property
    def address(self) -> str:
        """The server's address, as given."""
        return str(self._address)

    # -- requests --------------------------------------------------------------------------------

    async def send(
        self,
        params: Params,
        body: AsyncBody = b"",
        *,
        role: int = p.Role.RESPONDER,
        timeout: Timeouts | float | UseDefault | None = USE_CLIENT_DEFAULT,
    ) -> AsyncFastCGIResponse:
        """Send a request and return as soon as the response's status and headers are in.

        The body then streams with :meth:`AsyncFastCGIResponse.aiter_bytes`; close the
        response (or use :meth:`stream`) to give the connection back.

        :param params: the request's CGI params (see :func:`cgi_params`); str or bytes.
        :param body: the request body (STDIN): bytes, or an iterable or async iterable of
            bytes, sent as it is produced. php-fpm reads only CONTENT_LENGTH bytes of it.
        :param role: :attr:`~anysgi.fastcgi.protocol.Role.RESPONDER`, or another role
            (a Filter gets an empty DATA stream).
        :param timeout: this request's :class:`Timeouts`, if not the client's.
        :raises ClientError: a subclass saying what went wrong.
        """
        timeouts = self._timeouts if timeout is USE_CLIENT_DEFAULT else Timeouts.coerce(timeout)
        encoded = encode_params(params)
        whole = bytes(body) if isinstance(body, (bytes, bytearray, memoryview)) else None
        retried = False
        while True:
            connection = await self._acquire(timeouts)
            exchange = None
            try:
                exchange, data = await connection.begin(
                    encoded,
                    whole,
                    role=role,
                    keep_conn=self._keep_conn,
                    max_head=self._max_head,
                    max_stderr=self._max_stderr,
                )
                await connection.write(data, timeouts.write)
                if whole is None:
                    await connection.send_body(exchange, body, timeouts.write)
                await connection.read_head(exchange, timeouts.read)
            except BaseException as exc:
                reused = connection.reused
                await self._release(connection, exchange, timeouts.write)
                if isinstance(exc, RequestRejectedError):
                    self._rejected(exc)
                elif (
                    not retried
                    and whole is not None
                    and reused
                    and (
                        isinstance(exc, NetworkError)
                        or (isinstance(exc, ResponseError) and connection.state.closed)
                    )
                    and (exchange is None or not exchange.started)
                ):
                    # The server closed the idle connection as we reused it (php-fpm does
                    # when a worker reaches pm.max_requests): nothing of the request was
                    # taken, so it is safe to send it again, once, on a new connection.
                    logger.debug("%s: retrying on a new connection after %r", self.address, exc)
                    retried = True
                    continue
                raise
            return AsyncFastCGIResponse._open(self, connection, exchange, timeouts)

    @asynccontextmanager
    async def stream(
        self,
        params: Params,
        body: AsyncBody = b"",
        *,
        role: int = p.Role.RESPONDER,
        timeout: Timeouts | float | UseDefault | None = USE_CLIENT_DEFAULT,
    ) -> AsyncIterator[AsyncFastCGIResponse]:
        """:meth:`send` as a context manager that closes the response at the end."""
        response = await self.send(params, body, role=role, timeout=timeout)
        try:
            yield response
        finally:
            await response.aclose()

    async def request(
        self,
        params: Params,
        body: AsyncBody = b"",
        *,
        role: int = p.Role.RESPONDER,
        timeout: Timeouts | float | UseDefault | None = USE_CLIENT_DEFAULT,
    ) -> AsyncFastCGIResponse:
        """:meth:`send`, then read the whole body into :attr:`AsyncFastCGIResponse.content`."""
        response = await self.send(params, body, role=role, timeout=timeout)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    async def get_values(
        self,
        names: Iterable[str | bytes] = DEFAULT_VALUE_NAMES,
        *,
        timeout: Timeouts | float | UseDefault | None = USE_CLIENT_DEFAULT,
    ) -> dict[str, str]:
        """Ask the server for its FastCGI variables (GET_VALUES, spec 4.1), on a connection
        of its own.

        ``{"FCGI_MAX_CONNS": "5", "FCGI_MAX_REQS": "5", "FCGI_MPXS_CONNS": "0"}`` from
        php-fpm with five workers. The server leaves out the variables it does not know.

        :param names: the variables to ask for: by default FCGI_MAX_CONNS, FCGI_MAX_REQS and
            FCGI_MPXS_CONNS.
        :raises ResponseError: if the server closes the connection instead of answering.
        """
        timeouts = self._timeouts if timeout is USE_CLIENT_DEFAULT else Timeouts.coerce(timeout)
        encoded = [n if isinstance(n, bytes) else n.encode("ascii") for n in names]
        stream = await AsyncNetworkStream.connect(self._address, timeouts.connect)
        try:
            state = ConnectionState()
            await stream.write(state.get_values(encoded), timeouts.write)
            while state.values is None:
                state.receive(await stream.read(timeouts.read))
                if state.closed:
                    raise ResponseError(
                        f"{self.address} closed the connection without answering GET_VALUES"
                    )
                if state.broken is not None:
                    raise state.broken
            return {k.decode("latin-1"): v.decode("latin-1") for k, v in state.values.items()}
        finally:
            with AsyncShieldCancellation():
                await stream.aclose()

    # -- the pool --------------------------------------------------------------------------------

    async def _acquire(self, timeouts: Timeouts) -> _AsyncConnection:
        """A connection with room for one more request: from the pool, or a new one."""
        if self._capacity is None:
            await self._negotiate(timeouts)
        deadline = None if timeouts.pool is None else time.monotonic() + timeouts.pool
        stale: list[_AsyncConnection] = []
        connection = None
        try:
            async with self._pool:
                while True:
                    if self._closed:
                        raise RuntimeError(f"{type(self).__name__} is closed")
                    connection = self._pick(stale)
                    if connection is not None:
                        connection.active += 1
                        break
                    if len(self._connections) + self._connecting < self._max_connections:
                        self._connecting += 1
                        break
                    if not await self._pool.wait(_remaining(deadline)):
                        raise PoolTimeoutError(
                            f"no connection to {self.address} became free in {timeouts.pool} s "
                            f"(max_connections={self._max_connections})"
                        )
        finally:
            for old in stale:
                with AsyncShieldCancellation():
                    await old.stream.aclose()
        if connection is not None:
            return connection
        try:
            stream = await AsyncNetworkStream.connect(self._address, timeouts.connect)
        except BaseException:
            with AsyncShieldCancellation():
                async with self._pool:
                    self._connecting -= 1
                    self._pool.notify_all()
            raise
        connection = _AsyncConnection(stream, self._capacity or 1)
        connection.active = 1
        with AsyncShieldCancellation():
            async with self._pool:
                self._connecting -= 1
                self._connections.append(connection)
                if connection.state.capacity > 1:
                    self._pool.notify_all()  # it has room for the requests that wait
        return connection

    def _pick(self, stale: list[_AsyncConnection]) -> _AsyncConnection | None:
        """The most recently used connection with room, dropping idle ones that expired or
        that the server closed. Called with the pool's lock held.
        """
        now = time.monotonic()
        for connection in reversed(self._connections[:]):
            if connection.active >= connection.state.capacity:
                continue
            if connection.active == 0:
                # An idle connection has nothing to say, unless an aborted request's
                # END_REQUEST is still on its way (multiplexed connections).
                if now - connection.idle_since > self._keepalive_expiry or (
                    not connection.state.conn.active_requests and connection.stream.stale()
                ):
                    self._connections.remove(connection)
                    stale.append(connection)
                    continue
                connection.reused = True
            return connection
        return None

    async def _release(
        self, connection: _AsyncConnection, exchange: Exchange | None, timeout: float | None
    ) -> None:
        """Give *connection* back after *exchange*: to the pool if healthy, else closed."""
        # Nothing here may be cut short by a cancellation, but only two steps can be:
        # finish() on a shared connection (it writes ABORT_REQUEST) and closing. The rest
        # never awaits, so the usual case costs no cancel scope.
        if connection.multiplexed:
            with AsyncShieldCancellation():
                usable = await connection.finish(exchange, timeout)
        else:
            usable = await connection.finish(exchange, timeout)
        async with self._pool:
            connection.active -= 1
            keep = (
                usable
                and not self._closed
                and self._keepalive_expiry > 0
                and connection.state.capacity == (self._capacity or 1)
            )
            if not keep and connection in self._connections:
                self._connections.remove(connection)
            close = not keep and connection.active == 0
            if connection.active == 0:
                connection.idle_since = time.monotonic()
                connection.reused = False
            self._pool.notify_all()
        if close:
            with AsyncShieldCancellation():
                await connection.stream.aclose()

    async def _negotiate(self, timeouts: Timeouts) -> None:
        """Find out once whether the server multiplexes (multiplex=True)."""
        async with self._negotiation:
            if self._capacity is not None:
                return
            limited = Timeouts(
                timeouts.connect,
                NEGOTIATION_TIMEOUT
                if timeouts.read is None
                else min(timeouts.read, NEGOTIATION_TIMEOUT),
                timeouts.write,
                timeouts.pool,
            )
            try:
                values = await self.get_values(
                    (p.FCGI_MPXS_CONNS, p.FCGI_MAX_REQS), timeout=limited
                )
            except (ResponseError, ReadTimeoutError, WriteTimeoutError) as exc:
                logger.warning("%s: no answer to GET_VALUES (%s): not multiplexing", self, exc)
                values = {}
            capacity = 1
            if values.get("FCGI_MPXS_CONNS") == "1":
                maximum = values.get("FCGI_MAX_REQS", "")
                capacity = int(maximum) if maximum.isdigit() else p.DEFAULT_MAX_CONCURRENT_REQUESTS
                capacity = max(1, min(capacity, p.DEFAULT_MAX_CONCURRENT_REQUESTS))
            logger.debug("%s: %d request(s) per connection", self, capacity)
            self._capacity = capacity

    def _rejected(self, exc: RequestRejectedError) -> None:
        if exc.protocol_status is p.ProtocolStatus.CANT_MPX_CONN and self._capacity != 1:
            # It advertised FCGI_MPXS_CONNS, then refused: believe the refusal from now on.
            logger.warning("%s refused a multiplexed request: not multiplexing any more", self)
            self._capacity = 1

    # -- closing ---------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close every idle connection now, and the others as their responses are closed.

        Requests sent afterwards raise :class:`RuntimeError`.
        """
        with AsyncShieldCancellation():
            async with self._pool:
                self._closed = True
                idle = [c for c in self._connections if c.active == 0]
                for connection in idle:
                    self._connections.remove(connection)
                self._pool.notify_all()
            for connection in idle:
                await connection.stream.aclose()

    async def __aenter__(self) -> AsyncFastCGIClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


class AsyncFastCGIResponse:
    """A response whose status and headers are in; the body streams as it arrives.

    It holds its connection until the body has been read to the end or it is closed.
    """

    __slots__ = ("_client", "_closed", "_connection", "_content", "_exchange", "_timeouts")

    _client: AsyncFastCGIClient
    _closed: bool
    _connection: _AsyncConnection
    _content: bytes | None
    _exchange: Exchange
    _timeouts: Timeouts

    def __init__(self) -> None:
        raise TypeError(f"{type(self).__name__}s come from send(), stream() and request()")

    @classmethod
    def _open(
        cls,
        client: AsyncFastCGIClient,
        connection: _AsyncConnection,
        exchange: Exchange,
        timeouts: Timeouts,
    ) -> AsyncFastCGIResponse:
        self = object.__new__(cls)
        self._client = client
        self._connection = connection
        self._exchange = exchange
        self._timeouts = timeouts
        self._closed = False
        self._content = None
        return self

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.status}>"

    @property
    def status(self) -> int:
        """The HTTP status: the CGI ``Status`` header, 302 for a bare ``Location``, else 200."""
        return self._exchange.status

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        """The CGI response headers, in order, without ``Status``; names as sent."""
        return self._exchange.headers

    @property
    def stderr(self) -> bytearray:
        """What the server wrote on STDERR for this request; it grows as records arrive and
        is complete once the body has been read.
        """
        return self._exchange.stderr

    @property
    def app_status(self) -> int | None:
        """The application's exit status from END_REQUEST; ``None`` until it arrived."""
        return self._exchange.app_status

    @property
    def content(self) -> bytes:
        """The whole body, once :meth:`aread` has read it."""
        if self._content is None:
            raise RuntimeError("the body has not been read: call aread() first")
        return self._content

    async def aiter_bytes(self) -> AsyncGenerator[bytes, None]:
        """The body's chunks as they arrive; the connection is released after the last."""
        if self._closed:
            raise RuntimeError("the response is closed")
        connection = self._connection
        exchange = self._exchange
        timeout = self._timeouts.read
        while True:
            chunk = await connection.read_chunk(exchange, timeout)
            if not chunk:
                break
            yield chunk
        await self.aclose()

    async def aread(self) -> bytes:
        """Read the whole body, keep it in :attr:`content` and return it."""
        if self._content is None:
            self._content = b"".join([chunk async for chunk in self.aiter_bytes()])
        return self._content

    async def aclose(self) -> None:
        """Give the connection back; if the body was not read to the end, the request is
        aborted (its connection closed, or ABORT_REQUEST on a multiplexed one).
        """
        if not self._closed:
            self._closed = True
            await self._client._release(self._connection, self._exchange, self._timeouts.write)

    async def __aenter__(self) -> AsyncFastCGIResponse:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
