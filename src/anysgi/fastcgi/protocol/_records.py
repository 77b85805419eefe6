"""Record framing: the 8-byte header, fixed bodies, and streams cut into padded records.

Spec 3.3::

    typedef struct {
        unsigned char version;
        unsigned char type;
        unsigned char requestIdB1;
        unsigned char requestIdB0;
        unsigned char contentLengthB1;
        unsigned char contentLengthB0;
        unsigned char paddingLength;
        unsigned char reserved;
        unsigned char contentData[contentLength];
        unsigned char paddingData[paddingLength];
    } FCGI_Record;

Everything here is a pure function over bytes; the receive side's incremental parsing lives in
``_buffer.py`` (framing) and ``_connection.py`` (meaning).
"""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

from ._constants import FCGI_VERSION_1, HEADER_LENGTH, MAX_CONTENT_LENGTH

__all__ = (
    "BEGIN_REQUEST_BODY",
    "END_REQUEST_BODY",
    "HEADER",
    "UNKNOWN_TYPE_BODY",
    "Record",
    "encode_record",
    "encode_stream",
    "pack_header",
    "parse_records",
    "unpack_header",
)

#: version, type, requestId, contentLength, paddingLength, reserved (spec 3.3).
HEADER: Final = struct.Struct("!BBHHBx")
#: role, flags, reserved[5] (spec 5.1, FCGI_BeginRequestBody).
BEGIN_REQUEST_BODY: Final = struct.Struct("!HB5x")
#: appStatus, protocolStatus, reserved[3] (spec 5.5, FCGI_EndRequestBody).
END_REQUEST_BODY: Final = struct.Struct("!IB3x")
#: type, reserved[7] (spec 4.2, FCGI_UnknownTypeBody).
UNKNOWN_TYPE_BODY: Final = struct.Struct("!B7x")

assert HEADER.size == HEADER_LENGTH
assert BEGIN_REQUEST_BODY.size == END_REQUEST_BODY.size == UNKNOWN_TYPE_BODY.size == 8

# Spec 3.3: "We recommend that records be placed on boundaries that are multiples of eight
# bytes." Content of length n needs (-n) % 8 bytes of padding; the few possible paddings are
# made once.
_PADDING: Final = tuple(bytes(n) for n in range(8))


class Record(NamedTuple):
    """One decoded record, as :func:`parse_records` returns it."""

    record_type: int
    request_id: int
    content: bytes
    padding_length: int


def pack_header(
    record_type: int, request_id: int, content_length: int, padding_length: int = 0
) -> bytes:
    """The 8-byte header of a record.

    :raises struct.error: if a field does not fit its bytes.
    """
    return HEADER.pack(FCGI_VERSION_1, record_type, request_id, content_length, padding_length)


def unpack_header(data: bytes | bytearray | memoryview, offset: int = 0) -> tuple[int, ...]:
    """``(version, type, request_id, content_length, padding_length)`` at *offset*."""
    return HEADER.unpack_from(data, offset)


def encode_record(
    record_type: int, request_id: int, content: bytes | bytearray | memoryview = b""
) -> bytes:
    """One record with *content* (at most 65535 bytes), padded to a multiple of 8.

    :raises ValueError: if *content* is longer than one record may be.
    """
    length = len(content)
    if length > MAX_CONTENT_LENGTH:
        # Spec 3.3: "contentData: Between 0 and 65535 bytes of data".
        raise ValueError(f"a record holds at most {MAX_CONTENT_LENGTH} bytes, not {length}")
    padding = -length & 7
    return b"".join(
        (
            HEADER.pack(FCGI_VERSION_1, record_type, request_id, length, padding),
            content,
            _PADDING[padding],
        )
    )


def encode_stream(
    parts: list[bytes | bytearray | memoryview],
    record_type: int,
    request_id: int,
    data: bytes | bytearray | memoryview,
) -> None:
    """Append to *parts* the records that carry *data* on a stream, without its end record.

    Each record is at most 65535 bytes of content followed by the padding that brings it to a
    multiple of 8, so a header, its content and its padding sit next to each other in
    *parts*; the caller joins everything once. Content longer than one record is referenced
    through a :class:`memoryview`, so nothing is copied before that final join. Empty *data*
    appends nothing: an empty record ends a stream, and saying so is the caller's decision.
    """
    length = len(data)
    pack = HEADER.pack
    if length <= MAX_CONTENT_LENGTH:
        if length:
            padding = -length & 7
            parts.append(pack(FCGI_VERSION_1, record_type, request_id, length, padding))
            parts.append(data)
            if padding:
                parts.append(_PADDING[padding])
        return
    view = memoryview(data)
    # Spec 3.3: "contentLength ... between 0 and 65535": every full record is 65535 bytes,
    # which needs one byte of padding to end on a multiple of 8.
    full = pack(FCGI_VERSION_1, record_type, request_id, MAX_CONTENT_LENGTH, 1)
    one = _PADDING[1]
    start = 0
    stop = length - MAX_CONTENT_LENGTH
    while start <= stop:
        parts.append(full)
        parts.append(view[start : start + MAX_CONTENT_LENGTH])
        parts.append(one)
        start += MAX_CONTENT_LENGTH
    if start < length:
        rest = length - start
        padding = -rest & 7
        parts.append(pack(FCGI_VERSION_1, record_type, request_id, rest, padding))
        parts.append(view[start:])
        if padding:
            parts.append(_PADDING[padding])


def parse_records(data: bytes | bytearray | memoryview) -> list[Record]:
    """Decode a byte string made of whole records, for tools and tests.

    A :class:`~anysgi.fastcgi.protocol.Connection` parses incrementally instead; this function
    wants everything at once and checks only the framing.

    :raises ValueError: on a version other than 1, or if *data* ends inside a record.
    """
    records = []
    view = memoryview(data)
    offset = 0
    end = len(view)
    while offset < end:
        if end - offset < HEADER_LENGTH:
            raise ValueError(f"{end - offset} bytes left after the last record, not a header")
        version, record_type, request_id, length, padding = HEADER.unpack_from(view, offset)
        if version != FCGI_VERSION_1:
            raise ValueError(f"record at offset {offset} has version {version}, not 1")
        start = offset + HEADER_LENGTH
        offset = start + length + padding
        if offset > end:
            raise ValueError(f"record at offset {start - HEADER_LENGTH} is cut short")
        records.append(
            Record(record_type, request_id, bytes(view[start : start + length]), padding)
        )
    return records
