"""Name-value pairs (spec 3.4): the body of PARAMS streams and of the GET_VALUES records.

Spec 3.4: "FastCGI transmits a name-value pair as the length of the name, followed by the
length of the value, followed by the name, followed by the value. Lengths of 127 bytes and
less can be encoded in one byte, while longer lengths are always encoded in four bytes". The
top bit of a length's first byte says which: "A high-order zero implies a one-byte encoding, a
one a four-byte encoding."

Decoding is incremental because spec 3.3 lets a stream's bytes be "divided among the non-empty
records" any way the sender likes, so one pair may straddle records. Limits are checked as soon
as a length is known, before any byte of the name or value is waited for: the spec notes that
the format "enables the receiver to allocate the correct amount of storage immediately", which
is exactly what a hostile peer would like us to do with a declared length of 2 GiB.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from typing import Final

from ._constants import MAX_PAIR_LENGTH
from ._errors import RemoteProtocolError

__all__ = ("PairDecoder", "decode_pairs", "encode_length", "encode_pairs")

_LENGTH4: Final = struct.Struct("!I")
_TWO_SHORT: Final = struct.Struct("!BB")
# Spec 3.4: nameLengthB3 >> 7 == 1 marks the four-byte form.
_LONG_FLAG: Final = 0x8000_0000


def encode_length(length: int) -> bytes:
    """The 1- or 4-byte encoding of a name or value length.

    :raises ValueError: if *length* does not fit in 31 bits.
    """
    if length < 128:
        return bytes((length,))
    if length > MAX_PAIR_LENGTH:
        raise ValueError(f"a name or value holds at most {MAX_PAIR_LENGTH} bytes, not {length}")
    return _LENGTH4.pack(length | _LONG_FLAG)


def encode_pairs(pairs: Mapping[bytes, bytes] | Iterable[tuple[bytes, bytes]]) -> bytes:
    """Encode name-value pairs, in order, each length in its shortest form.

    :param pairs: a mapping, or an iterable of ``(name, value)`` pairs (which may repeat a
        name).
    :raises ValueError: if a name or value is longer than 2**31 - 1 bytes.
    """
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    parts: list[bytes] = []
    append = parts.append
    short = _TWO_SHORT.pack
    for name, value in items:
        name_length = len(name)
        value_length = len(value)
        if name_length < 128 and value_length < 128:
            append(short(name_length, value_length))
        else:
            append(encode_length(name_length) + encode_length(value_length))
        append(name)
        append(value)
    return b"".join(parts)


class PairDecoder:
    """Decodes a stream of name-value pairs fed in arbitrary pieces, under limits.

    Decoded pairs go into *out* as they complete: a repeated name keeps its first position and
    takes its last value (what PHP does with a repeated parameter).

    :param out: where decoded pairs are stored.
    :param label: names the stream in error messages, e.g. ``"PARAMS stream of request 1"``.
    :param max_name_length: longest name accepted, in bytes.
    :param max_value_length: longest value accepted, in bytes.
    :param max_size: most bytes the whole stream may hold.
    :param size_limit: names *max_size* in error messages; by default
        ``max_params_size=<max_size>``, the :class:`~anysgi.fastcgi.protocol.Connection`
        parameter it comes from.
    """

    __slots__ = (
        "_fast",
        "_label",
        "_max_name",
        "_max_size",
        "_max_value",
        "_need",
        "_out",
        "_pending",
        "_size",
        "_size_limit",
    )

    def __init__(
        self,
        out: dict[bytes, bytes],
        label: str,
        *,
        max_name_length: int,
        max_value_length: int,
        max_size: int,
        size_limit: str | None = None,
    ) -> None:
        self._out = out
        self._size_limit = size_limit
        self._label = label
        self._max_name = max_name_length
        self._max_value = max_value_length
        self._max_size = max_size
        # With both limits at 127 or more, a one-byte length can never break them, so the
        # common pair (two one-byte lengths) skips every check.
        self._fast = max_name_length >= 127 and max_value_length >= 127
        #: Bytes of an incomplete pair carried over from earlier pieces.
        self._pending = bytearray()
        #: How many pending bytes the incomplete pair needs before decoding is worth trying.
        self._need = 0
        #: Bytes fed so far.
        self._size = 0

    @property
    def label(self) -> str:
        """What error messages call the stream."""
        return self._label

    @property
    def size_limit(self) -> str:
        """The size limit as error messages name it."""
        return self._size_limit or f"max_params_size={self._max_size}"

    @property
    def pending(self) -> int:
        """Bytes of an incomplete pair waiting for the rest."""
        return len(self._pending)

    def feed(self, data: bytes) -> None:
        """Decode every pair that *data* completes.

        :raises RemoteProtocolError: if a limit is exceeded.
        """
        size = self._size + len(data)
        if size > self._max_size:
            raise RemoteProtocolError(f"{self._label} goes past {self.size_limit}")
        self._size = size
        pending = self._pending
        if pending:
            pending += data
            if len(pending) < self._need:
                # The pair's lengths are known and checked; only its bytes are missing, so
                # there is nothing to decode yet. Waiting here keeps a large value that
                # arrives in many records from being re-copied for each one.
                return
            data = bytes(pending)
            pending.clear()
        # Offset in the stream of data[0]: needed to check declared lengths against max_size.
        base = size - len(data)
        pos, need = _decode_into(
            self._out,
            data,
            base,
            self._fast,
            self._max_name,
            self._max_value,
            self._max_size,
            self,
        )
        if pos < len(data):
            pending += memoryview(data)[pos:]
            self._need = need

    def close(self) -> None:
        """Check that the stream did not stop inside a pair.

        :raises RemoteProtocolError: if it did.
        """
        if self._pending:
            raise RemoteProtocolError(
                f"{self._label} ended in the middle of a name-value pair "
                f"({len(self._pending)} bytes left over)"
            )


def decode_pairs(
    data: bytes,
    *,
    max_name_length: int = MAX_PAIR_LENGTH,
    max_value_length: int = MAX_PAIR_LENGTH,
    label: str = "name-value pairs",
) -> dict[bytes, bytes]:
    """Decode a complete sequence of name-value pairs.

    :raises RemoteProtocolError: if *data* is not exactly a sequence of pairs, or a limit is
        exceeded.
    """
    out: dict[bytes, bytes] = {}
    decoder = PairDecoder(
        out,
        label,
        max_name_length=max_name_length,
        max_value_length=max_value_length,
        max_size=len(data),
        size_limit=f"its end ({len(data)} bytes)",
    )
    decoder.feed(data)
    decoder.close()
    return out


def _decode_into(
    out: dict[bytes, bytes],
    data: bytes,
    base: int,
    fast: bool,
    max_name: int,
    max_value: int,
    max_size: int,
    decoder: PairDecoder,
) -> tuple[int, int]:
    """Decode whole pairs from *data* into *out*.

    Returns where the first incomplete pair starts (``len(data)`` if none) and how many bytes
    from there it needs in all (0 while its lengths are still incomplete).
    """
    pos = 0
    end = len(data)
    while pos < end:
        name_length = data[pos]
        if fast and name_length < 128 and pos + 1 < end:
            value_length = data[pos + 1]
            if value_length < 128:
                # The common case: two one-byte lengths, no limit can be broken.
                middle = pos + 2 + name_length
                stop = middle + value_length
                if stop > end:
                    return pos, stop - pos
                out[data[pos + 2 : middle]] = data[middle:stop]
                pos = stop
                continue
        start = pos
        if name_length < 128:
            start += 1
        elif start + 4 <= end:
            name_length = _LENGTH4.unpack_from(data, start)[0] & MAX_PAIR_LENGTH
            start += 4
        else:
            return pos, 0
        if name_length > max_name:
            raise RemoteProtocolError(
                f"{decoder.label}: a name of {name_length} bytes exceeds max_name_length={max_name}"
            )
        if start >= end:
            return pos, 0
        value_length = data[start]
        if value_length < 128:
            start += 1
        elif start + 4 <= end:
            value_length = _LENGTH4.unpack_from(data, start)[0] & MAX_PAIR_LENGTH
            start += 4
        else:
            return pos, 0
        if value_length > max_value:
            raise RemoteProtocolError(
                f"{decoder.label}: a value of {value_length} bytes exceeds "
                f"max_value_length={max_value}"
            )
        middle = start + name_length
        stop = middle + value_length
        if base + stop > max_size:
            raise RemoteProtocolError(
                f"{decoder.label}: a name-value pair of {stop - pos} bytes would take it "
                f"past {decoder.size_limit}"
            )
        if stop > end:
            return pos, stop - pos
        out[data[start:middle]] = data[middle:stop]
        pos = stop
    return pos, 0
