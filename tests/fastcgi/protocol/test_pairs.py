"""Name-value pairs (spec 3.4): both length encodings, straddling, limits."""

from __future__ import annotations

import pytest

from anysgi.fastcgi import protocol as p
from anysgi.fastcgi.protocol._pairs import (
    PairLimits,
    decode_into,
    decode_pairs,
    encode_length,
    encode_pairs,
)

from .helpers import length, pair


@pytest.mark.parametrize(
    ("n", "encoded"),
    [
        (0, b"\x00"),
        (1, b"\x01"),
        (127, b"\x7f"),
        (128, b"\x80\x00\x00\x80"),
        (255, b"\x80\x00\x00\xff"),
        (65535, b"\x80\x00\xff\xff"),
        (2**31 - 1, b"\xff\xff\xff\xff"),
    ],
)
def test_length_encoding(n: int, encoded: bytes) -> None:
    assert encode_length(n) == encoded == length(n)


def test_length_beyond_31_bits_is_refused() -> None:
    with pytest.raises(ValueError, match="at most 2147483647"):
        encode_length(2**31)


def test_encode_pairs_in_order_shortest_lengths() -> None:
    encoded = encode_pairs({b"A": b"", b"N" * 128: b"v" * 127, b"x": b"y" * 200})
    assert encoded == (
        b"\x01\x00A\x80\x00\x00\x80\x7f"
        + b"N" * 128
        + b"v" * 127
        + b"\x01\x80\x00\x00\xc8x"
        + b"y" * 200
    )
    assert encode_pairs([(b"a", b"1"), (b"a", b"2")]) == b"\x01\x01a1\x01\x01a2"


@pytest.mark.parametrize(
    ("name_length", "value_length"),
    [(0, 0), (1, 127), (127, 128), (128, 127), (128, 128), (300, 70000)],
)
def test_decode_all_four_layouts(name_length: int, value_length: int) -> None:
    # FCGI_NameValuePair11, 14, 41, 44
    name, value = b"n" * name_length, b"v" * value_length
    assert decode_pairs(pair(name, value)) == {name: value}


def test_four_byte_length_of_a_short_string_is_accepted() -> None:
    # Spec 3.4 says lengths of 127 and less *can* use one byte; four is not forbidden.
    assert decode_pairs(b"\x80\x00\x00\x01\x01ab") == {b"a": b"b"}


def test_duplicate_names_keep_first_position_and_last_value() -> None:
    data = pair(b"A", b"1") + pair(b"B", b"2") + pair(b"A", b"3")
    decoded = decode_pairs(data)
    assert list(decoded.items()) == [(b"A", b"3"), (b"B", b"2")]


@pytest.mark.parametrize(
    ("data", "left"),
    [
        (b"\x05", 1),  # a name length and nothing else
        (b"\x01\x01a", 3),  # the value is missing
        (b"\x80\x00", 2),  # half a four-byte length
        (b"\x01\x80\x00\x00", 4),  # half a four-byte value length
        (pair(b"ok", b"1") + b"\x02\x02ab", 4),
    ],
)
def test_truncated_pairs_are_refused(data: bytes, left: int) -> None:
    with pytest.raises(p.RemoteProtocolError, match=rf"middle of a name-value pair \({left} bytes"):
        decode_pairs(data)


def _limits(name: int = 1 << 20, value: int = 1 << 20, size: int = 1 << 20) -> PairLimits:
    return PairLimits(max_name_length=name, max_value_length=value, max_size=size)


def test_a_pair_may_straddle_pieces_at_every_byte() -> None:
    data = pair(b"N" * 130, b"V" * 300) + pair(b"a", b"b") + pair(b"c" * 128, b"")
    expected = decode_pairs(data)
    for cut in range(1, len(data)):
        for second_cut in (cut, min(cut + 3, len(data)), len(data)):
            out: dict[bytes, bytes] = {}
            pieces = [data[:cut], data[cut:second_cut], data[second_cut:]]
            decoder = None
            base = 0
            for piece in pieces:
                if decoder is None:
                    decoder = decode_into(out, piece, base, _limits(), "test")
                else:
                    decoder.feed(piece)
                base += len(piece)
            if decoder is not None:
                assert decoder.pending == 0
                decoder.close()
            assert out == expected, (cut, second_cut)


def test_a_straddling_value_is_not_decoded_before_its_last_byte() -> None:
    out: dict[bytes, bytes] = {}
    data = pair(b"big", b"x" * 100_000)
    decoder = decode_into(out, data[:10], 0, _limits(), "test")
    assert decoder is not None
    for start in range(10, len(data) - 1, 1000):
        decoder.feed(data[start : min(start + 1000, len(data) - 1)])
        assert out == {}
    decoder.feed(data[-1:])
    assert out == {b"big": b"x" * 100_000}
    assert decoder.pending == 0


def test_name_limit_is_checked_before_the_name_arrives() -> None:
    out: dict[bytes, bytes] = {}
    with pytest.raises(
        p.RemoteProtocolError, match="a name of 1000 bytes exceeds max_name_length=999"
    ):
        decode_into(out, length(1000), 0, _limits(name=999), "PARAMS stream of request 1")


def test_value_limit_is_checked_before_the_value_arrives() -> None:
    with pytest.raises(
        p.RemoteProtocolError, match="value of 2147483647 bytes exceeds max_value_length"
    ):
        decode_into({}, b"\x01\xff\xff\xff\xff", 0, _limits(), "test")


def test_declared_pair_beyond_the_size_budget_fails_at_once() -> None:
    # Both lengths within their own limits, but the pair cannot fit in what remains.
    data = b"\x80\x00\x01\x00\x80\x00\x01\x00"  # 256 + 256 bytes declared
    with pytest.raises(p.RemoteProtocolError, match="would take it past max_params_size=600"):
        decode_into({}, data, 100, _limits(size=600), "test")
    assert decode_into({}, data, 80, _limits(size=600), "test") is not None


@pytest.mark.parametrize("limit", [0, 1, 5, 126])
def test_small_limits_check_one_byte_lengths_too(limit: int) -> None:
    ok = pair(b"n" * limit, b"v" * limit)
    assert decode_pairs(ok, max_name_length=limit, max_value_length=limit) == {
        b"n" * limit: b"v" * limit
    }
    with pytest.raises(p.RemoteProtocolError, match=f"max_name_length={limit}"):
        decode_pairs(pair(b"n" * (limit + 1), b""), max_name_length=limit)
    with pytest.raises(p.RemoteProtocolError, match=f"max_value_length={limit}"):
        decode_pairs(pair(b"", b"v" * (limit + 1)), max_value_length=limit)


def test_limit_of_127_keeps_the_fast_path_exact() -> None:
    assert decode_pairs(pair(b"n" * 127, b"v" * 127), max_name_length=127) == {
        b"n" * 127: b"v" * 127
    }
    with pytest.raises(p.RemoteProtocolError, match="a name of 128 bytes"):
        decode_pairs(pair(b"n" * 128, b""), max_name_length=127)


def test_decode_pairs_names_its_own_end_as_the_size_limit() -> None:
    with pytest.raises(p.RemoteProtocolError, match=r"past its end \(6 bytes\)"):
        decode_pairs(b"\x01\x80\x00\x01\x00a")
