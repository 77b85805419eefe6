"""The receive buffer: bytes in, whole records out, each byte copied twice at most.

The goal is that the bytes a peer sends are copied a bounded number of times however the
stream is cut into reads, and that the common case (a read that holds several whole records)
touches the bytes only to hand out record contents.

* A read that comes when nothing is left of the earlier ones, as :class:`bytes`, is kept as
  it is, without a copy: ``data[start:end]`` is what was fed and not yet consumed, and
  consuming a record only moves ``start``. This is the common case: a web server writes whole
  records, so reads tend to end on record boundaries.
* Otherwise the bytes go to a :class:`bytearray` with room to spare: feeding copies the read
  into the free space after ``end``. Nothing is reallocated while there is room, unlike
  ``bytearray +=``, which grows to the exact size and so reallocates (and may copy
  everything) on every read while a large record comes in.
* When a read does not fit, the unconsumed bytes move to the front (at most one incomplete
  record and what the caller fed), and if that is not enough the storage is replaced by a
  larger one: big enough for the record being received, whose length its header gave, plus a
  read. Each move copies no more than was fed since the previous one, so copying adds up to
  O(n) for n bytes received.
* Record contents are sliced out once, so a 64 KiB STDIN record is copied once, into the
  :class:`bytes` object the event carries.
* While a record is incomplete, ``need`` remembers how many bytes it takes, so feeding a large
  record in small reads does not re-parse its header for every read.

The buffer holds at most one incomplete record (at most 8 + 65535 + 255 bytes) plus what the
caller fed and has not yet asked to be parsed: a driver that feeds bounded reads and drains
:meth:`~anysgi.fastcgi.protocol.Connection.next_event` until ``NEED_DATA`` before reading
again keeps it bounded. When everything has been consumed, storage grown beyond twice the
largest record is dropped, so an idle connection does not keep the memory of a burst.
"""

from __future__ import annotations

import struct
from typing import Any, Final

from ._constants import HEADER_LENGTH, MAX_CONTENT_LENGTH, MAX_PADDING_LENGTH
from ._records import HEADER

__all__ = ("ReceiveBuffer",)


#: Most bytes one record takes: header, content and padding.
MAX_RECORD: Final = HEADER_LENGTH + MAX_CONTENT_LENGTH + MAX_PADDING_LENGTH
#: An empty buffer larger than this is dropped rather than kept for the next reads.
_KEEP: Final = 2 * MAX_RECORD


class ReceiveBuffer:
    """Bytes received and not yet parsed.

    :class:`~anysgi.fastcgi.protocol.Connection` cuts records out of it in its own loop,
    reading the public attributes and moving :attr:`start` and :attr:`need`; this class keeps
    them consistent across :meth:`feed`.
    """

    __slots__ = ("data", "end", "need", "start")

    def __init__(self) -> None:
        #: The bytes; only ``data[start:end]`` is meaningful. Either a read kept as it came
        #: (:class:`bytes`), or the storage, a :class:`bytearray` with room to spare.
        self.data: bytes | bytearray = b""
        #: Offset of the first byte not consumed.
        self.start = 0
        #: Offset just past the last byte fed.
        self.end = 0
        #: Bytes after :attr:`start` needed before the next record can be complete: a header
        #: (8) until a header says how long its record is.
        self.need = HEADER_LENGTH

    def __len__(self) -> int:
        """Bytes fed and not consumed yet."""
        return self.end - self.start

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Add *data* after what is already there."""
        end = self.end
        if self.start == end and type(data) is bytes:
            # Everything fed so far was consumed, and the read is immutable: it is kept as it
            # is (storage grown by a burst is dropped with the reference to it).
            self.data = data
            self.start = 0
            self.end = len(data)
            return
        if type(data) is memoryview and data.format != "B":
            # A view of something else (an array of ints...): its bytes are what was read.
            data = data.cast("B")
        size = len(data)
        storage = self.data
        if self.start == end:
            # Everything fed so far was consumed: start again at the front, for free.
            if type(storage) is bytes or size > len(storage) or len(storage) > _KEEP:
                # No storage, too small, or grown by a burst that is over: a copy of the read
                # becomes the storage.
                self.data = bytearray(data)
                self.start = 0
                self.end = size
                return
            self.start = end = 0
        elif type(storage) is bytes or end + size > len(storage):
            # Something is left of an earlier read, and either it is that read, which cannot
            # grow, or the storage is full.
            self._make_room(size)
            end = self.end
        # Through a view: bytearray's own slice assignment first copies any other kind of
        # object into a temporary bytearray, which would copy every read twice.
        memoryview(self.data)[end : end + size] = data
        self.end = end + size

    def _make_room(self, size: int) -> None:
        """Move what is left into the storage, with room for *size* more bytes after it."""
        start = self.start
        live = self.end - start
        old = self.data
        # Enough for the incomplete record (its header may have said how long it is) and the
        # read, so that the rest of the record's reads fit without moving anything again.
        wanted = max(live, self.need) + size
        if type(old) is bytearray and wanted <= len(old):
            # Through views, which copy with memmove: the bytes move within their storage.
            memoryview(old)[:live] = memoryview(old)[start : self.end]
        else:
            # Doubling keeps a caller that feeds without draining at O(n) copying overall.
            storage = bytearray(max(wanted, 2 * len(old)))
            memoryview(storage)[:live] = memoryview(old)[start : self.end]
            self.data = storage
        self.start = 0
        self.end = live

    def content(self, offset: int, length: int) -> bytes:
        """A copy of *length* bytes at *offset*."""
        data = self.data
        if type(data) is bytes:
            return data[offset : offset + length]
        return memoryview(data)[offset : offset + length].tobytes()

    def unpack(self, layout: struct.Struct, offset: int) -> tuple[Any, ...]:
        """Unpack a fixed-size body at *offset*."""
        return layout.unpack_from(self.data, offset)

    def missing(self) -> str | None:
        """Describe the incomplete record at the end of the data, if there is one."""
        available = len(self)
        if not available:
            return None
        if available < HEADER_LENGTH:
            return (
                f"in the middle of a record header ({HEADER_LENGTH - available} of its "
                f"{HEADER_LENGTH} bytes missing)"
            )
        _, _, _, length, padding = HEADER.unpack_from(self.data, self.start)
        total = HEADER_LENGTH + length + padding
        return f"in the middle of a record ({total - available} of its {total} bytes missing)"
