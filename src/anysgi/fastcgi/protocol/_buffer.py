"""The receive buffer: bytes in, whole records out, in O(n) time overall.

The goal is that each byte the peer sends is copied a bounded number of times however the
stream is cut into reads, and that the common case (a read that holds several whole records)
touches the bytes only to hand out record contents.

* One :class:`bytearray` holds what was fed and not yet consumed, and ``_start`` is the offset
  of the first byte not consumed. Consuming a record only moves ``_start``: nothing is copied.
* The consumed prefix is dropped lazily, in :meth:`ReceiveBuffer.feed`, and only once it is at
  least as long as what remains. Each drop copies at most as many bytes as were consumed since
  the previous one, so the copying adds up to O(n) for n bytes received, like the appends.
* Record contents are sliced through a :class:`memoryview`, so a 64 KiB STDIN record is copied
  once, into the :class:`bytes` object the event carries, and not twice (slice, then bytes).
* While a record is incomplete, ``_need`` remembers how many bytes it takes, so feeding a large
  record in small reads does not re-parse its header for every read.

The buffer holds at most one incomplete record (at most 8 + 65535 + 255 bytes) plus what the
caller fed and has not yet asked to be parsed: a driver that feeds bounded reads and drains
:meth:`~anysgi.fastcgi.protocol.Connection.next_event` until ``NEED_DATA`` before reading
again keeps it bounded.
"""

from __future__ import annotations

import struct
from typing import Any

from ._constants import HEADER_LENGTH
from ._records import HEADER

__all__ = ("ReceiveBuffer",)


class ReceiveBuffer:
    """Bytes received and not yet parsed.

    :class:`~anysgi.fastcgi.protocol.Connection` cuts records out of it in its own loop,
    reading and moving the three public attributes; this class keeps them consistent across
    :meth:`feed`.
    """

    __slots__ = ("_view", "data", "need", "start")

    def __init__(self) -> None:
        #: Everything fed and not yet dropped.
        self.data = bytearray()
        #: Offset of the first byte not consumed.
        self.start = 0
        #: Bytes after :attr:`start` needed before the next record can be complete: a header
        #: (8) until a header says how long its record is.
        self.need = HEADER_LENGTH
        #: A view of ``data`` for slicing contents; released before ``data`` is resized,
        #: which a live export forbids.
        self._view: memoryview | None = None

    def __len__(self) -> int:
        """Bytes fed and not consumed yet."""
        return len(self.data) - self.start

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append *data*, first dropping the consumed prefix if that is cheap enough."""
        if self._view is not None:
            self._view.release()
            self._view = None
        start = self.start
        if start:
            buffer = self.data
            if start >= len(buffer) - start:
                # At least as many bytes consumed as remain: moving the rest to the front
                # costs no more than consuming did.
                del buffer[:start]
                self.start = 0
        self.data += data

    def content(self, offset: int, length: int) -> bytes:
        """A copy of *length* bytes at *offset*; valid until the next :meth:`feed`."""
        view = self._view
        if view is None:
            view = self._view = memoryview(self.data)
        return view[offset : offset + length].tobytes()

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
