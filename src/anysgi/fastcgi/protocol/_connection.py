"""The :class:`Connection`: bytes in, events out; events in, bytes out. No I/O.

It owns the receive buffer, the table of active requests and the management-record
bookkeeping; what each request may do next is asked of ``_state.py``.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable, KeysView
from typing import Final, final

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
    make_abort_request,
    make_begin_request,
    make_data,
    make_data_end,
    make_end_request,
    make_params,
    make_stderr,
    make_stderr_end,
    make_stdin,
    make_stdin_end,
    make_stdout,
    make_stdout_end,
)
from ._pairs import PairDecoder, PairLimits, decode_into, decode_pairs, encode_pairs
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
    SENT_BY,
    SERVER,
    Kind,
    RequestMachine,
    RequestState,
    Side,
    State,
    closing_kinds,
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
_unpack_header: Final = HEADER.unpack_from
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
_REQUEST_COMPLETE: Final = ProtocolStatus.REQUEST_COMPLETE


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
# What a request's params are once its Params event is out: nothing more may arrive.
_NO_PARAMS: Final[dict[bytes, bytes]] = {}


class _Request(RequestMachine):
    """One active request: its state machine plus what the connection keeps for it."""

    __slots__ = ("decoder", "keep_conn", "params", "params_size", "role")

    def __init__(self, input: State, role: Role | int, keep_conn: bool) -> None:
        # Not super().__init__(): this runs once per request, and the call costs more than
        # the three stores it would make.
        self.input = input
        self.stdout = State.STDOUT_IDLE
        self.stderr = State.STDERR_IDLE
        self.role = role
        self.keep_conn = keep_conn
        #: Decoded PARAMS so far (server side only).
        self.params: dict[bytes, bytes] = {}
        #: Bytes of PARAMS stream so far, for max_params_size.
        self.params_size = 0
        #: Holds a pair that straddles PARAMS records until its last byte comes.
        self.decoder: PairDecoder | None = None


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
        if not isinstance(side, Side):
            raise TypeError(f"side must be SERVER or CLIENT, not {side!r}")
        self._side = side
        key = (max_params_size, max_name_length, max_value_length, max_concurrent_requests)
        checked = _CHECKED_LIMITS.get(key)
        if checked is None:
            checked = (
                PairLimits(
                    max_size=_positive_int("max_params_size", max_params_size),
                    max_name_length=_positive_int("max_name_length", max_name_length),
                    max_value_length=_positive_int("max_value_length", max_value_length),
                ),
                _positive_int("max_concurrent_requests", max_concurrent_requests, MAX_REQUEST_ID),
            )
            if len(_CHECKED_LIMITS) < 64:
                # Checked once per distinct configuration, not per connection (nginx opens a
                # connection per request unless fastcgi_keep_conn is on).
                _CHECKED_LIMITS[key] = checked
        self._pair_limits, self._max_concurrent = checked
        self._buffer = ReceiveBuffer()
        self._requests: dict[int, _Request] = {}
        self._eof = False
        self._error: RemoteProtocolError | None = None
        # Management queries sent and not yet answered (spec 4): a GET_VALUES_RESULT or an
        # UNKNOWN_TYPE is an answer, and an answer to nothing is an error. Counted per record
        # type, so at most 256 counters whatever the peer sends.
        self._pending_get_values = 0
        self._pending_unknown: dict[int, int] = {}
        # Which records this side receives and which events it sends: the tables are built
        # once, below the class, so a connection costs little to create (nginx opens one per
        # request unless fastcgi_keep_conn is on).
        self._receivers = _RECEIVERS[side]
        self._senders = _SENDERS[side]

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
                self._buffer.feed(data)
        else:
            self._eof = True

    def next_event(self) -> Event | NeedData:
        """Parse and return the next event, or :data:`NEED_DATA`.

        After ``receive_data(b"")`` and the last complete record, returns
        :class:`ConnectionClosed`, on this call and every later one.

        :raises RemoteProtocolError: if the peer broke the protocol. The connection is dead
            then: this error is raised again by every later call.
        """
        if self._error is not None:
            raise self._error.with_traceback(None)
        buffer = self._buffer
        receivers = self._receivers
        try:
            while True:
                # Framing, inlined because it runs once per record: the buffer holds the
                # bytes, the header layout comes from _records.py.
                start = buffer.start
                available = buffer.end - start
                if available < buffer.need:
                    return NEED_DATA if not self._eof else self._at_eof()
                version, record_type, request_id, length, padding = _unpack_header(
                    buffer.data, start
                )
                if version != FCGI_VERSION_1:
                    raise _bad_version(version)
                # Spec 3.3: receivers must "interpret the paddingLength and skip the
                # paddingData", whatever its length (0 to 255).
                offset = start + HEADER_LENGTH
                end = offset + length + padding
                if end - start > available:
                    buffer.need = end - start
                    return NEED_DATA if not self._eof else self._at_eof()
                buffer.need = HEADER_LENGTH
                buffer.start = end
                if request_id:
                    receiver = receivers.get(record_type)
                    if receiver is None:
                        raise self._misdirected(record_type, request_id)
                    event = receiver(self, request_id, offset, length)
                else:
                    event = self._receive_management(record_type, offset, length)
                if event is not None:
                    return event
        except RemoteProtocolError as exc:
            self._error = exc
            raise

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

    def _receive_begin_request(self, request_id: int, offset: int, length: int) -> Event:
        # Spec 3.3: an inactive id "becomes active when the application receives a record
        # {FCGI_BEGIN_REQUEST, R, ...}": this is the one record an inactive id may carry.
        requests = self._requests
        if request_id in requests:
            raise RemoteProtocolError(
                f"BEGIN_REQUEST record for request {request_id}, which is already active"
            )
        if length != 8:
            # Spec 5.1: the body is FCGI_BeginRequestBody, 8 bytes.
            raise RemoteProtocolError(
                f"BEGIN_REQUEST record for request {request_id} has {length} bytes of "
                f"content, not 8"
            )
        if len(requests) >= self._max_concurrent:
            raise RemoteProtocolError(
                f"BEGIN_REQUEST record for request {request_id} while {len(requests)} "
                f"requests are active: max_concurrent_requests={self._max_concurrent}"
            )
        role_value, flags = _unpack_begin(self._buffer.data, offset)
        # Spec 5.5: a role the application does not know is still a request, rejected with
        # FCGI_UNKNOWN_ROLE; so an unknown value is delivered as a plain int, not refused.
        role: Role | int = _ROLES.get(role_value, role_value)
        # Spec 5.1: "flags & FCGI_KEEP_CONN"; the other bits are reserved and ignored.
        keep_conn = bool(flags & FCGI_KEEP_CONN)
        requests[request_id] = _Request(BEGIN_STATE[role is _FILTER], role, keep_conn)
        return make_begin_request(request_id, role, keep_conn)

    def _receive_params(self, request_id: int, offset: int, length: int) -> Event | None:
        request = self._requests.get(request_id)
        if request is None:
            # Spec 3.3: "While a request ID R is inactive, the application ignores records
            # with requestId == R, except for FCGI_BEGIN_REQUEST records".
            return None
        if length:
            if not request.advance(_PARAMS):
                raise self._refused(request_id, request, _PARAMS)
            limits = self._pair_limits
            base = request.params_size
            size = base + length
            if size > limits.max_size:
                raise RemoteProtocolError(
                    f"PARAMS stream of request {request_id} goes past {limits.size_limit}"
                )
            request.params_size = size
            content = self._buffer.content(offset, length)
            decoder = request.decoder
            if decoder is None:
                request.decoder = decode_into(
                    request.params, content, base, limits, f"PARAMS stream of request {request_id}"
                )
            else:
                decoder.feed(content)
            return None
        if not request.advance(_PARAMS_END):
            raise self._refused(request_id, request, _PARAMS_END)
        params = request.params
        if request.decoder is not None:
            request.decoder.close()
            request.decoder = None
        request.params = _NO_PARAMS
        return make_params(request_id, params)

    def _receive_stdin(self, request_id: int, offset: int, length: int) -> Event | None:
        request = self._requests.get(request_id)
        if request is None:
            return None  # Spec 3.3: records for an inactive id are ignored.
        if length:
            if not request.advance(_STDIN):
                raise self._refused(request_id, request, _STDIN)
            return make_stdin(request_id, self._buffer.content(offset, length))
        if not request.advance(_STDIN_END):
            raise self._refused(request_id, request, _STDIN_END)
        return make_stdin_end(request_id)

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
            raise LocalProtocolError(
                f"cannot send {type(event).__name__} for request {request_id}, which is not active"
            )
        return request

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

    def _send_end_request(self, event: Event) -> bytes:
        assert isinstance(event, EndRequest)
        request_id = event.request_id
        request = self._active(request_id, event)
        app_status = event.app_status
        if not _int_in(app_status, 0, _MAX_APP_STATUS):
            # Spec 5.5: appStatusB3..B0, four bytes.
            raise LocalProtocolError(
                f"EndRequest.app_status must be an int from 0 to {_MAX_APP_STATUS}, "
                f"not {app_status!r}"
            )
        protocol_status = _PROTOCOL_STATUSES.get(event.protocol_status)
        if protocol_status is None:
            raise LocalProtocolError(
                f"EndRequest.protocol_status must be a ProtocolStatus, not "
                f"{event.protocol_status!r}"
            )
        record = _END_REQUEST_RECORD.pack(
            FCGI_VERSION_1, _END_REQUEST_TYPE, request_id, 8, 0, app_status, int(protocol_status)
        )
        closing = closing_kinds(request, protocol_status is _REQUEST_COMPLETE)
        if closing:
            # Spec 3.3: a stream ends with "an empty record (length == 0) of the stream type".
            record = b"".join(
                [*[_empty(_STREAM_TYPE[kind], request_id) for kind in closing], record]
            )
            for kind in closing:
                request.advance(kind)
        request.advance(_END_REQUEST)
        # Spec 3.3: the id "becomes inactive when the application sends a record
        # {FCGI_END_REQUEST, R, ...}".
        del self._requests[request_id]
        return record

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
        requests[request_id] = _Request(
            BEGIN_STATE[role is Role.FILTER], role, bool(event.keep_conn)
        )
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
_Sender = Callable[[Connection, Event], bytes]

_RECEIVERS: Final[dict[Side, dict[int, _Receiver]]] = {
    SERVER: {
        RecordType.BEGIN_REQUEST: Connection._receive_begin_request,
        RecordType.PARAMS: Connection._receive_params,
        RecordType.STDIN: Connection._receive_stdin,
        RecordType.DATA: Connection._receive_data,
        RecordType.ABORT_REQUEST: Connection._receive_abort_request,
    },
    CLIENT: {
        RecordType.STDOUT: Connection._receive_stdout,
        RecordType.STDERR: Connection._receive_stderr,
        RecordType.END_REQUEST: Connection._receive_end_request,
    },
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
