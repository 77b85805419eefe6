"""Events: what :meth:`Connection.next_event` returns and :meth:`Connection.send` takes.

Every event is a frozen, slotted dataclass with a ``request_id``. Events about one request carry
its id (1 to 65535); management events and :class:`ConnectionClosed` carry 0, the null request
id of spec 3.3.

Which end sends which event:

* web server (:data:`~anysgi.fastcgi.protocol.CLIENT`) to application
  (:data:`~anysgi.fastcgi.protocol.SERVER`): :class:`BeginRequest`, :class:`Params`,
  :class:`Stdin`, :class:`StdinEnd`, :class:`Data`, :class:`DataEnd`, :class:`AbortRequest`,
  :class:`GetValues`, :class:`UnknownManagementRecord`;
* application to web server: :class:`Stdout`, :class:`StdoutEnd`, :class:`Stderr`,
  :class:`StderrEnd`, :class:`EndRequest`, :class:`GetValuesResult`, :class:`UnknownType`;
* :class:`ConnectionClosed` is only ever received.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Final, TypeAlias, TypeVar, Union

from ._constants import ProtocolStatus, Role

__all__ = (
    "AbortRequest",
    "BeginRequest",
    "ConnectionClosed",
    "Data",
    "DataEnd",
    "EndRequest",
    "Event",
    "GetValues",
    "GetValuesResult",
    "Params",
    "Stderr",
    "StderrEnd",
    "Stdin",
    "StdinEnd",
    "Stdout",
    "StdoutEnd",
    "UnknownManagementRecord",
    "UnknownType",
)


@dataclass(frozen=True, slots=True)
class BeginRequest:
    """A request starts (BEGIN_REQUEST, spec 5.1).

    :param request_id: the new request's id, 1 to 65535, not already active.
    :param role: what the web server wants done. A role value this library does not know is
        received as a plain :class:`int`: the request still starts, and the application
        answers it with :class:`EndRequest` and
        :attr:`~anysgi.fastcgi.protocol.ProtocolStatus.UNKNOWN_ROLE`, as spec 5.5 says.
    :param keep_conn: the FCGI_KEEP_CONN flag. When false, spec 5.1 says "the application
        closes the connection after responding to this request"; doing so is the driver's job.
    """

    request_id: int
    role: Role | int = Role.RESPONDER
    keep_conn: bool = False


@dataclass(frozen=True, slots=True)
class Params:
    """The request's whole PARAMS stream: its CGI environment (spec 5.2).

    The receiving side delivers one :class:`Params` per request, when the stream's empty
    record arrives. Sending it writes every pair, the records they need and the empty record
    that ends the stream.

    :param request_id: the request.
    :param params: the name-value pairs, names and values as bytes, in the order sent. When the
        web server sends a name twice, the name keeps its first position and takes its last
        value, as PHP does. To *send* a repeated name (to test a server, say),
        :meth:`~anysgi.fastcgi.protocol.Connection.send` also takes a list of
        ``(name, value)`` tuples here.
    """

    request_id: int
    params: dict[bytes, bytes]


@dataclass(frozen=True, slots=True)
class Stdin:
    """Some bytes of the request body (one non-empty STDIN record, spec 5.3).

    :param request_id: the request.
    :param data: the bytes, never empty; sending splits them into records as needed.
    """

    request_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class StdinEnd:
    """The request body is complete (the empty STDIN record).

    :param request_id: the request.
    """

    request_id: int


@dataclass(frozen=True, slots=True)
class Data:
    """Some bytes of the file a Filter filters (one non-empty DATA record, spec 6.4).

    :param request_id: the request, whose role is
        :attr:`~anysgi.fastcgi.protocol.Role.FILTER`.
    :param data: the bytes, never empty.
    """

    request_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class DataEnd:
    """The Filter's file is complete (the empty DATA record).

    :param request_id: the request.
    """

    request_id: int


@dataclass(frozen=True, slots=True)
class AbortRequest:
    """The web server gives up on a request (ABORT_REQUEST, spec 5.4).

    The application still ends the request with :class:`EndRequest`: "After receiving
    {FCGI_ABORT_REQUEST, R}, the application responds as soon as possible with
    {FCGI_END_REQUEST, R, {FCGI_REQUEST_COMPLETE, appStatus}}."

    :param request_id: the request.
    """

    request_id: int


@dataclass(frozen=True, slots=True)
class GetValues:
    """The web server asks for some of the application's variables (GET_VALUES, spec 4.1).

    :param names: the variables asked for, such as
        :data:`~anysgi.fastcgi.protocol.FCGI_MAX_REQS`. The values the record carries (the
        spec says they are empty) are ignored.
    :param request_id: always 0.
    """

    names: tuple[bytes, ...]
    request_id: int = 0


@dataclass(frozen=True, slots=True)
class UnknownManagementRecord:
    """A management record of a type this library does not know (spec 4.2).

    Received by the application, which answers with :class:`UnknownType`. A client may send
    one to check that a server does so: it goes out as an empty record of that type.

    :param record_type: the record's type byte: never one of
        :class:`~anysgi.fastcgi.protocol.RecordType`.
    :param request_id: always 0.
    """

    record_type: int
    request_id: int = 0


@dataclass(frozen=True, slots=True)
class Stdout:
    """Some bytes of the CGI response (one or more non-empty STDOUT records, spec 5.3).

    :param request_id: the request.
    :param data: the bytes, never empty (end the stream with :class:`StdoutEnd`). Sending
        cuts them into records of at most 65535 bytes, each padded to a multiple of 8.
    """

    request_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class StdoutEnd:
    """The CGI response is complete (the empty STDOUT record).

    :param request_id: the request.
    """

    request_id: int


@dataclass(frozen=True, slots=True)
class Stderr:
    """Some error text for the web server's log (non-empty STDERR records, spec 5.3).

    :param request_id: the request.
    :param data: the bytes, never empty.
    """

    request_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class StderrEnd:
    """No more error text (the empty STDERR record).

    :param request_id: the request.
    """

    request_id: int


@dataclass(frozen=True, slots=True)
class EndRequest:
    """The request is over (END_REQUEST, spec 5.5); its id becomes inactive.

    Sending it first ends any output stream left open, and sends an empty STDOUT stream if a
    completed request never wrote one (see :meth:`~anysgi.fastcgi.protocol.Connection.send`).

    :param request_id: the request.
    :param app_status: the application's exit status, 0 to 2**32 - 1: spec 6.2 likens it to
        "the status code that the CGI program would have returned via the exit system call".
    :param protocol_status: why the request ended; anything but
        :attr:`~anysgi.fastcgi.protocol.ProtocolStatus.REQUEST_COMPLETE` rejects it.
    """

    request_id: int
    app_status: int = 0
    protocol_status: ProtocolStatus = ProtocolStatus.REQUEST_COMPLETE


@dataclass(frozen=True, slots=True)
class GetValuesResult:
    """The application's answer to :class:`GetValues` (GET_VALUES_RESULT, spec 4.1).

    :param values: the variables it knows, with their values (``b"1"``, ``b"50"``...). Spec
        4.1: "If the application doesn't understand a variable name that was included in the
        query, it omits that name from the response."
    :param request_id: always 0.
    """

    values: dict[bytes, bytes]
    request_id: int = 0


@dataclass(frozen=True, slots=True)
class UnknownType:
    """The application's answer to a management record it does not know (spec 4.2).

    :param record_type: the unknown record's type byte.
    :param request_id: always 0.
    """

    record_type: int
    request_id: int = 0


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer closed the connection, and every complete record before that was delivered.

    Returned by :meth:`~anysgi.fastcgi.protocol.Connection.next_event` after
    ``receive_data(b"")``, and again on every later call. Requests still active stay active:
    for an application this is an abort of each of them (nginx aborts this way instead of
    sending ABORT_REQUEST).

    :param request_id: always 0.
    """

    request_id: int = 0


