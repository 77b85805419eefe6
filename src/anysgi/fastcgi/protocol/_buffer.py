"""The receive buffer: bytes in, whole records out, each byte copied twice at most.

The goal is that the bytes a peer sends are copied a bounded number of times however the
stream is cut into reads, and that the common case (a read that holds several whole records)
touches the bytes only to hand out record contents.

* One :class:`bytearray` with room to spare, written through a :class:`memoryview`:
  ``data[start:end]`` is what was fed and not yet consumed. Feeding copies the read into the
  free space after ``end``; consuming a record only moves ``start``. Nothing is reallocated
  while there is room, unlike ``bytearray +=``, which grows to the exact size and so
  reallocates (and may copy everything) on every read while a large record comes in.
* When a read does not fit, the unconsumed bytes move to the front (at most one incomplete
  record and what the caller fed), and if that is not enough the buffer is replaced by a larger
  one: big enough for the record being received, whose length its header gave, plus a read.
  Each move copies no more than was fed since the previous one, so copying adds up to O(n)
  for n bytes received.
* Record contents are sliced through the view, so a 64 KiB STDIN record is copied once, into
  the :class:`bytes` object the event carries.
* While a record is incomplete, ``need`` remembers how many bytes it takes, so feeding a large
  record in small reads does not re-parse its header for every read.

The buffer holds at most one incomplete record (at most 8 + 65535 + 255 bytes) plus what the
caller fed and has not yet asked to be parsed: a driver that feeds bounded reads and drains
:meth:`~anysgi.fastcgi.protocol.Connection.next_event` until ``NEED_DATA`` before reading
again keeps it bounded. When everything has been consumed, a buffer grown beyond twice the
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

    __slots__ = ("data", "end", "need", "start", "view")

    def __init__(self) -> None:
        #: The storage; only ``data[start:end]`` is meaningful.
        self.data = bytearray()
        #: A view of :attr:`data`, for writing reads into it and slicing contents out.
        self.view = memoryview(self.data)
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
        """Copy *data* after what is already there."""
        if type(data) is memoryview and data.format != "B":
            # A view of something else (an array of ints...): its bytes are what was read.
            data = data.cast("B")
        size = len(data)
        end = self.end
        if self.start == end:
            # Everything fed so far was consumed: start again at the front, for free.
            if size > len(self.data) or len(self.data) > _KEEP:
                # Too small (a new connection), or grown by a burst that is over: the read
                # itself becomes the storage, in one copy.
                self.view.release()
                self.data = bytearray(data)
                self.view = memoryview(self.data)
                self.start = 0
                self.end = size
                return
            self.start = end = 0
        if end + size > len(self.data):
            self._make_room(size)
            end = self.end
        self.view[end : end + size] = data
        self.end = end + size

    def _make_room(self, size: int) -> None:
        """Make room for *size* more bytes after :attr:`end`."""
        start = self.start
        live = self.end - start
        # Enough for the incomplete record (its header may have said how long it is) and the
        # read, so that the rest of the record's reads fit without moving anything again.
        wanted = max(live, self.need) + size
        if start and wanted <= len(self.data):
            # Move the unconsumed bytes to the front; the view copies with memmove.
            self.view[:live] = self.view[start : self.end]
            self.start = 0
            self.end = live
        else:
            # Doubling keeps a caller that feeds without draining at O(n) copying overall.
            self._replace(bytearray(max(wanted, 2 * len(self.data))), live)

    def _replace(self, data: bytearray, live: int) -> None:
        view = memoryview(data)
        view[:live] = self.view[self.start : self.end]
        self.view.release()
        self.data = data
        self.view = view
        self.start = 0
        self.end = live

    def content(self, offset: int, length: int) -> bytes:
        """A copy of *length* bytes at *offset*; valid until the next :meth:`feed`."""
        return self.view[offset : offset + length].tobytes()

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
