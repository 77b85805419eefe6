"""Non-blocking sockets driven through :func:`anyio.wait_readable` / :func:`anyio.wait_writable`.

Why not :class:`anyio.abc.SocketStream`: on asyncio, anyio's stream yields to the event loop
once more per ``send()`` even when the kernel took every byte, and ``receive()`` pauses and
resumes the transport around each wait. For a server whose whole job is small request /
response exchanges that doubled the CPU time per request (measured behind nginx: 185 us
against 95 us for an asyncio-protocol server). Here a write that the socket buffer can take
is one ``send()`` system call and no suspension; only a full buffer makes the writer wait,
which is exactly the backpressure we want. It is still anyio only (DESIGN.md rule 2): the
same code runs on asyncio (and uvloop) and on trio.

Contract the connection handler relies on (the in-memory test streams keep it too):

* ``send(data)`` writes all of *data* before any other ``send()`` call's bytes, so one call
  is one uninterrupted batch of records even with many request tasks writing at once;
* ``receive(max_bytes)`` returns ``b""`` at end of stream, and is called by one task at a
  time; ``receive_after_checkpoint(max_bytes)`` is the same after a checkpoint;
* ``send_eof()`` waits for writes in progress, then shuts down the sending side;
* ``aclose()`` is called once nothing waits on the socket any more; ``abort()`` makes the
  peer see the connection end at once, and wakes our own waiters, without freeing the fd.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Protocol

import anyio
import anyio.lowlevel

__all__ = ("SocketIO", "Stream")


class Stream(Protocol):
    """What the connection handler needs of a connection (see the module documentation)."""

    async def receive(self, max_bytes: int) -> bytes: ...

    async def receive_after_checkpoint(self, max_bytes: int) -> bytes: ...

    async def send(self, data: bytes) -> None: ...

    async def send_eof(self) -> None: ...

    def abort(self) -> None: ...

    async def aclose(self) -> None: ...


class SocketIO:
    """A connected, non-blocking socket with the handler's stream methods."""

    __slots__ = ("_lock", "sock")

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        #: Held by a writer that had to wait for the socket, until its batch is all out.
        self._lock = anyio.Lock(fast_acquire=True)

    async def receive(self, max_bytes: int) -> bytes:
        sock = self.sock
        while True:
            try:
                return sock.recv(max_bytes)
            except BlockingIOError:
                pass
            except (ConnectionResetError, BrokenPipeError, TimeoutError):
                return b""
            await anyio.wait_readable(sock)

    async def receive_after_checkpoint(self, max_bytes: int) -> bytes:
        """:meth:`receive`, after letting every other ready task run first.

        For the read after a request has been answered. By the time the others have run, a
        busy web server has usually sent this connection's next request, and reading it
        then costs no wait: on asyncio, waiting for readability registers the socket with
        the selector and unregisters it again, which costs five times a checkpoint. On an
        idle connection this adds a checkpoint and one failed ``recv()`` to the wait.
        """
        await anyio.lowlevel.checkpoint()
        return await self.receive(max_bytes)

    async def send(self, data: bytes) -> None:
        """Write all of *data*; raises :exc:`OSError` if the peer is gone."""
        lock = self._lock
        if not lock.locked():
            # The usual case: nobody is half-way through a write and the socket buffer has
            # room. Nothing awaits between the check and the write: no interleaving.
            try:
                sent = self.sock.send(data)
            except BlockingIOError:
                sent = 0
            if sent == len(data):
                return
            # Half a batch is out: nobody else may write until the rest is.
            lock.acquire_nowait()
            try:
                await self._send_rest(memoryview(data)[sent:])
            finally:
                lock.release()
            return
        async with lock:
            await self._send_rest(memoryview(data))

    async def _send_rest(self, data: memoryview) -> None:
        sock = self.sock
        while data:
            await anyio.wait_writable(sock)
            try:
                sent = sock.send(data)
            except BlockingIOError:
                continue
            data = data[sent:]

    async def send_eof(self) -> None:
        async with self._lock:
            with contextlib.suppress(OSError):  # not connected any more: nothing to do
                self.sock.shutdown(socket.SHUT_WR)

    def abort(self) -> None:
        with contextlib.suppress(OSError):  # not connected any more
            self.sock.shutdown(socket.SHUT_RDWR)

    async def aclose(self) -> None:
        self.sock.close()
