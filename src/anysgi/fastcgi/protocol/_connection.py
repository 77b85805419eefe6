"""The :class:`Connection`: bytes in, events out; events in, bytes out. No I/O.

It owns the receive buffer, the table of active requests and the management-record
bookkeeping; what each request may do next is asked of ``_state.py``.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable, KeysView
from typing import Any, Final, final

from ._buffer import ReceiveBuffer
from ._constants import (
    FCGI_KEEP_CONN,
    FCGI_VERSION_1,
    HEADER_LENGTH,
    MAX_CONTENT_LENGTH,
    MAX_REQUEST_ID,
    ProtocolStatus,
    RecordType,
    Role,
)
from ._errors import LocalProtocolError, RemoteProtocolError
from ._events import (
    AbortRequest,
    BeginRequest,
    ConnectionClosed,
    Data,
    DataEnd,
    EndRequest,
    Event,
    GetValues,
    GetValuesResult,
    Params,
    Stderr,
    StderrEnd,
    Stdin,
    StdinEnd,
    Stdout,
    StdoutEnd,
    UnknownManagementRecord,
    UnknownType,
    _BlankParams,
    _BlankStdin,
    make_abort_request,
    make_begin_request,
    make_data,
    make_data_end,
    make_end_request,
    make_stderr,
    make_stderr_end,
    make_stdin_end,
    make_stdout,
    make_stdout_end,
)
from ._pairs import (
    PairDecoder,
    PairLimits,
    decode_into,
    decode_pairs,
    encode_pairs,
)
from ._records import (
    BEGIN_REQUEST_BODY,
    END_REQUEST_BODY,
    HEADER,
    UNKNOWN_TYPE_BODY,
    encode_record,
    encode_stream,
)
from ._state import (
    BEGIN_STATE,
    CLIENT,
    CLOSE_NONE,
    CLOSE_STDOUT,
    CLOSING,
    NEXT,
    SENT_BY,
    SERVER,
    Kind,
    RequestMachine,
    RequestState,
    Side,
    State,
)

__all__ = (
    "DEFAULT_MAX_CONCURRENT_REQUESTS",
    "DEFAULT_MAX_NAME_LENGTH",
    "DEFAULT_MAX_PARAMS_SIZE",
    "DEFAULT_MAX_VALUE_LENGTH",
    "NEED_DATA",
    "Connection",
    "NeedData",
)

#: Default ``max_params_size``: 1 MiB. The PARAMS stream carries the request line and headers,
#: so it is as large as the front end lets them be: nginx accepts at most 4 x 8 KiB of header
#: lines by default (``large_client_header_buffers``), Apache up to 100 fields of 8190 bytes
#: (``LimitRequestFields``, ``LimitRequestFieldSize``), about 800 KiB, plus the variables each
#: server adds. 1 MiB holds all of that and bounds what one request can make us store.
DEFAULT_MAX_PARAMS_SIZE: Final = 1024 * 1024

#: Default ``max_concurrent_requests``: 100. nginx and Apache never multiplex (one request per
#: connection at a time); a multiplexing client gets 100, and one connection can then hold at
#: most 100 x ``max_params_size`` of parameters.
DEFAULT_MAX_CONCURRENT_REQUESTS: Final = 100

#: Default ``max_name_length``: 16 KiB. Parameter names are fixed CGI names or ``HTTP_`` plus a
#: header name, and no header line is longer than 8 KiB in nginx or 8190 bytes in Apache by
#: default; twice that leaves room for front ends configured with larger buffers.
DEFAULT_MAX_NAME_LENGTH: Final = 16 * 1024

#: Default ``max_value_length``: 1 MiB, the whole PARAMS budget. A front end merges repeated
#: header fields into one value (Apache joins them with ", "), so one value may be most of the
#: request's headers. Lower it when the front end cannot send such values.
DEFAULT_MAX_VALUE_LENGTH: Final = 1024 * 1024


class NeedData(enum.Enum):
    """The type of :data:`NEED_DATA`."""

    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return "NEED_DATA"

    __str__ = __repr__


#: Returned by :meth:`Connection.next_event` when the data received so far holds no further
#: complete event: feed more with :meth:`Connection.receive_data`.
NEED_DATA: Final = NeedData.NEED_DATA

_CONNECTION_CLOSED: Final = ConnectionClosed()
_new_buffer: Final = object.__new__
#: _pending_unknown until a management record of an unknown type is counted: shared, never
#: written to (nearly every connection has none, and a dict per connection costs).
_NO_PENDING: Final[dict[int, int]] = {}
#: The header (spec 3.3) with version and type read as one number, ``version << 8 | type``.
_unpack_header_vt: Final = struct.Struct("!HHHBx").unpack_from
_unpack_begin: Final = BEGIN_REQUEST_BODY.unpack_from
_FILTER: Final = Role.FILTER
#: A whole END_REQUEST record: header and FCGI_EndRequestBody (spec 5.5), packed at once.
_END_REQUEST_RECORD: Final = struct.Struct(HEADER.format + END_REQUEST_BODY.format.lstrip("!"))
# Plain ints where struct packs them: an IntEnum goes through __index__, twice as slow.
_STREAM_TYPE: Final = {
    Kind.STDOUT_END: int(RecordType.STDOUT),
    Kind.STDERR_END: int(RecordType.STDERR),
}
_END_REQUEST_TYPE: Final = int(RecordType.END_REQUEST)
_STDOUT_TYPE: Final = int(RecordType.STDOUT)
#: The empty STDOUT record and END_REQUEST, as a request that wrote to STDOUT, or wrote
#: nothing, ends: one pack for both.
_END_STDOUT_AND_REQUEST: Final = struct.Struct(HEADER.format + _END_REQUEST_RECORD.format[1:])
_REQUEST_COMPLETE: Final = ProtocolStatus.REQUEST_COMPLETE
# Events are immutable: the ones with nothing but small numbers in them are made once and
# handed out again, the last one for each request id. Bounded, because a peer chooses the
# numbers.
_BEGIN_REQUESTS: Final[dict[int, BeginRequest]] = {}
_STDIN_ENDS: Final[dict[int, StdinEnd]] = {}
_MAX_CACHED: Final = 256
#: keep_conn by BEGIN_REQUEST flags byte: a tuple look-up costs less than masking.
_KEEP_CONN: Final = tuple(flags & FCGI_KEEP_CONN == FCGI_KEEP_CONN for flags in range(256))
# next_event writes the header length as the constant it is.
assert HEADER_LENGTH == 8
#: ReceiveBuffer.need once the connection has failed: more than a buffer can hold.
_DEAD: Final = 2**63
_REQUEST_COMPLETE_VALUE: Final = int(ProtocolStatus.REQUEST_COMPLETE)


def _bad_version(version: int) -> RemoteProtocolError:
    # Spec 3.3: "version: Identifies the FastCGI protocol version. This specification
    # documents FCGI_VERSION_1." Nothing after a foreign header can be trusted.
    return RemoteProtocolError(
        f"record header has version byte {version} (0x{version:02x}), not {FCGI_VERSION_1}: "
        f"the peer does not speak FastCGI 1.0"
    )


_ROLES: Final[dict[int, Role]] = {role.value: role for role in Role}
_PROTOCOL_STATUSES: Final[dict[int, ProtocolStatus]] = {s.value: s for s in ProtocolStatus}
_KNOWN_TYPES: Final = frozenset(t.value for t in RecordType)
_MANAGEMENT: Final = frozenset(
    {RecordType.GET_VALUES, RecordType.GET_VALUES_RESULT, RecordType.UNKNOWN_TYPE}
)
_MAX_APP_STATUS: Final = 0xFFFF_FFFF
# Checked limits by (max_params_size, max_name_length, max_value_length,
# max_concurrent_requests).
_CHECKED_LIMITS: Final[dict[tuple[int, int, int, int], tuple[PairLimits, int]]] = {}
# Kinds as module globals: one dictionary look-up instead of two on the hot paths.
_PARAMS: Final = Kind.PARAMS
_PARAMS_END: Final = Kind.PARAMS_END
_STDIN: Final = Kind.STDIN
_STDIN_END: Final = Kind.STDIN_END
_DATA: Final = Kind.DATA
_DATA_END: Final = Kind.DATA_END
_ABORT_REQUEST: Final = Kind.ABORT_REQUEST
_STDOUT: Final = Kind.STDOUT
_STDOUT_END: Final = Kind.STDOUT_END
_STDERR: Final = Kind.STDERR
_STDERR_END: Final = Kind.STDERR_END
_END_REQUEST: Final = Kind.END_REQUEST
# The table's answers for the kinds received on the hot path (see NEXT in _state.py).
_PARAMS_NEXT: Final = NEXT[Kind.PARAMS]
_PARAMS_END_NEXT: Final = NEXT[Kind.PARAMS_END]
_STDIN_NEXT: Final = NEXT[Kind.STDIN]
_STDIN_END_NEXT: Final = NEXT[Kind.STDIN_END]
# Record types as plain ints: comparing an int with an IntEnum member is much slower.
_BEGIN_REQUEST_TYPE: Final = int(RecordType.BEGIN_REQUEST)
_PARAMS_TYPE: Final = int(RecordType.PARAMS)
_STDIN_TYPE: Final = int(RecordType.STDIN)
#: The header's version and type bytes as one big-endian number, for the records next_event
#: handles itself: one comparison checks both.
_V1_BEGIN_REQUEST: Final = FCGI_VERSION_1 << 8 | _BEGIN_REQUEST_TYPE
_V1_PARAMS: Final = FCGI_VERSION_1 << 8 | _PARAMS_TYPE
_V1_STDIN: Final = FCGI_VERSION_1 << 8 | _STDIN_TYPE
_BEGIN_STATE: Final = (BEGIN_STATE[False], BEGIN_STATE[True])
_STDOUT_IDLE: Final = State.STDOUT_IDLE
_STDERR_IDLE: Final = State.STDERR_IDLE
# What a request's params are once its Params event is out: nothing more may arrive.
_NO_PARAMS: Final[dict[bytes, bytes]] = {}


class _Request(RequestMachine):
    """One active request: its state machine plus what the connection keeps for it.

    Made by :func:`_new_request`, which sets every field.
    """

    __slots__ = ("decoder", "params", "params_size")

    #: Holds a pair that straddles PARAMS records until its last byte comes.
    decoder: PairDecoder | None
    #: Decoded PARAMS so far (server side only).
    params: dict[bytes, bytes]
    #: Bytes of PARAMS stream so far, for max_params_size.
    params_size: int

    # Neither an __init__ of its own nor RequestMachine's: the maker stores the fields, which
    # costs less than the call (next_event does it inline, once per request).
    __init__ = object.__init__


def _new_request(input: State) -> _Request:
    """A request whose input track is in *input*, the others idle."""
    request: _Request = _Request()
    request.input = input
    request.stdout = _STDOUT_IDLE
    request.stderr = _STDERR_IDLE
    request.params = {}
    request.params_size = 0
    request.decoder = None
    return request


def _empty(record_type: int, request_id: int) -> bytes:
    """The empty record that ends a stream."""
    return HEADER.pack(FCGI_VERSION_1, record_type, request_id, 0, 0)


def _int_in(value: object, low: int, high: int) -> bool:
    """Whether *value* is an int (not a bool) from *low* to *high*.

    Events are plain dataclasses, and callers without a type checker can put anything in
    them: what goes on the wire is checked at run time, whatever the annotations say.
    """
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _positive_int(name: str, value: int, maximum: int = 2**63) -> int:
    if type(value) is not int or not 0 < value <= maximum:
        raise ValueError(f"{name} must be an integer from 1 to {maximum}, not {value!r}")
    return value


def _checked_limits(
    max_params_size: int, max_name_length: int, max_value_length: int, max_concurrent: int
) -> tuple[PairLimits, int]:
    """Connection's limits, checked: ``(pair limits, max_concurrent_requests)``."""
    return (
        PairLimits(
            max_size=_positive_int("max_params_size", max_params_size),
            max_name_length=_positive_int("max_name_length", max_name_length),
            max_value_length=_positive_int("max_value_length", max_value_length),
        ),
        _positive_int("max_concurrent_requests", max_concurrent, MAX_REQUEST_ID),
    )


