"""anysgi.fastcgi._io.SocketIO: the server's sockets, on asyncio and trio."""

from __future__ import annotations

import socket

import anyio
import pytest

from anysgi.fastcgi._io import SocketIO

pytestmark = pytest.mark.anyio


async def test_receive_after_checkpoint_lets_other_tasks_run() -> None:
    # The read after a response: data already there is returned without a wait, but it is
    # a checkpoint all the same, so that one busy connection cannot starve the others.
    ours, theirs = socket.socketpair()
    with ours, theirs:
        stream = SocketIO(ours)
        theirs.sendall(b"x" * 1000)
        ran = anyio.Event()
        reads = 0

        async def other() -> None:
            ran.set()

        async with anyio.create_task_group() as task_group:
            task_group.start_soon(other)  # ready, waiting for its turn
            while not ran.is_set() and reads < 10:
                assert await stream.receive_after_checkpoint(1) == b"x"
                reads += 1
        assert reads <= 2


async def test_receive_after_checkpoint_is_a_cancellation_point() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        stream = SocketIO(ours)
        theirs.sendall(b"data")
        with anyio.CancelScope() as scope:
            scope.cancel()
            await stream.receive_after_checkpoint(100)
        assert scope.cancelled_caught
        assert await stream.receive(100) == b"data"  # nothing was read and lost


async def test_receive_waits_for_data_and_reports_end_of_stream() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        stream = SocketIO(ours)

        async def later() -> None:
            await anyio.sleep(0.02)
            theirs.sendall(b"late")
            theirs.shutdown(socket.SHUT_WR)

        async with anyio.create_task_group() as task_group:
            task_group.start_soon(later)
            with anyio.fail_after(5):
                assert await stream.receive_after_checkpoint(100) == b"late"
                assert await stream.receive(100) == b""


async def test_send_waits_for_room_and_keeps_batches_whole() -> None:
    # Two writers, each with more than the socket buffer holds: each batch arrives whole,
    # never interleaved with the other's bytes.
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        stream = SocketIO(ours)
        size = 1_000_000
        received = bytearray()

        async def drain() -> None:
            theirs.setblocking(False)
            while len(received) < 2 * size:
                await anyio.wait_readable(theirs)
                received.extend(theirs.recv(65536))

        async with anyio.create_task_group() as task_group:
            task_group.start_soon(drain)
            task_group.start_soon(stream.send, b"a" * size)
            task_group.start_soon(stream.send, b"b" * size)
        assert sorted([bytes(received[:size]), bytes(received[size:])]) == [
            b"a" * size,
            b"b" * size,
        ]
