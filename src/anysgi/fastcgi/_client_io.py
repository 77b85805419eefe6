"""The I/O seam of the FastCGI client: sockets and locks, in an async and a sync flavour.

``_client_async.py`` uses the ``Async*`` names, which run on anyio (so on asyncio or trio);
``_client_sync.py``, generated from it by ``scripts/unasync.py``, uses the same names without
the prefix, which run on blocking sockets and :mod:`threading`. Each pair has the same methods,
so the generator only has to drop ``async``, ``await`` and the prefix. OS errors and timeouts
become the client's own exceptions here, and nowhere else.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import AsyncGenerator, AsyncIterable, Generator, Iterable
from types import TracebackType
from typing import TypeAlias

import anyio
import anyio.abc

from ._client_common import (
    READ_SIZE,
    Address,
    ConnectError,
    ConnectTimeoutError,
    ReadError,
    ReadTimeoutError,
    WriteError,
    WriteTimeoutError,
)

__all__ = (
    "AsyncBody",
    "AsyncCondition",
    "AsyncLock",
    "AsyncNetworkStream",
    "AsyncShieldCancellation",
    "Body",
    "Condition",
    "Lock",
    "NetworkStream",
    "ShieldCancellation",
    "aiter_body",
    "iter_body",
)

#: A request body for the async client: bytes, or chunks from a (sync or async) iterable.
AsyncBody: TypeAlias = bytes | Iterable[bytes] | AsyncIterable[bytes]
#: A request body for the sync client: bytes, or chunks from an iterable.
Body: TypeAlias = bytes | Iterable[bytes]


def _stale(fileno: int) -> bool:
    """Whether an idle connection's socket has something to say: EOF, an error or stray data.

    An idle FastCGI connection is silent, so readable means unusable. poll() rather than a
    peek: asyncio hands out its sockets wrapped, without recv().
    """
    if fileno < 0:
        return True
    poller = select.poll()
    poller.register(fileno, select.POLLIN)
    return bool(poller.poll(0))


def _describe(address: Address, exc: BaseException) -> str:
    return f"{address}: {exc}" if str(exc) else f"{address}: {type(exc).__name__}"


# --- async: anyio -----------------------------------------------------------------------------


class AsyncNetworkStream:
    """A connected anyio socket stream with timeouts per operation."""

    __slots__ = ("_fileno", "address", "stream")

    def __init__(self, stream: anyio.abc.SocketStream, address: Address) -> None:
        self.stream = stream
        self.address = address
        # Looked up once: extra() builds the attribute table on every call.
        self._fileno = stream.extra(anyio.abc.SocketAttribute.raw_socket).fileno()

    @classmethod
    async def connect(cls, address: Address, timeout: float | None) -> AsyncNetworkStream:
        stream: anyio.abc.SocketStream
        try:
            with anyio.fail_after(timeout):
                if address.path is not None:
                    stream = await anyio.connect_unix(address.path)
                else:
                    stream = await anyio.connect_tcp(address.host, address.port)
        except TimeoutError:
            raise ConnectTimeoutError(f"cannot connect to {address} within {timeout} s") from None
        except OSError as exc:
            raise ConnectError(f"cannot connect to {_describe(address, exc)}") from exc
        return cls(stream, address)

    async def read(self, timeout: float | None) -> bytes:
        """Up to :data:`READ_SIZE` bytes; ``b""`` when the server closed its end."""
        try:
            with anyio.fail_after(timeout):
                return await self.stream.receive(READ_SIZE)
        except anyio.EndOfStream:
            return b""
        except TimeoutError:
            raise ReadTimeoutError(f"{self.address} sent nothing for {timeout} s") from None
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            cause = exc.__cause__ or exc
            raise ReadError(f"cannot read from {_describe(self.address, cause)}") from exc

    async def write(self, data: bytes, timeout: float | None) -> None:
        try:
            with anyio.fail_after(timeout):
                await self.stream.send(data)
        except TimeoutError:
            raise WriteTimeoutError(f"{self.address} took no data for {timeout} s") from None
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            cause = exc.__cause__ or exc
            raise WriteError(f"cannot write to {_describe(self.address, cause)}") from exc

    def stale(self) -> bool:
        """Whether the idle connection was closed or sent something (it must not be reused)."""
        return _stale(self._fileno)

    async def aclose(self) -> None:
        await self.stream.aclose()


class AsyncCondition:
    """A condition for tasks of one event loop; :meth:`wait` takes a timeout.

    Tasks only switch at an ``await``, and the drivers never await inside ``async with``
    except in :meth:`wait`: so entering needs no lock (and costs nothing on the hot path),
    and waiting is a list of events. The sync twin, :class:`Condition`, is a real lock for
    threads.
    """

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        self._waiters: list[anyio.Event] = []

    async def __aenter__(self) -> None:
        pass

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        pass

    async def wait(self, timeout: float | None) -> bool:
        """Wait until notified or *timeout*; ``False`` if the time ran out."""
        event = anyio.Event()
        self._waiters.append(event)
        try:
            with anyio.move_on_after(timeout):
                await event.wait()
        finally:
            if not event.is_set():
                self._waiters.remove(event)
        return event.is_set()

    def notify_all(self) -> None:
        waiters, self._waiters = self._waiters, []
        for event in waiters:
            event.set()


class AsyncLock:
    """An anyio lock that does not yield when it is free."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = anyio.Lock(fast_acquire=True)

    async def __aenter__(self) -> None:
        await self._lock.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._lock.release()


