"""The receive buffer: contents survive every way of cutting reads, copying stays bounded."""

from __future__ import annotations

import pytest

from anysgi.fastcgi import protocol as p
from anysgi.fastcgi.protocol._buffer import MAX_RECORD, ReceiveBuffer

from .helpers import begin, drain, record


class CountingBuffer(ReceiveBuffer):
    """Counts the bytes moved inside the buffer (compaction and growth), not the reads."""

    __slots__ = ("moved",)

    def __init__(self) -> None:
        super().__init__()
        self.moved = 0

    def _make_room(self, size: int) -> None:
        self.moved += len(self)
        super()._make_room(size)


def _server_with(buffer: ReceiveBuffer) -> p.Connection:
    conn = p.Connection(p.SERVER)
    conn._buffer = buffer
    return conn


def _upload(records: int, size: int = 65535) -> bytes:
    chunk = bytes(range(256)) * (size // 256) + bytes(size % 256)
    return begin(1) + record(4, 1) + b"".join(record(5, 1, chunk) for _ in range(records))


@pytest.mark.parametrize("read", [1, 7, 1000, 16384, 65544, 200_000])
def test_copying_stays_linear_whatever_the_read_size(read: int) -> None:
    wire = _upload(8)
    buffer = CountingBuffer()
    conn = _server_with(buffer)
    received = 0
    for start in range(0, len(wire), read):
        conn.receive_data(wire[start : start + read])
        for event in drain(conn):
            if isinstance(event, p.Stdin):
                received += len(event.data)
    assert received == 8 * 65535
    # Bytes moved inside the buffer: at most about one read per record, never the records
    # again and again.
    assert buffer.moved <= 8 * (read + 16) + 100
    assert len(buffer.data) <= 2 * (MAX_RECORD + read)


def test_a_big_record_fed_byte_by_byte_is_not_moved() -> None:
    buffer = CountingBuffer()
    conn = _server_with(buffer)
    wire = _upload(1)
    for i in range(len(wire)):
        conn.receive_data(wire[i : i + 1])
        drain(conn)
    assert buffer.moved < 100
    assert len(buffer) == 0


def test_feeding_without_draining_grows_by_doubling() -> None:
    buffer = CountingBuffer()
    conn = _server_with(buffer)
    wire = _upload(4, 1000)
    for i in range(0, len(wire), 10):
        conn.receive_data(wire[i : i + 10])
    # Every byte is still there, moved O(n) times in all.
    assert len(buffer) == len(wire)
    assert buffer.moved <= 2 * len(wire)
    events = drain(conn)
    assert [len(e.data) for e in events if isinstance(e, p.Stdin)] == [1000] * 4


def test_an_idle_buffer_forgets_a_burst() -> None:
    buffer = ReceiveBuffer()
    conn = _server_with(buffer)
    conn.receive_data(_upload(4))
    drain(conn)
    assert len(buffer.data) > 4 * 65535
    conn.receive_data(record(5, 1, b"small"))
    assert drain(conn) == [p.Stdin(1, b"small")]
    assert len(buffer.data) < 100


def test_compaction_keeps_the_unconsumed_bytes() -> None:
    buffer = ReceiveBuffer()
    buffer.feed(b"0123456789")
    buffer.start = 6  # as if six bytes were consumed
    buffer.need = 2
    buffer.feed(b"abcdef")  # does not fit after 10: "6789" moves to the front
    assert bytes(buffer.data[buffer.start : buffer.end]) == b"6789abcdef"
    assert buffer.start == 0
    assert buffer.content(4, 3) == b"abc"
