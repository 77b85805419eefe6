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

from ._constants import FCGI_VERSION_1, HEADER_LENGTH
from ._errors import RemoteProtocolError
from ._records import HEADER

__all__ = ("ReceiveBuffer",)


class ReceiveBuffer:
    """Bytes received and not yet parsed, cut into records on demand."""

    __slots__ = ("_data", "_need", "_start", "_view")

    def __init__(self) -> None:
        self._data = bytearray()
        self._start = 0
        #: Bytes after ``_start`` needed before the next record can be complete.
        self._need = HEADER_LENGTH
        #: A view of ``_data`` for slicing contents; released before ``_data`` is resized,
        #: which a live export forbids.
        self._view: memoryview | None = None

    def __len__(self) -> int:
        """Bytes fed and not consumed yet."""
        return len(self._data) - self._start

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append *data*, first dropping the consumed prefix if that is cheap enough."""
        if self._view is not None:
            self._view.release()
            self._view = None
        start = self._start
        if start:
            buffer = self._data
            if start >= len(buffer) - start:
                del buffer[:start]
                self._start = 0
        self._data += data

    def next_record(self) -> tuple[int, int, int, int] | None:
        """Consume the next record if it is complete.

        :returns: ``(record_type, request_id, content_offset, content_length)``, where the
            content is ``content_offset`` bytes into the buffer (see :meth:`content`), or
            ``None`` if the record is not complete yet.
        :raises RemoteProtocolError: if the header's version is not 1.
        """
        data = self._data
        start = self._start
        available = len(data) - start
        if available < self._need:
            return None
        version, record_type, request_id, length, padding = HEADER.unpack_from(data, start)
        if version != FCGI_VERSION_1:
            # Spec 3.3: "version: Identifies the FastCGI protocol version. This specification
            # documents FCGI_VERSION_1." Nothing after a foreign header can be trusted.
            raise RemoteProtocolError(
                f"record header has version byte {version} (0x{version:02x}), "
                f"not {FCGI_VERSION_1}: this is not FastCGI 1.0"
            )
        # Spec 3.3: receivers must "interpret the paddingLength and skip the paddingData",
        # whatever its length (0 to 255), although senders should pad to a multiple of 8.
        content = start + HEADER_LENGTH
        end = content + length + padding
        if end > len(data):
            self._need = end - start
            return None
        self._need = HEADER_LENGTH
        self._start = end
        return record_type, request_id, content, length

    def content(self, offset: int, length: int) -> bytes:
        """A copy of *length* bytes at *offset*, as returned by :meth:`next_record`.

        Valid until the next :meth:`feed`.
        """
        view = self._view
        if view is None:
            view = self._view = memoryview(self._data)
        return view[offset : offset + length].tobytes()

    def unpack(self, layout: struct.Struct, offset: int) -> tuple[Any, ...]:
        """Unpack a fixed-size body at *offset*, as returned by :meth:`next_record`."""
        return layout.unpack_from(self._data, offset)

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
        _, _, _, length, padding = HEADER.unpack_from(self._data, self._start)
        total = HEADER_LENGTH + length + padding
        return f"in the middle of a record ({total - available} of its {total} bytes missing)"