_DEFAULT_LIMITS: Final = _checked_limits(
    DEFAULT_MAX_PARAMS_SIZE,
    DEFAULT_MAX_NAME_LENGTH,
    DEFAULT_MAX_VALUE_LENGTH,
    DEFAULT_MAX_CONCURRENT_REQUESTS,
)


@final
class Connection:
    """One end of one FastCGI connection, without the I/O.

    Feed it what the peer sent with :meth:`receive_data`, then call :meth:`next_event` until it
    returns :data:`NEED_DATA`; turn what you want to say into bytes with :meth:`send` and write
    them. The connection checks everything the FastCGI 1.0 specification requires of the peer
    (a :class:`RemoteProtocolError`) and of you (a :class:`LocalProtocolError`), one request at
    a time or many multiplexed.

    Limits bound what a peer can make it store; exceeding one is a
    :class:`RemoteProtocolError` that names it, raised as soon as the bytes that break it
    arrive (a declared length is checked before any of its bytes are waited for).

    :param side: :data:`SERVER` for the application's end, :data:`CLIENT` for the web
        server's end.
    :param max_params_size: most bytes of PARAMS stream one request may send. Default 1 MiB
        (:data:`DEFAULT_MAX_PARAMS_SIZE`): holds the largest header block nginx (32 KiB) or
        Apache (about 800 KiB) forwards with their default limits.
    :param max_concurrent_requests: most requests active at once on this connection. A
        server refuses a BEGIN_REQUEST beyond it as a protocol error: it is the value a driver
        should advertise as ``FCGI_MAX_REQS``. A client refuses to send one. Default 100
        (:data:`DEFAULT_MAX_CONCURRENT_REQUESTS`): nginx and Apache send one at a time, and
        100 caps a multiplexing peer at 100 x *max_params_size* of parameters.
    :param max_name_length: longest parameter name, in bytes. Default 16 KiB
        (:data:`DEFAULT_MAX_NAME_LENGTH`): twice the longest header line nginx and Apache
        accept by default.
    :param max_value_length: longest parameter value, in bytes. Default 1 MiB
        (:data:`DEFAULT_MAX_VALUE_LENGTH`): front ends merge repeated headers into one value,
        so one value may be most of the PARAMS stream.
    :raises ValueError: if a limit is not a positive integer.
    """

    __slots__ = (
        "__weakref__",
        "_buffer",
        "_eof",
        "_error",
        "_max_concurrent",
        "_pair_limits",
        "_pending_get_values",
        "_pending_unknown",
        "_receivers",
        "_requests",
        "_senders",
        "_server",
        "_side",
    )

    def __init__(
        self,
        side: Side,
        *,
        max_params_size: int = DEFAULT_MAX_PARAMS_SIZE,
        max_concurrent_requests: int = DEFAULT_MAX_CONCURRENT_REQUESTS,
        max_name_length: int = DEFAULT_MAX_NAME_LENGTH,
        max_value_length: int = DEFAULT_MAX_VALUE_LENGTH,
    ) -> None:
        # Identity tests, not a look-up keyed by side: an Enum member hashes in Python code.
        if side is SERVER:
            self._server = True
            self._receivers = _SERVER_RECEIVERS
            self._senders = _SERVER_SENDERS
        elif side is CLIENT:
            self._server = False
            self._receivers = _CLIENT_RECEIVERS
            self._senders = _CLIENT_SENDERS
        else:
            raise TypeError(f"side must be SERVER or CLIENT, not {side!r}")
        self._side = side
        if (
            max_params_size is DEFAULT_MAX_PARAMS_SIZE
            and max_name_length is DEFAULT_MAX_NAME_LENGTH
            and max_value_length is DEFAULT_MAX_VALUE_LENGTH
            and max_concurrent_requests is DEFAULT_MAX_CONCURRENT_REQUESTS
        ):
            # The defaults, not given: checked once, at import.
            checked = _DEFAULT_LIMITS
        else:
            key = (max_params_size, max_name_length, max_value_length, max_concurrent_requests)
            cached = _CHECKED_LIMITS.get(key)
            if cached is None:
                cached = _checked_limits(*key)
                if len(_CHECKED_LIMITS) < 64:
                    # Checked once per distinct configuration, not per connection (nginx
                    # opens a connection per request unless fastcgi_keep_conn is on).
                    _CHECKED_LIMITS[key] = cached
            checked = cached
        self._pair_limits, self._max_concurrent = checked
        # ReceiveBuffer's __init__, inlined: one call less per connection.
        self._buffer = buffer = _new_buffer(ReceiveBuffer)
        buffer.data = b""
        buffer.start = buffer.end = 0
        buffer.need = 8  # HEADER_LENGTH
        self._requests: dict[int, _Request] = {}
        self._eof = False
        self._error: RemoteProtocolError | None = None
        # Management queries sent and not yet answered (spec 4): a GET_VALUES_RESULT or an
        # UNKNOWN_TYPE is an answer, and an answer to nothing is an error. Counted per record
        # type, so at most 256 counters whatever the peer sends.
        self._pending_get_values = 0
        self._pending_unknown: dict[int, int] = _NO_PENDING

    def __repr__(self) -> str:
        return (
            f"<Connection {self._side.name} active_requests={sorted(self._requests)}"
            f"{' EOF' if self._eof else ''}{' ERROR' if self._error else ''}>"
        )

    # -- state -------------------------------------------------------------------------------

    @property
    def side(self) -> Side:
        """Which end of the connection this is."""
        return self._side

    @property
    def active_requests(self) -> KeysView[int]:
        """The ids of the active requests: a live, read-only view.

        An id becomes active with BEGIN_REQUEST and inactive with END_REQUEST (spec 3.3).
        """
        return self._requests.keys()

    def request_state(self, request_id: int) -> RequestState | None:
        """Where request *request_id* stands, or ``None`` if it is not active."""
        request = self._requests.get(request_id)
        return None if request is None else request.snapshot()

    # -- receiving ---------------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Store bytes received from the peer; ``b""`` means the peer closed the connection.

        Nothing is parsed here: call :meth:`next_event` for that, until :data:`NEED_DATA`,
        before feeding more. The buffer then never holds more than one incomplete record
        (at most 65,798 bytes) plus one read, so feed reads of a bounded size.

        :raises LocalProtocolError: if data comes after ``b""``.
        """
        if data:
            if self._eof:
                raise LocalProtocolError("receive_data() was given data after b'' (EOF)")
            if self._error is None:
                buffer = self._buffer
                if type(data) is bytes and buffer.start == buffer.end:
                    # ReceiveBuffer.feed's usual case, inlined (it runs once per read): all
                    # fed so far is consumed, and an immutable read is kept as it is.
                    buffer.data = data
                    buffer.start = 0
                    buffer.end = len(data)
                else:
                    buffer.feed(data)
        else:
            self._eof = True

    def next_event(self) -> Event | NeedData:
        """Parse and return the next event, or :data:`NEED_DATA`.

        After ``receive_data(b"")`` and the last complete record, returns
        :class:`ConnectionClosed`, on this call and every later one.

        :raises RemoteProtocolError: if the peer broke the protocol. The connection is dead
            then: this error is raised again by every later call.
        """
        buffer = self._buffer
        try:
            while True:
                # Framing, inlined because it runs once per record: the buffer holds the
                # bytes, the header layout comes from _records.py.
                start = buffer.start
                stop = buffer.end
                if stop - start < buffer.need:
                    # After an error, need is too big to meet (see below): the error is
                    # checked here rather than on every call.
                    if self._error is not None:
                        raise self._error.with_traceback(None)
                    return NEED_DATA if not self._eof else self._at_eof()
                data = buffer.data
                # The version and type bytes as one number, so that one comparison below
                # checks both for the usual records.
                version_type, request_id, length, padding = _unpack_header_vt(data, start)
                # Spec 3.3: receivers must "interpret the paddingLength and skip the
                # paddingData", whatever its length (0 to 255).
                offset = start + 8  # HEADER_LENGTH, as a constant
                end = offset + length + padding
                if end > stop:
                    if version_type >> 8 != FCGI_VERSION_1:
                        # A foreign header's length means nothing: refuse it without
                        # waiting for the bytes it announces.
                        raise _bad_version(version_type >> 8)
                    buffer.need = end - start
                    return NEED_DATA if not self._eof else self._at_eof()
                buffer.need = 8  # HEADER_LENGTH
                buffer.start = end
                if self._server:
                    # A server's usual records are handled here rather than by a method
                    # each: they are most of what it receives, and a call costs more than
                    # the work of a small record.
                    # Each test is written 'if not this: pass, else: handle it' rather than
                    # 'if this: handle it'. A handler is long, so the jump past it needs an
                    # EXTENDED_ARG, and CPython 3.11 specializes a comparison only when a jump
                    # follows it directly: the other way round, each test costs several times
                    # more.
                    if version_type != _V1_STDIN:
                        pass
                    else:
                        try:
                            request = self._requests[request_id]
                        except KeyError:
                            if not request_id:
                                raise self._misdirected(_STDIN_TYPE, 0) from None
                            # Spec 3.3: "While a request ID R is inactive, the application
                            # ignores records with requestId == R, except for
                            # FCGI_BEGIN_REQUEST records".
                            continue
                        if length:
                            try:
                                request.input = _STDIN_NEXT[request.input]
                            except KeyError:
                                raise self._refused(request_id, request, _STDIN) from None
                            # make_stdin, inlined (see _events.py).
                            event = _BlankStdin()
                            event.request_id = request_id
                            if type(data) is bytes:
                                event.data = data[offset : offset + length]
                            else:
                                event.data = memoryview(data)[offset : offset + length].tobytes()
                            event.__class__ = Stdin
                            return event  # type: ignore[no-any-return]
                        try:
                            request.input = _STDIN_END_NEXT[request.input]
                        except KeyError:
                            raise self._refused(request_id, request, _STDIN_END) from None
                        event = _STDIN_ENDS.get(request_id)
                        if event is None:
                            event = make_stdin_end(request_id)
                            if len(_STDIN_ENDS) < _MAX_CACHED:
                                _STDIN_ENDS[request_id] = event
                        return event
                    if version_type != _V1_PARAMS:
                        pass
                    else:
                        try:
                            request = self._requests[request_id]
                        except KeyError:
                            if not request_id:
                                raise self._misdirected(_PARAMS_TYPE, 0) from None
                            continue  # Spec 3.3 again.
                        if length:
                            try:
                                request.input = _PARAMS_NEXT[request.input]
                            except KeyError:
                                raise self._refused(request_id, request, _PARAMS) from None
                            base = request.params_size
                            size = base + length
                            limits = self._pair_limits
                            if size > limits.max_size:
                                raise RemoteProtocolError(
                                    f"PARAMS stream of request {request_id} goes past "
                                    f"{limits.size_limit}"
                                )
                            if type(data) is bytes:
                                content = data[offset : offset + length]
                            else:
                                content = memoryview(data)[offset : offset + length].tobytes()
                            if not base and limits.fast and content.isascii():
                                # Nginx's case, the whole stream in one record with one-byte
                                # lengths: the first loop of decode_ascii (see there), inlined.
                                # (Nothing received before: no pairs yet, no pair pending.)
                                params = request.params
                                pos = 0
                                last = length - 1
                                shifted = content[1:]
                                while pos < last:
                                    start = pos + 2
                                    middle = start + content[pos]
                                    params[content[start:middle]] = content[
                                        middle : (pos := middle + shifted[pos])
                                    ]
                                if pos != length:
                                    # Cut short: start again, the usual way.
                                    params.clear()
                                    self._receive_pairs(request_id, request, content)
                                    continue
                                request.params_size = size
                                # The empty PARAMS record nearly always follows in the same
                                # read: when it is there whole, it is taken here rather than
                                # by another turn of the loop. The test is the loop's own:
                                # version 1, type PARAMS, this request, no content.
                                if stop - end < 8:
                                    continue
                                version_type, next_id, length, padding = _unpack_header_vt(
                                    data, end
                                )
                                if (
                                    version_type != _V1_PARAMS
                                    or next_id != request_id
                                    or length
                                    or end + 8 + padding > stop
                                ):
                                    continue
                                buffer.start = end + 8 + padding
                            else:
                                self._receive_pairs(request_id, request, content)
                                continue
                        try:
                            request.input = _PARAMS_END_NEXT[request.input]
                        except KeyError:
                            raise self._refused(request_id, request, _PARAMS_END) from None
                        params = request.params
                        if request.decoder is not None:
                            request.decoder.close()
                            request.decoder = None
                        request.params = _NO_PARAMS
                        # make_params, inlined (see _events.py).
                        event = _BlankParams()
                        event.request_id = request_id
                        event.params = params
                        event.__class__ = Params
                        return event  # type: ignore[no-any-return]
                    if version_type != _V1_BEGIN_REQUEST:
                        pass
                    else:
                        requests = self._requests
                        if (
                            request_id in requests
                            or not request_id
                            or length != 8
                            or len(requests) >= self._max_concurrent
                        ):
                            raise self._bad_begin_request(request_id, length)
                        role_value, flags = _unpack_begin(data, offset)
                        # Spec 5.1: "flags & FCGI_KEEP_CONN"; the other bits are reserved and
                        # ignored.
                        keep_conn = _KEEP_CONN[flags]
                        begin = _BEGIN_REQUESTS.get(request_id)
                        if (
                            begin is None
                            or begin.role != role_value
                            or begin.keep_conn is not keep_conn
                        ):
                            # Spec 5.5: a role the application does not know is still a
                            # request, rejected with FCGI_UNKNOWN_ROLE; so an unknown value is
                            # delivered as a plain int, not refused.
                            begin = make_begin_request(
                                request_id, _ROLES.get(role_value, role_value), keep_conn
                            )
                            if len(_BEGIN_REQUESTS) < _MAX_CACHED:
                                _BEGIN_REQUESTS[request_id] = begin
                        # _new_request, inlined.
                        request = _Request()
                        request.input = _BEGIN_STATE[begin.role is _FILTER]
                        request.stdout = _STDOUT_IDLE
                        request.stderr = _STDERR_IDLE
                        request.params = {}
                        request.params_size = 0
                        request.decoder = None
                        requests[request_id] = request
                        return begin
                version = version_type >> 8
                if version != FCGI_VERSION_1:
                    raise _bad_version(version)
                record_type = version_type & 0xFF
                if not request_id:
                    return self._receive_management(record_type, offset, length)
                receiver = self._receivers.get(record_type)
                if receiver is None:
                    raise self._misdirected(record_type, request_id)
                event = receiver(self, request_id, offset, length)
                if event is not None:
                    return event
        except RemoteProtocolError as exc:
            self._error = exc
            # Nothing more is parsed: every later call takes the NEED_DATA path, which
            # raises the error again. No data is fed after an error, so need is not used
            # for anything else.
            buffer.need = _DEAD
            raise

    def _bad_begin_request(self, request_id: int, length: int) -> RemoteProtocolError:
        """Why a BEGIN_REQUEST record cannot start a request."""
        if not request_id:
            return self._misdirected(_BEGIN_REQUEST_TYPE, 0)
        if request_id in self._requests:
            # Spec 3.3: an inactive id "becomes active when the application receives a record
            # {FCGI_BEGIN_REQUEST, R, ...}"; an active one cannot begin again.
            return RemoteProtocolError(
                f"BEGIN_REQUEST record for request {request_id}, which is already active"
            )
        if length != 8:
            # Spec 5.1: the body is FCGI_BeginRequestBody, 8 bytes.
            return RemoteProtocolError(
                f"BEGIN_REQUEST record for request {request_id} has {length} bytes of "
                f"content, not 8"
            )
        return RemoteProtocolError(
            f"BEGIN_REQUEST record for request {request_id} while {len(self._requests)} "
            f"requests are active: max_concurrent_requests={self._max_concurrent}"
        )

    def _receive_pairs(self, request_id: int, request: _Request, content: bytes) -> None:
        """Decode a non-empty PARAMS record's content into the request's params, the usual
        way: for what the quick loop in next_event does not take or leaves."""
        limits = self._pair_limits
        base = request.params_size
        request.params_size = base + len(content)
        decoder = request.decoder
        if decoder is not None:
            decoder.feed(content)
            return
        request.decoder = decode_into(
            request.params, content, base, limits, f"PARAMS stream of request {request_id}"
        )

    def _at_eof(self) -> ConnectionClosed:
        """What next_event returns when the peer closed and no complete record is left."""
        missing = self._buffer.missing()
        if missing is None:
            return _CONNECTION_CLOSED
        raise RemoteProtocolError(f"connection closed {missing}")

    def _refused(self, request_id: int, request: _Request, kind: Kind) -> RemoteProtocolError:
        return RemoteProtocolError(request.explain(f"{kind.label} for request {request_id}", kind))

    def _misdirected(self, record_type: int, request_id: int) -> RemoteProtocolError:
        """The error for a record type that has no business arriving here."""
        if record_type not in _KNOWN_TYPES:
            if request_id:
                return RemoteProtocolError(
                    f"record of unknown type {record_type} for request {request_id}: only "
                    f"management records (request id 0) may be of a type the receiver "
                    f"does not know"
                )
            return RemoteProtocolError(
                f"management record of unknown type {record_type} sent to a client: spec "
                f"4.2 has only the application answer those"
            )
        known = RecordType(record_type)
        if SENT_BY[known] is self._side:
            sender = "application" if self._side is SERVER else "web server"
            return RemoteProtocolError(
                f"{known.name} record received by the {self._side.name} side: only the "
                f"{sender} sends {known.name}"
            )
        if known in _MANAGEMENT:
            return RemoteProtocolError(
                f"{known.name} record with request id {request_id}: management records "
                f"have request id 0"
            )
        return RemoteProtocolError(
            f"{known.name} record with request id 0, which is reserved for management records"
        )

    # Server side: records from the web server.

    def _receive_data(self, request_id: int, offset: int, length: int) -> Event | None:
        request = self._requests.get(request_id)
        if request is None:
            return None  # Spec 3.3: records for an inactive id are ignored.
        if length:
            if not request.advance(_DATA):
                raise self._refused(request_id, request, _DATA)
            return make_data(request_id, self._buffer.content(offset, length))
        if not request.advance(_DATA_END):
            raise self._refused(request_id, request, _DATA_END)
        return make_data_end(request_id)

    def _receive_abort_request(self, request_id: int, offset: int, length: int) -> Event | None:
        request = self._requests.get(request_id)
        if request is None:
            # Spec 3.3 again. This is also the usual race: the web server aborts a request
            # whose END_REQUEST is already on its way.
            return None
        if length:
            # Spec 5.4 defines {FCGI_ABORT_REQUEST, R} with no content; content means the
            # sender frames records differently from us, and nothing after can be trusted.
            raise RemoteProtocolError(
                f"ABORT_REQUEST record for request {request_id} has {length} bytes of "
                f"content, not 0"
            )
        if not request.advance(_ABORT_REQUEST):
            raise self._refused(request_id, request, _ABORT_REQUEST)
        return make_abort_request(request_id)

    # Client side: records from the application.

    def _receive_stdout(self, request_id: int, offset: int, length: int) -> Event | None:
        request = self._requests.get(request_id)
        if request is None:
            # Spec 3.3's rule, applied by the client too: records only belong to a request
            # it began and that has not ended; see the reference docs for why the others are
            # skipped rather than refused.
            return None
        if length:
            if not request.advance(_STDOUT):
                raise self._refused(request_id, request, _STDOUT)
            return make_stdout(request_id, self._buffer.content(offset, length))
        if not request.advance(_STDOUT_END):
            raise self._refused(request_id, request, _STDOUT_END)
        return make_stdout_end(request_id)

    def _receive_stderr(self, request_id: int, offset: int, length: int) -> Event | None:
        request = self._requests.get(request_id)
        if request is None:
            return None  # As for STDOUT.
        if length:
            if not request.advance(_STDERR):
                raise self._refused(request_id, request, _STDERR)
            return make_stderr(request_id, self._buffer.content(offset, length))
        if not request.advance(_STDERR_END):
            raise self._refused(request_id, request, _STDERR_END)
        return make_stderr_end(request_id)

    def _receive_end_request(self, request_id: int, offset: int, length: int) -> Event | None:
        request = self._requests.get(request_id)
        if request is None:
            return None  # As for STDOUT.
        if length != 8:
            # Spec 5.5: the body is FCGI_EndRequestBody, 8 bytes.
            raise RemoteProtocolError(
                f"END_REQUEST record for request {request_id} has {length} bytes of content, not 8"
            )
        app_status, status_value = self._buffer.unpack(END_REQUEST_BODY, offset)
        protocol_status = _PROTOCOL_STATUSES.get(status_value)
        if protocol_status is None:
            raise RemoteProtocolError(
                f"END_REQUEST record for request {request_id} has protocolStatus "
                f"{status_value}, which spec 5.5 does not define"
            )
        # Every active state accepts END_REQUEST (see _state.py), open streams included.
        request.advance(_END_REQUEST)
        del self._requests[request_id]
        return make_end_request(request_id, app_status, protocol_status)

    # Management records (request id 0), both sides.

    def _receive_management(self, record_type: int, offset: int, length: int) -> Event:
        if self._side is SERVER:
            if record_type == RecordType.GET_VALUES:
                # Spec 4.1: "a sequence of name-value pairs with empty values"; the values
                # are not used, but the pairs must be well formed and within the limits.
                names = self._decode_management_pairs("GET_VALUES record", offset, length)
                self._pending_get_values += 1
                return GetValues(tuple(names))
            if record_type not in _KNOWN_TYPES:
                # Spec 4.2: "When an application receives a management record whose type T
                # it does not understand, the application responds with
                # {FCGI_UNKNOWN_TYPE, 0, {T}}." Its content, if any, means nothing to us.
                pending = self._pending_unknown
                if pending is _NO_PENDING:
                    pending = self._pending_unknown = {}
                pending[record_type] = pending.get(record_type, 0) + 1
                return UnknownManagementRecord(record_type)
            raise self._misdirected(record_type, 0)
        if record_type == RecordType.GET_VALUES_RESULT:
            if not self._pending_get_values:
                raise RemoteProtocolError(
                    "GET_VALUES_RESULT record, but no GET_VALUES record was sent"
                )
            values = self._decode_management_pairs("GET_VALUES_RESULT record", offset, length)
            self._pending_get_values -= 1
            return GetValuesResult(values)
        if record_type == RecordType.UNKNOWN_TYPE:
            if length != UNKNOWN_TYPE_BODY.size:
                # Spec 4.2: the body is FCGI_UnknownTypeBody, 8 bytes.
                raise RemoteProtocolError(
                    f"UNKNOWN_TYPE record has {length} bytes of content, not "
                    f"{UNKNOWN_TYPE_BODY.size}"
                )
            (unknown_type,) = self._buffer.unpack(UNKNOWN_TYPE_BODY, offset)
            pending = self._pending_unknown
            count = pending.get(unknown_type, 0)
            if not count:
                raise RemoteProtocolError(
                    f"UNKNOWN_TYPE record for type {unknown_type}, but no management record "
                    f"of that type was sent"
                )
            if count == 1:
                del pending[unknown_type]
            else:
                pending[unknown_type] = count - 1
            return UnknownType(unknown_type)
        raise self._misdirected(record_type, 0)

    def _decode_management_pairs(self, label: str, offset: int, length: int) -> dict[bytes, bytes]:
        return decode_pairs(
            self._buffer.content(offset, length),
            max_name_length=self._pair_limits.max_name_length,
            max_value_length=self._pair_limits.max_value_length,
            label=label,
        )

    # -- sending -----------------------------------------------------------------------------

    def send(self, event: Event) -> bytes:
        """The bytes that say *event* to the peer; write them in the order they are returned.

        A server sends :class:`Stdout`, :class:`StdoutEnd`, :class:`Stderr`,
        :class:`StderrEnd`, :class:`EndRequest`, :class:`GetValuesResult` (to answer a
        :class:`GetValues`) and :class:`UnknownType` (to answer an
        :class:`UnknownManagementRecord`). A client sends :class:`BeginRequest`,
        :class:`Params`, :class:`Stdin`, :class:`StdinEnd`, :class:`Data`, :class:`DataEnd`,
        :class:`AbortRequest`, :class:`GetValues` and :class:`UnknownManagementRecord`.

        Data of any length is cut into records of at most 65535 bytes, each padded to a
        multiple of 8. :class:`EndRequest` first ends the STDOUT and STDERR streams left open
        (and sends an empty STDOUT stream for a completed request that wrote none), then
        makes the id inactive: records the peer still sends for it are ignored.

        :raises LocalProtocolError: if *event* cannot be sent now: the other side's event, an
            inactive request, out of order, a stream already ended, empty data, a value out
            of range. Nothing changes then; the connection stays usable.
        """
        sender = self._senders.get(type(event))
        if sender is None:
            if type(event) in _ALL_EVENTS:
                raise LocalProtocolError(
                    f"the {self._side.name} side cannot send {type(event).__name__}"
                )
            raise LocalProtocolError(f"{event!r} is not a FastCGI event")
        if self._error is not None:
            raise LocalProtocolError(
                f"cannot send on a connection that failed with a RemoteProtocolError: {self._error}"
            )
        return sender(self, event)

    def _active(self, request_id: int, event: Event) -> _Request:
        request = self._requests.get(request_id)
        if request is None:
            raise self._inactive(request_id, event)
        return request

    def _inactive(self, request_id: int, event: Event) -> LocalProtocolError:
        return LocalProtocolError(
            f"cannot send {type(event).__name__} for request {request_id}, which is not active"
        )

    def _commit(self, request_id: int, request: _Request, kind: Kind, event: Event) -> None:
        if not request.advance(kind):
            raise LocalProtocolError(
                request.explain(
                    f"cannot send {type(event).__name__} for request {request_id}", kind
                )
            )

    def _send_stream(
        self,
        event: Stdin | Data | Stdout | Stderr,
        record_type: RecordType,
        kind: Kind,
        end: str,
    ) -> bytes:
        request_id = event.request_id
        request = self._active(request_id, event)
        data = event.data
        if not data:
            # Spec 3.3: a stream is "zero or more non-empty records ... followed by an empty
            # record": an empty record would end the stream, so empty data is a mistake.
            raise LocalProtocolError(
                f"cannot send {type(event).__name__} with no data: end the stream with {end}"
            )
        parts: list[bytes | bytearray | memoryview] = []
        encode_stream(parts, record_type, request_id, data)
        self._commit(request_id, request, kind, event)
        return b"".join(parts)

    def _send_end_of_stream(
        self, event: StdinEnd | DataEnd | StdoutEnd | StderrEnd, record_type: RecordType, kind: Kind
    ) -> bytes:
        request_id = event.request_id
        request = self._active(request_id, event)
        self._commit(request_id, request, kind, event)
        return _empty(record_type, request_id)

    # Server side.

    def _send_stdout(self, event: Event) -> bytes:
        assert isinstance(event, Stdout)
        return self._send_stream(event, RecordType.STDOUT, Kind.STDOUT, "StdoutEnd")

    def _send_stdout_end(self, event: Event) -> bytes:
        assert isinstance(event, StdoutEnd)
        return self._send_end_of_stream(event, RecordType.STDOUT, Kind.STDOUT_END)

    def _send_stderr(self, event: Event) -> bytes:
        assert isinstance(event, Stderr)
        return self._send_stream(event, RecordType.STDERR, Kind.STDERR, "StderrEnd")

    def _send_stderr_end(self, event: Event) -> bytes:
        assert isinstance(event, StderrEnd)
        return self._send_end_of_stream(event, RecordType.STDERR, Kind.STDERR_END)

    def _send_end_request(self, event: EndRequest) -> bytes:
        request_id = event.request_id
        request = self._requests.get(request_id)
        if request is None:
            raise self._inactive(request_id, event)
        app_status = event.app_status
        if (type(app_status) is not int or not 0 <= app_status <= _MAX_APP_STATUS) and not _int_in(
            app_status, 0, _MAX_APP_STATUS
        ):
            # Spec 5.5: appStatusB3..B0, four bytes. (An exact int is checked without a call.)
            raise LocalProtocolError(
                f"EndRequest.app_status must be an int from 0 to {_MAX_APP_STATUS}, "
                f"not {app_status!r}"
            )
        protocol_status = event.protocol_status
        if protocol_status is _REQUEST_COMPLETE:
            complete = True
            status = _REQUEST_COMPLETE_VALUE
        else:
            known = _PROTOCOL_STATUSES.get(protocol_status)
            if known is None:
                raise LocalProtocolError(
                    f"EndRequest.protocol_status must be a ProtocolStatus, not {protocol_status!r}"
                )
            complete = known is _REQUEST_COMPLETE
            status = known.value
        closing = CLOSING[request.input, request.stdout, request.stderr, complete]
        # Spec 3.3: the id "becomes inactive when the application sends a record
        # {FCGI_END_REQUEST, R, ...}". Every active state accepts END_REQUEST, and the
        # streams closing_kinds ends are ones the request may end now (see _state.py): the
        # request leaves the table, so there is no state left to move.
        del self._requests[request_id]
        # Spec 3.3: a stream ends with "an empty record (length == 0) of the stream type";
        # those records and END_REQUEST are packed at once.
        if closing is CLOSE_STDOUT:
            return _END_STDOUT_AND_REQUEST.pack(
                FCGI_VERSION_1, _STDOUT_TYPE, request_id, 0, 0,
                FCGI_VERSION_1, _END_REQUEST_TYPE, request_id, 8, 0, app_status, status,
            )  # fmt: skip
        record = _END_REQUEST_RECORD.pack(
            FCGI_VERSION_1, _END_REQUEST_TYPE, request_id, 8, 0, app_status, status
        )
        if closing is CLOSE_NONE:
            return record
        return b"".join([*[_empty(_STREAM_TYPE[kind], request_id) for kind in closing], record])

    def _send_get_values_result(self, event: Event) -> bytes:
        assert isinstance(event, GetValuesResult)
        self._check_management(event)
        if not self._pending_get_values:
            raise LocalProtocolError("cannot send GetValuesResult: no GetValues to answer")
        content = self._encode_management_pairs(event, event.values)
        self._pending_get_values -= 1
        return encode_record(RecordType.GET_VALUES_RESULT, 0, content)

    def _send_unknown_type(self, event: Event) -> bytes:
        assert isinstance(event, UnknownType)
        self._check_management(event)
        record_type = event.record_type
        pending = self._pending_unknown
        count = pending.get(record_type, 0)
        if not count:
            raise LocalProtocolError(
                f"cannot send UnknownType({record_type!r}): no management record of that "
                f"type was received"
            )
        if count == 1:
            del pending[record_type]
        else:
            pending[record_type] = count - 1
        return encode_record(RecordType.UNKNOWN_TYPE, 0, UNKNOWN_TYPE_BODY.pack(record_type))

    # Client side.

    def _send_begin_request(self, event: Event) -> bytes:
        assert isinstance(event, BeginRequest)
        request_id = event.request_id
        if not _int_in(request_id, 1, MAX_REQUEST_ID):
            # Spec 3.3: "Application records have a nonzero requestId"; two bytes of it.
            raise LocalProtocolError(
                f"BeginRequest.request_id must be an int from 1 to {MAX_REQUEST_ID}, "
                f"not {request_id!r}"
            )
        requests = self._requests
        if request_id in requests:
            raise LocalProtocolError(
                f"cannot send BeginRequest for request {request_id}, which is already active"
            )
        if len(requests) >= self._max_concurrent:
            raise LocalProtocolError(
                f"cannot send BeginRequest for request {request_id} while {len(requests)} "
                f"requests are active: max_concurrent_requests={self._max_concurrent}"
            )
        role = event.role
        if not _int_in(role, 0, 0xFFFF):
            # Spec 5.1: roleB1, roleB0.
            raise LocalProtocolError(f"BeginRequest.role must fit in two bytes, not {role!r}")
        role = _ROLES.get(role, role)
        requests[request_id] = _new_request(BEGIN_STATE[role is Role.FILTER])
        return HEADER.pack(
            FCGI_VERSION_1, RecordType.BEGIN_REQUEST, request_id, 8, 0
        ) + BEGIN_REQUEST_BODY.pack(role, FCGI_KEEP_CONN if event.keep_conn else 0)

    def _send_params(self, event: Event) -> bytes:
        assert isinstance(event, Params)
        request_id = event.request_id
        request = self._active(request_id, event)
        try:
            content = encode_pairs(event.params)
        except ValueError as exc:
            raise LocalProtocolError(
                f"cannot send Params for request {request_id}: {exc}"
            ) from None
        parts: list[bytes | bytearray | memoryview] = []
        encode_stream(parts, RecordType.PARAMS, request_id, content)
        # Spec 3.3: the stream ends with "an empty record (length == 0) of the stream type".
        parts.append(_empty(RecordType.PARAMS, request_id))
        self._commit(request_id, request, Kind.PARAMS_END, event)
        return b"".join(parts)

    def _send_stdin(self, event: Event) -> bytes:
        assert isinstance(event, Stdin)
        return self._send_stream(event, RecordType.STDIN, Kind.STDIN, "StdinEnd")

    def _send_stdin_end(self, event: Event) -> bytes:
        assert isinstance(event, StdinEnd)
        return self._send_end_of_stream(event, RecordType.STDIN, Kind.STDIN_END)

    def _send_data(self, event: Event) -> bytes:
        assert isinstance(event, Data)
        return self._send_stream(event, RecordType.DATA, Kind.DATA, "DataEnd")

    def _send_data_end(self, event: Event) -> bytes:
        assert isinstance(event, DataEnd)
        return self._send_end_of_stream(event, RecordType.DATA, Kind.DATA_END)

    def _send_abort_request(self, event: Event) -> bytes:
        assert isinstance(event, AbortRequest)
        request_id = event.request_id
        request = self._active(request_id, event)
        self._commit(request_id, request, Kind.ABORT_REQUEST, event)
        return _empty(RecordType.ABORT_REQUEST, request_id)

    def _send_get_values(self, event: Event) -> bytes:
        assert isinstance(event, GetValues)
        self._check_management(event)
        content = self._encode_management_pairs(event, [(name, b"") for name in event.names])
        self._pending_get_values += 1
        return encode_record(RecordType.GET_VALUES, 0, content)

    def _send_unknown_management_record(self, event: Event) -> bytes:
        assert isinstance(event, UnknownManagementRecord)
        self._check_management(event)
        record_type = event.record_type
        if not _int_in(record_type, 0, 0xFF):
            raise LocalProtocolError(
                f"UnknownManagementRecord.record_type must be an int from 0 to 255, "
                f"not {record_type!r}"
            )
        if record_type in _KNOWN_TYPES:
            raise LocalProtocolError(
                f"UnknownManagementRecord.record_type {record_type} is "
                f"{RecordType(record_type).name}, a type spec 8 defines"
            )
        pending = self._pending_unknown
        if pending is _NO_PENDING:
            pending = self._pending_unknown = {}
        pending[record_type] = pending.get(record_type, 0) + 1
        return _empty_management(record_type)

    def _check_management(
        self, event: GetValues | GetValuesResult | UnknownType | UnknownManagementRecord
    ) -> None:
        if event.request_id != 0:
            # Spec 3.3: "Management records have a requestId value of zero".
            raise LocalProtocolError(
                f"{type(event).__name__}.request_id must be 0 (management records have the "
                f"null request id), not {event.request_id!r}"
            )

    def _encode_management_pairs(
        self, event: Event, pairs: dict[bytes, bytes] | list[tuple[bytes, bytes]]
    ) -> bytes:
        try:
            content = encode_pairs(pairs)
        except ValueError as exc:
            raise LocalProtocolError(f"cannot send {type(event).__name__}: {exc}") from None
        if len(content) > MAX_CONTENT_LENGTH:
            # Spec 4.1 answers a query with one record, {FCGI_GET_VALUES_RESULT, 0, ...}, and
            # a record holds at most 65535 bytes.
            raise LocalProtocolError(
                f"cannot send {type(event).__name__}: its pairs take {len(content)} bytes, "
                f"more than the {MAX_CONTENT_LENGTH} of one record"
            )
        return content


def _empty_management(record_type: int) -> bytes:
    return HEADER.pack(FCGI_VERSION_1, record_type, 0, 0, 0)


_ALL_EVENTS: Final = frozenset(
    {
        AbortRequest,
        BeginRequest,
        ConnectionClosed,
        Data,
        DataEnd,
        EndRequest,
        GetValues,
        GetValuesResult,
        Params,
        Stderr,
        StderrEnd,
        Stdin,
        StdinEnd,
        Stdout,
        StdoutEnd,
        UnknownManagementRecord,
        UnknownType,
    }
)


_Receiver = Callable[[Connection, int, int, int], "Event | None"]
# Any: each sender takes the event type it is registered for in _SENDERS.
_Sender = Callable[[Connection, Any], bytes]

# Which records each side receives (STDIN and PARAMS: in next_event itself, for a server)
# and which events it sends: built once, so a connection costs little to create (nginx opens
# one per request unless fastcgi_keep_conn is on).
_SERVER_RECEIVERS: Final[dict[int, _Receiver]] = {
    RecordType.DATA: Connection._receive_data,
    RecordType.ABORT_REQUEST: Connection._receive_abort_request,
}
_CLIENT_RECEIVERS: Final[dict[int, _Receiver]] = {
    RecordType.STDOUT: Connection._receive_stdout,
    RecordType.STDERR: Connection._receive_stderr,
    RecordType.END_REQUEST: Connection._receive_end_request,
}

_SENDERS: Final[dict[Side, dict[type, _Sender]]] = {
    SERVER: {
        Stdout: Connection._send_stdout,
        StdoutEnd: Connection._send_stdout_end,
        Stderr: Connection._send_stderr,
        StderrEnd: Connection._send_stderr_end,
        EndRequest: Connection._send_end_request,
        GetValuesResult: Connection._send_get_values_result,
        UnknownType: Connection._send_unknown_type,
    },
    CLIENT: {
        BeginRequest: Connection._send_begin_request,
        Params: Connection._send_params,
        Stdin: Connection._send_stdin,
        StdinEnd: Connection._send_stdin_end,
        Data: Connection._send_data,
        DataEnd: Connection._send_data_end,
        AbortRequest: Connection._send_abort_request,
        GetValues: Connection._send_get_values,
        UnknownManagementRecord: Connection._send_unknown_management_record,
    },
}

_SERVER_SENDERS: Final = _SENDERS[SERVER]
_CLIENT_SENDERS: Final = _SENDERS[CLIENT]