#: Any event.
Event: TypeAlias = Union[  # noqa: UP007  (autodoc renders X | Y aliases poorly on 3.10)
    BeginRequest,
    Params,
    Stdin,
    StdinEnd,
    Data,
    DataEnd,
    AbortRequest,
    GetValues,
    UnknownManagementRecord,
    Stdout,
    StdoutEnd,
    Stderr,
    StderrEnd,
    EndRequest,
    GetValuesResult,
    UnknownType,
    ConnectionClosed,
]


# -- fast construction for the receive path ----------------------------------------------------
#
# A frozen dataclass's __init__ stores each field with object.__setattr__ (its own __setattr__
# refuses), which costs about three times what building the event is worth: 0.55 us for a
# Stdin, 0.85 us for a BeginRequest, on a path that builds one event per record. The makers
# below store through the slots' descriptors directly, which is what object.__setattr__ ends up
# doing, minus the look-ups. They skip nothing else: these classes have no __post_init__ and
# no default factories. test_events.py checks that every maker's event equals the one
# __init__ builds.

_new = object.__new__
_E = TypeVar("_E")


def _setters(cls: type) -> list[Callable[[object, object], None]]:
    return [cls.__dict__[field.name].__set__ for field in fields(cls)]


def _maker1(cls: type[_E]) -> Callable[[object], _E]:
    (set_a,) = _setters(cls)

    def make(a: object) -> _E:
        event = _new(cls)
        set_a(event, a)
        return event

    return make


def _maker2(cls: type[_E]) -> Callable[[object, object], _E]:
    set_a, set_b = _setters(cls)

    def make(a: object, b: object) -> _E:
        event = _new(cls)
        set_a(event, a)
        set_b(event, b)
        return event

    return make


def _maker3(cls: type[_E]) -> Callable[[object, object, object], _E]:
    set_a, set_b, set_c = _setters(cls)

    def make(a: object, b: object, c: object) -> _E:
        event = _new(cls)
        set_a(event, a)
        set_b(event, b)
        set_c(event, c)
        return event

    return make


#: ``make_begin_request(request_id, role, keep_conn)``
make_begin_request: Final = _maker3(BeginRequest)
#: ``make_params(request_id, params)``
make_params: Final = _maker2(Params)
#: ``make_stdin(request_id, data)``
make_stdin: Final = _maker2(Stdin)
#: ``make_stdin_end(request_id)``
make_stdin_end: Final = _maker1(StdinEnd)
#: ``make_data(request_id, data)``
make_data: Final = _maker2(Data)
#: ``make_data_end(request_id)``
make_data_end: Final = _maker1(DataEnd)
#: ``make_abort_request(request_id)``
make_abort_request: Final = _maker1(AbortRequest)
#: ``make_stdout(request_id, data)``
make_stdout: Final = _maker2(Stdout)
#: ``make_stdout_end(request_id)``
make_stdout_end: Final = _maker1(StdoutEnd)
#: ``make_stderr(request_id, data)``
make_stderr: Final = _maker2(Stderr)
#: ``make_stderr_end(request_id)``
make_stderr_end: Final = _maker1(StderrEnd)
#: ``make_end_request(request_id, app_status, protocol_status)``
make_end_request: Final = _maker3(EndRequest)