class AsyncShieldCancellation:
    """Clean-up that must finish even when the task is being cancelled."""

    __slots__ = ("_scope",)

    def __init__(self) -> None:
        self._scope = anyio.CancelScope(shield=True)

    def __enter__(self) -> None:
        self._scope.__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._scope.__exit__(exc_type, exc_value, traceback)


async def aiter_body(body: AsyncBody) -> AsyncGenerator[bytes, None]:
    """The non-empty chunks of a request body; closing it closes the body's iterator."""
    if isinstance(body, (bytes, bytearray, memoryview)):
        if body:
            yield bytes(body)
    elif isinstance(body, AsyncIterable):
        iterator = aiter(body)
        try:
            async for chunk in iterator:
                if chunk:
                    yield bytes(chunk)
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()
    else:
        yield_from = iter(body)
        try:
            for chunk in yield_from:
                if chunk:
                    yield bytes(chunk)
        finally:
            close = getattr(yield_from, "close", None)
            if close is not None:
                close()


# --- sync: blocking sockets and threading -------------------------------------------------------


class NetworkStream:
    """A connected blocking socket with timeouts per operation."""

    __slots__ = ("_timeout", "address", "sock")

    def __init__(self, sock: socket.socket, address: Address) -> None:
        self.sock = sock
        self.address = address
        self._timeout: float | None = sock.gettimeout()

    @classmethod
    def connect(cls, address: Address, timeout: float | None) -> NetworkStream:
        try:
            if address.path is not None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.settimeout(timeout)
                    sock.connect(address.path)
                except BaseException:
                    sock.close()
                    raise
            else:
                sock = socket.create_connection((address.host, address.port), timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except TimeoutError:
            raise ConnectTimeoutError(f"cannot connect to {address} within {timeout} s") from None
        except OSError as exc:
            raise ConnectError(f"cannot connect to {_describe(address, exc)}") from exc
        return cls(sock, address)

    def _set_timeout(self, timeout: float | None) -> None:
        if timeout != self._timeout:
            self.sock.settimeout(timeout)
            self._timeout = timeout

    def read(self, timeout: float | None) -> bytes:
        """Up to :data:`READ_SIZE` bytes; ``b""`` when the server closed its end."""
        try:
            self._set_timeout(timeout)
            return self.sock.recv(READ_SIZE)
        except TimeoutError:
            raise ReadTimeoutError(f"{self.address} sent nothing for {timeout} s") from None
        except OSError as exc:
            raise ReadError(f"cannot read from {_describe(self.address, exc)}") from exc

    def write(self, data: bytes, timeout: float | None) -> None:
        try:
            self._set_timeout(timeout)
            self.sock.sendall(data)
        except TimeoutError:
            raise WriteTimeoutError(f"{self.address} took no data for {timeout} s") from None
        except OSError as exc:
            raise WriteError(f"cannot write to {_describe(self.address, exc)}") from exc

    def stale(self) -> bool:
        """Whether the idle connection was closed or sent something (it must not be reused)."""
        return _stale(self.sock.fileno())

    def close(self) -> None:
        self.sock.close()


class Condition:
    """:class:`threading.Condition` with the :class:`AsyncCondition` interface."""

    __slots__ = ("_condition",)

    def __init__(self) -> None:
        self._condition = threading.Condition(threading.Lock())

    def __enter__(self) -> None:
        self._condition.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._condition.release()

    def wait(self, timeout: float | None) -> bool:
        """Release the lock until notified or *timeout*; ``False`` if the time ran out."""
        return self._condition.wait(timeout)

    def notify_all(self) -> None:
        self._condition.notify_all()


#: The sync twin of :class:`AsyncLock`.
Lock = threading.Lock

#: Threads are not cancelled: nothing to shield from.
ShieldCancellation = contextlib.nullcontext


def iter_body(body: Body) -> Generator[bytes, None, None]:
    """The non-empty chunks of a request body; closing it closes the body's iterator."""
    if isinstance(body, (bytes, bytearray, memoryview)):
        if body:
            yield bytes(body)
    else:
        iterator = iter(body)
        try:
            for chunk in iterator:
                if chunk:
                    yield bytes(chunk)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
