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

__all__ = (
    "PairDecoder",
    "PairLimits",
    "decode_into",
    "decode_pairs",
    "encode_length",
    "encode_pairs",
)

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


class PairLimits:
    """The limits a :class:`PairDecoder` enforces; made once per connection.

    :param max_name_length: longest name accepted, in bytes.
    :param max_value_length: longest value accepted, in bytes.
    :param max_size: most bytes one stream of pairs may hold.
    :param size_limit: names *max_size* in error messages; by default
        ``max_params_size=<max_size>``, the :class:`~anysgi.fastcgi.protocol.Connection`
        parameter it comes from.
    """

    __slots__ = ("fast", "max_name_length", "max_size", "max_value_length", "size_limit")

    def __init__(
        self,
        *,
        max_name_length: int,
        max_value_length: int,
        max_size: int,
        size_limit: str | None = None,
    ) -> None:
        self.max_name_length = max_name_length
        self.max_value_length = max_value_length
        self.max_size = max_size
        self.size_limit = size_limit or f"max_params_size={max_size}"
        #: With both limits at 127 or more, a one-byte length can never break them, so the
        #: common pair (two one-byte lengths) skips every check.
        self.fast = max_name_length >= 127 and max_value_length >= 127


def decode_into(
    out: dict[bytes, bytes], data: bytes, base: int, limits: PairLimits, label: str
) -> PairDecoder | None:
    """Decode the pairs of one piece of a stream into *out*.

    The common case, a stream whose pieces end on pair boundaries (nginx sends all its
    parameters in one record), costs nothing more. When *data* ends inside a pair, the
    :class:`PairDecoder` returned holds that pair's bytes and takes the rest.

    :param base: how many bytes of the stream came before *data*, for the size limit.
    :raises RemoteProtocolError: if a limit is exceeded.
    """
    pos, need = _decode_into(out, data, base, limits, label)
    if pos == len(data):
        return None
    return PairDecoder(out, label, limits, data[pos:], base + pos, need)


class PairDecoder:
    """The incomplete pair at the end of a piece of a stream, waiting for the rest.

    Made by :func:`decode_into`; decoded pairs go into the same *out*.

    :param out: where decoded pairs are stored.
    :param label: names the stream in error messages, e.g. ``"PARAMS stream of request 1"``.
    :param limits: what to refuse.
    :param pending: the incomplete pair's bytes so far.
    :param base: how many bytes of the stream came before *pending*.
    :param need: how many bytes the pair takes in all, once its lengths are known (else 0).
    """

    __slots__ = ("_base", "_limits", "_need", "_out", "_pending", "label")

    def __init__(
        self,
        out: dict[bytes, bytes],
        label: str,
        limits: PairLimits,
        pending: bytes,
        base: int,
        need: int,
    ) -> None:
        self._out = out
        #: What error messages call the stream.
        self.label = label
        self._limits = limits
        self._pending = bytearray(pending)
        self._base = base
        self._need = need

    @property
    def pending(self) -> int:
        """Bytes of an incomplete pair waiting for the rest (0 once none is)."""
        return len(self._pending)

    def feed(self, data: bytes) -> None:
        """Decode every pair that *data* completes, keeping a new incomplete tail if any.

        :raises RemoteProtocolError: if a limit is exceeded.
        """
        pending = self._pending
        pending += data
        if len(pending) < self._need:
            # The pair's lengths are known and checked; only its bytes are missing, so there
            # is nothing to decode yet. Waiting here keeps a large value that arrives in many
            # records from being copied again for each one.
            return
        whole = bytes(pending)
        pending.clear()
        pos, need = _decode_into(self._out, whole, self._base, self._limits, self.label)
        if pos < len(whole):
            pending += memoryview(whole)[pos:]
        self._base += pos
        self._need = need

    def close(self) -> None:
        """Check that the stream did not stop inside a pair.

        :raises RemoteProtocolError: if it did.
        """
        if self._pending:
            raise RemoteProtocolError(
                f"{self.label} ended in the middle of a name-value pair "
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
    limits = PairLimits(
        max_name_length=max_name_length,
        max_value_length=max_value_length,
        max_size=len(data),
        size_limit=f"its end ({len(data)} bytes)",
    )
    rest = decode_into(out, data, 0, limits, label)
    if rest is not None:
        rest.close()
    return out


def _decode_into(
    out: dict[bytes, bytes], data: bytes, base: int, limits: PairLimits, label: str
) -> tuple[int, int]:
    """Decode whole pairs from *data* into *out*.

    Returns where the first incomplete pair starts (``len(data)`` if none) and how many bytes
    from there it needs in all (0 while its lengths are still incomplete).
    """
    fast = limits.fast
    pos = 0
    end = len(data)
    last = end - 1
    while True:
        if fast:
            # The common case, kept as short as Python allows because it runs once per pair:
            # two one-byte lengths, which no limit of 127 or more can refuse.
            while pos < last:
                name_length = data[pos]
                value_length = data[pos + 1]
                if name_length > 127 or value_length > 127:
                    break
                start = pos + 2
                middle = start + name_length
                stop = middle + value_length
                if stop > end:
                    return pos, stop - pos
                out[data[start:middle]] = data[middle:stop]
                pos = stop
        if pos >= end:
            return pos, 0
        # One pair the hard way: a four-byte length, limits below 127, or a lone byte left.
        start = pos
        name_length = data[start]
        if name_length < 128:
            start += 1
        elif start + 4 <= end:
            name_length = _LENGTH4.unpack_from(data, start)[0] & MAX_PAIR_LENGTH
            start += 4
        else:
            return pos, 0
        if name_length > limits.max_name_length:
            raise RemoteProtocolError(
                f"{label}: a name of {name_length} bytes exceeds "
                f"max_name_length={limits.max_name_length}"
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
        if value_length > limits.max_value_length:
            raise RemoteProtocolError(
                f"{label}: a value of {value_length} bytes exceeds "
                f"max_value_length={limits.max_value_length}"
            )
        middle = start + name_length
        stop = middle + value_length
        if base + stop > limits.max_size:
            raise RemoteProtocolError(
                f"{label}: a name-value pair of {stop - pos} bytes would take it past "
                f"{limits.size_limit}"
            )
        if stop > end:
            return pos, stop - pos
        out[data[start:middle]] = data[middle:stop]
        pos = stop
