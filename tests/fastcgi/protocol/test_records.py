"""Record framing: header layout, padding, splitting streams at 65535 bytes."""

from __future__ import annotations

import pytest

from anysgi.fastcgi import protocol as p
from anysgi.fastcgi.protocol import _records

from .helpers import header, record


def test_header_layout_matches_spec() -> None:
    # version, type, requestIdB1, requestIdB0, contentLengthB1, contentLengthB0, padding, reserved
    assert _records.pack_header(6, 0x0102, 0x0304, 5) == b"\x01\x06\x01\x02\x03\x04\x05\x00"
    assert _records.unpack_header(b"\x01\x06\x01\x02\x03\x04\x05\x00") == (1, 6, 258, 772, 5)
    assert p.HEADER_LENGTH == _records.HEADER.size == 8


@pytest.mark.parametrize("length", [0, 1, 7, 8, 9, 15, 16, 100, 65528, 65529, 65535])
def test_encode_record_pads_to_a_multiple_of_eight(length: int) -> None:
    content = bytes(range(256)) * (length // 256) + bytes(range(length % 256))
    encoded = _records.encode_record(p.RecordType.STDOUT, 3, content)
    padding = -length % 8
    assert encoded == header(6, 3, length, padding) + content + bytes(padding)
    assert len(encoded) % 8 == 0


def test_encode_record_refuses_more_than_one_record() -> None:
    with pytest.raises(ValueError, match="at most 65535"):
        _records.encode_record(p.RecordType.STDOUT, 1, bytes(65536))


def _stream(data: bytes | bytearray | memoryview) -> bytes:
    parts: list[bytes | bytearray | memoryview] = []
    _records.encode_stream(parts, p.RecordType.STDOUT, 1, data)
    return b"".join(parts)


def test_encode_stream_of_nothing_is_nothing() -> None:
    assert _stream(b"") == b""


@pytest.mark.parametrize(
    ("length", "contents"),
    [
        (1, [1]),
        (65535, [65535]),
        (65536, [65535, 1]),
        (65535 * 2, [65535, 65535]),
        (65535 * 2 + 9, [65535, 65535, 9]),
        (1024 * 1024, [65535] * 16 + [16]),
    ],
)
def test_encode_stream_splits_at_65535_and_pads_each_record(
    length: int, contents: list[int]
) -> None:
    data = bytes(i % 251 for i in range(length))
    wire = _stream(data)
    expected = []
    start = 0
    for size in contents:
        padding = -size % 8
        expected.append(header(6, 1, size, padding) + data[start : start + size] + bytes(padding))
        start += size
    assert wire == b"".join(expected)
    records = _records.parse_records(wire)
    assert [len(r.content) for r in records] == contents
    assert all((8 + len(r.content) + r.padding_length) % 8 == 0 for r in records)


def test_encode_stream_accepts_bytearray_and_memoryview() -> None:
    assert _stream(bytearray(b"abc")) == _stream(b"abc") == _stream(memoryview(b"xabc")[1:])


def test_parse_records_reads_any_padding() -> None:
    wire = record(5, 1, b"abc", padding=255) + record(5, 1, b"", padding=0)
    assert _records.parse_records(wire) == [
        _records.Record(5, 1, b"abc", 255),
        _records.Record(5, 1, b"", 0),
    ]


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (header(5, 1, 0, version=2), "version 2"),
        (header(5, 1, 4) + b"ab", "cut short"),
        (record(5, 1, b"x") + b"\x01\x05", "not a header"),
    ],
)
def test_parse_records_refuses_bad_framing(wire: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _records.parse_records(wire)


def test_fixed_bodies_match_the_spec() -> None:
    # FCGI_BeginRequestBody: roleB1, roleB0, flags, reserved[5]
    assert _records.BEGIN_REQUEST_BODY.pack(3, 1) == b"\x00\x03\x01\x00\x00\x00\x00\x00"
    # FCGI_EndRequestBody: appStatusB3..B0, protocolStatus, reserved[3]
    assert _records.END_REQUEST_BODY.pack(0x01020304, 2) == b"\x01\x02\x03\x04\x02\x00\x00\x00"
    # FCGI_UnknownTypeBody: type, reserved[7]
    assert _records.UNKNOWN_TYPE_BODY.pack(42) == b"\x2a" + bytes(7)


def test_constants_are_the_spec_values() -> None:
    assert [t.value for t in p.RecordType] == list(range(1, 12))
    assert [(r.name, r.value) for r in p.Role] == [
        ("RESPONDER", 1),
        ("AUTHORIZER", 2),
        ("FILTER", 3),
    ]
    assert [(s.name, s.value) for s in p.ProtocolStatus] == [
        ("REQUEST_COMPLETE", 0),
        ("CANT_MPX_CONN", 1),
        ("OVERLOADED", 2),
        ("UNKNOWN_ROLE", 3),
    ]
    assert (p.FCGI_VERSION_1, p.FCGI_KEEP_CONN, p.FCGI_LISTENSOCK_FILENO) == (1, 1, 0)
    assert (p.MAX_CONTENT_LENGTH, p.MAX_PADDING_LENGTH, p.MAX_PAIR_LENGTH) == (
        65535,
        255,
        2**31 - 1,
    )
    assert (p.FCGI_MAX_CONNS, p.FCGI_MAX_REQS, p.FCGI_MPXS_CONNS) == (
        b"FCGI_MAX_CONNS",
        b"FCGI_MAX_REQS",
        b"FCGI_MPXS_CONNS",
    )
