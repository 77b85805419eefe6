"""The per-request state machine: ONE table, both sides, both directions.

House rules (after h11's ``_state.py``):

Rule 1: everything that decides whether a record or an event is allowed for a request, and
what state it leads to, lives in this file. ``_connection.py`` finds the request, turns records
and events into :class:`Kind` values, asks :meth:`RequestMachine.advance`, and raises with the
reason :meth:`RequestMachine.refusal` gives when the answer is no.

Rule 2: the machine does not know which side it runs on. A server *receives* the input kinds
and *sends* the output kinds; a client does the opposite; both consult the same
:data:`TRANSITIONS`. So a server that sends what its client would refuse to receive (or the
other way round) cannot exist: there is only one definition of "allowed".

Theory of operation
-------------------

A request has three tracks, each with its own state:

``input``
    The web server's streams, in the order spec 6 fixes ("The server presents the Filter with
    environment variables first, then standard input (normally form POST data), finally the data
    file input"): BEGIN_REQUEST, the PARAMS stream, the STDIN stream and, for the Filter role
    only, the DATA stream. Each stream is "a series of zero or more non-empty records ... of the
    stream type, followed by an empty record" (spec 3.3). ABORT_REQUEST may come at any point
    (spec 5.4) and ends the input. Spec 6.1: "Inputs are not interleaved with each other", so
    DATA may not start before STDIN has ended.
``stdout`` and ``stderr``
    The application's two output streams, which spec 6.1 lets interleave ("role protocols that
    use both FCGI_STDOUT and FCGI_STDERR allow these two streams to be interleaved"). Each is
    idle, open (data sent) or ended (its empty record sent).

Tracks meet in two places:

* Output may start only once the role's last input stream has begun: spec 6.2, "The
  application must wait to finish reading FCGI_PARAMS before it begins writing FCGI_STDOUT and
  FCGI_STDERR, but it needn't finish reading from FCGI_STDIN"; spec 6.4 for a Filter, "must wait
  to finish reading FCGI_STDIN ... but it needn't finish reading from FCGI_DATA". The input
  states where output is allowed are :data:`OUTPUT_ALLOWED`. An abort keeps that distinction
  (:attr:`State.ABORTED` and :attr:`State.ABORTED_EARLY`), because output already in flight
  when the web server aborts is still valid.
* END_REQUEST ends the request from any state of any track (spec 5.5: "either because the
  application has processed the request or because the application has rejected the
  request"). The sender first ends the output streams it left open (:func:`closing_kinds`), so
  what we send is always complete; a receiver accepts END_REQUEST with a stream still open,
  because END_REQUEST ends them all.

A request that is not in a connection's table is :attr:`State.INACTIVE`; after END_REQUEST it
is :attr:`State.DONE` and leaves the table, so its id is inactive again. Spec 3.3: "While a
request ID R is inactive, the application ignores records with requestId == R, except for
FCGI_BEGIN_REQUEST records".
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from ._constants import RecordType, Role

__all__ = (
    "BEGIN_STATE",
    "CLIENT",
    "INPUT_KINDS",
    "OUTPUT_ALLOWED",
    "OUTPUT_KINDS",
    "SENT_BY",
    "SERVER",
    "TRACK",
    "TRANSITIONS",
    "Kind",
    "RequestMachine",
    "RequestState",
    "Side",
    "State",
    "begin_kind",
    "closing_kinds",
    "next_state",
)


class Side(enum.Enum):
    """Which end of a FastCGI connection a :class:`~anysgi.fastcgi.protocol.Connection` is."""

    #: The web server's end (nginx, Apache, a test client): starts requests, reads responses.
    CLIENT = "CLIENT"
    #: The application's end: accepts requests, writes responses.
    SERVER = "SERVER"

    def __repr__(self) -> str:
        return self.name


#: The web server's end of a connection.
CLIENT: Final = Side.CLIENT
#: The application's end of a connection.
SERVER: Final = Side.SERVER


class State(enum.Enum):
    """The state of one of a request's three tracks: its input (the web server's streams),
    its STDOUT stream or its STDERR stream. Which states follow which is the table in
    "The state machine" of the reference docs."""

    # Enum hashes by name in Python code; identity hashing is as correct (members are
    # singletons compared by identity) and makes each table look-up ~3x cheaper.
    __hash__ = object.__hash__

    # -- input track ----------------------------------------------------------------------
    #: No request with this id: only BEGIN_REQUEST is meaningful.
    INACTIVE = "INACTIVE"
    #: Responder or Authorizer: the PARAMS stream is open.
    PARAMS = "PARAMS"
    #: Responder or Authorizer: PARAMS ended, the STDIN stream is open.
    STDIN = "STDIN"
    #: Responder or Authorizer: STDIN ended, all input received.
    INPUT_ENDED = "INPUT_ENDED"
    #: Filter: the PARAMS stream is open.
    FILTER_PARAMS = "FILTER_PARAMS"
    #: Filter: PARAMS ended, the STDIN stream is open.
    FILTER_STDIN = "FILTER_STDIN"
    #: Filter: STDIN ended, the DATA stream is open.
    FILTER_DATA = "FILTER_DATA"
    #: Filter: DATA ended, all input received.
    FILTER_INPUT_ENDED = "FILTER_INPUT_ENDED"
    #: ABORT_REQUEST after output was allowed: no more input, output may finish.
    ABORTED = "ABORTED"
    #: ABORT_REQUEST before output was allowed: no more input, and no output either.
    ABORTED_EARLY = "ABORTED_EARLY"
    #: END_REQUEST: the request is over and its id inactive again.
    DONE = "DONE"

    # -- stdout track ---------------------------------------------------------------------
    #: No STDOUT record yet.
    STDOUT_IDLE = "STDOUT_IDLE"
    #: Non-empty STDOUT records, no empty one yet.
    STDOUT_OPEN = "STDOUT_OPEN"
    #: The empty STDOUT record: the stream is over.
    STDOUT_ENDED = "STDOUT_ENDED"

    # -- stderr track ---------------------------------------------------------------------
    #: No STDERR record yet (spec 6.1: "Use of the FCGI_STDERR stream is always optional").
    STDERR_IDLE = "STDERR_IDLE"
    #: Non-empty STDERR records, no empty one yet.
    STDERR_OPEN = "STDERR_OPEN"
    #: The empty STDERR record: the stream is over.
    STDERR_ENDED = "STDERR_ENDED"

    def __repr__(self) -> str:
        return f"State.{self.name}"


class Kind(enum.Enum):
    """What a record or an event does to a request: the second half of a table key."""

    __hash__ = object.__hash__  # see State

    #: BEGIN_REQUEST for a Responder, an Authorizer, or a role nobody knows.
    BEGIN_REQUEST = "BEGIN_REQUEST"
    #: BEGIN_REQUEST for a Filter, which has one more input stream.
    BEGIN_FILTER = "BEGIN_FILTER"
    #: A non-empty PARAMS record.
    PARAMS = "PARAMS"
    #: The empty PARAMS record.
    PARAMS_END = "PARAMS_END"
    #: A non-empty STDIN record.
    STDIN = "STDIN"
    #: The empty STDIN record.
    STDIN_END = "STDIN_END"
    #: A non-empty DATA record.
    DATA = "DATA"
    #: The empty DATA record.
    DATA_END = "DATA_END"
    #: ABORT_REQUEST.
    ABORT_REQUEST = "ABORT_REQUEST"
    #: A non-empty STDOUT record.
    STDOUT = "STDOUT"
    #: The empty STDOUT record.
    STDOUT_END = "STDOUT_END"
    #: A non-empty STDERR record.
    STDERR = "STDERR"
    #: The empty STDERR record.
    STDERR_END = "STDERR_END"
    #: END_REQUEST.
    END_REQUEST = "END_REQUEST"

    def __repr__(self) -> str:
        return f"Kind.{self.name}"

    @property
    def label(self) -> str:
        """How error messages name the record: ``"empty STDIN record"``."""
        return _LABELS[self]


_LABELS: Final = {
    kind: (
        f"empty {kind.name.removesuffix('_END')} record"
        if kind.name.endswith("_END") and kind is not Kind.END_REQUEST
        else "BEGIN_REQUEST record"
        if kind is Kind.BEGIN_FILTER
        else f"{kind.name} record"
    )
    for kind in Kind
}

_S = State
_K = Kind

#: The table. ``TRANSITIONS[state, kind]`` is the state a track moves to; a pair that is not
#: here is refused (a :class:`~anysgi.fastcgi.protocol.RemoteProtocolError` when received, a
#: :class:`~anysgi.fastcgi.protocol.LocalProtocolError` when sent).
TRANSITIONS: Final[dict[tuple[State, Kind], State]] = {
    # Spec 5.1: "The Web server sends a FCGI_BEGIN_REQUEST record to start a request."
    (_S.INACTIVE, _K.BEGIN_REQUEST): _S.PARAMS,
    (_S.INACTIVE, _K.BEGIN_FILTER): _S.FILTER_PARAMS,
    # Responder, Authorizer (spec 6.2, 6.3): PARAMS, then STDIN.
    (_S.PARAMS, _K.PARAMS): _S.PARAMS,
    (_S.PARAMS, _K.PARAMS_END): _S.STDIN,
    (_S.STDIN, _K.STDIN): _S.STDIN,
    (_S.STDIN, _K.STDIN_END): _S.INPUT_ENDED,
    # Filter (spec 6.4): PARAMS, then STDIN, then DATA.
    (_S.FILTER_PARAMS, _K.PARAMS): _S.FILTER_PARAMS,
    (_S.FILTER_PARAMS, _K.PARAMS_END): _S.FILTER_STDIN,
    (_S.FILTER_STDIN, _K.STDIN): _S.FILTER_STDIN,
    (_S.FILTER_STDIN, _K.STDIN_END): _S.FILTER_DATA,
    (_S.FILTER_DATA, _K.DATA): _S.FILTER_DATA,
    (_S.FILTER_DATA, _K.DATA_END): _S.FILTER_INPUT_ENDED,
    # Spec 5.4: the web server may abort a request at any time; once.
    (_S.PARAMS, _K.ABORT_REQUEST): _S.ABORTED_EARLY,
    (_S.FILTER_PARAMS, _K.ABORT_REQUEST): _S.ABORTED_EARLY,
    (_S.FILTER_STDIN, _K.ABORT_REQUEST): _S.ABORTED_EARLY,
    (_S.STDIN, _K.ABORT_REQUEST): _S.ABORTED,
    (_S.INPUT_ENDED, _K.ABORT_REQUEST): _S.ABORTED,
    (_S.FILTER_DATA, _K.ABORT_REQUEST): _S.ABORTED,
    (_S.FILTER_INPUT_ENDED, _K.ABORT_REQUEST): _S.ABORTED,
    # Spec 5.5: END_REQUEST ends the request whatever its input state.
    (_S.PARAMS, _K.END_REQUEST): _S.DONE,
    (_S.STDIN, _K.END_REQUEST): _S.DONE,
    (_S.INPUT_ENDED, _K.END_REQUEST): _S.DONE,
    (_S.FILTER_PARAMS, _K.END_REQUEST): _S.DONE,
    (_S.FILTER_STDIN, _K.END_REQUEST): _S.DONE,
    (_S.FILTER_DATA, _K.END_REQUEST): _S.DONE,
    (_S.FILTER_INPUT_ENDED, _K.END_REQUEST): _S.DONE,
    (_S.ABORTED, _K.END_REQUEST): _S.DONE,
    (_S.ABORTED_EARLY, _K.END_REQUEST): _S.DONE,
    # Output streams (spec 5.3), each: records with data, then one empty record. An empty
    # stream is just the empty record.
    (_S.STDOUT_IDLE, _K.STDOUT): _S.STDOUT_OPEN,
    (_S.STDOUT_OPEN, _K.STDOUT): _S.STDOUT_OPEN,
    (_S.STDOUT_IDLE, _K.STDOUT_END): _S.STDOUT_ENDED,
    (_S.STDOUT_OPEN, _K.STDOUT_END): _S.STDOUT_ENDED,
    (_S.STDERR_IDLE, _K.STDERR): _S.STDERR_OPEN,
    (_S.STDERR_OPEN, _K.STDERR): _S.STDERR_OPEN,
    (_S.STDERR_IDLE, _K.STDERR_END): _S.STDERR_ENDED,
    (_S.STDERR_OPEN, _K.STDERR_END): _S.STDERR_ENDED,
}

#: The track each kind moves.
TRACK: Final[dict[Kind, str]] = {
    **dict.fromkeys(
        (
            _K.BEGIN_REQUEST,
            _K.BEGIN_FILTER,
            _K.PARAMS,
            _K.PARAMS_END,
            _K.STDIN,
            _K.STDIN_END,
            _K.DATA,
            _K.DATA_END,
            _K.ABORT_REQUEST,
            _K.END_REQUEST,
        ),
        "input",
    ),
    _K.STDOUT: "stdout",
    _K.STDOUT_END: "stdout",
    _K.STDERR: "stderr",
    _K.STDERR_END: "stderr",
}

#: Kinds the web server sends (a server receives them, a client sends them).
INPUT_KINDS: Final = frozenset(
    kind for kind, track in TRACK.items() if track == "input" and kind is not _K.END_REQUEST
)
#: Kinds the application sends on its output streams.
OUTPUT_KINDS: Final = frozenset(kind for kind, track in TRACK.items() if track != "input")

#: Input states in which the application may write STDOUT and STDERR (module documentation).
OUTPUT_ALLOWED: Final = frozenset(
    {_S.STDIN, _S.INPUT_ENDED, _S.FILTER_DATA, _S.FILTER_INPUT_ENDED, _S.ABORTED}
)

#: Which side sends each record type (spec appendix A, "WS->App"). Management records that
#: nobody knows are answered by the application only, so only a server receives them.
SENT_BY: Final[dict[RecordType, Side]] = {
    RecordType.BEGIN_REQUEST: CLIENT,
    RecordType.ABORT_REQUEST: CLIENT,
    RecordType.END_REQUEST: SERVER,
    RecordType.PARAMS: CLIENT,
    RecordType.STDIN: CLIENT,
    RecordType.STDOUT: SERVER,
    RecordType.STDERR: SERVER,
    RecordType.DATA: CLIENT,
    RecordType.GET_VALUES: CLIENT,
    RecordType.GET_VALUES_RESULT: SERVER,
    RecordType.UNKNOWN_TYPE: SERVER,
}


def next_state(state: State, kind: Kind) -> State | None:
    """The table's answer for one track: the next state, or ``None`` if refused."""
    return TRANSITIONS.get((state, kind))


# For refusal messages: the input stream each input state has open (None once all ended).
_OPEN_STREAM: Final[dict[State, str | None]] = {
    _S.PARAMS: "PARAMS",
    _S.STDIN: "STDIN",
    _S.INPUT_ENDED: None,
    _S.FILTER_PARAMS: "PARAMS",
    _S.FILTER_STDIN: "STDIN",
    _S.FILTER_DATA: "DATA",
    _S.FILTER_INPUT_ENDED: None,
}
_STREAM_ORDER: Final = {"PARAMS": 0, "STDIN": 1, "DATA": 2}
_NOT_FILTER: Final = frozenset({_S.PARAMS, _S.STDIN, _S.INPUT_ENDED})


def _refusal(input_state: State, output_state: State, kind: Kind) -> str:
    """Why *kind* is refused, completing "<record> for request R ..."."""
    if kind is _K.BEGIN_REQUEST or kind is _K.BEGIN_FILTER:
        return "which is already active"
    if input_state is _S.INACTIVE or input_state is _S.DONE:
        return "which is not active"
    if kind in OUTPUT_KINDS and input_state in OUTPUT_ALLOWED:
        # Refused by its own stream: ended already.
        return f"after its {output_state.name.removesuffix('_ENDED')} stream ended"
    if input_state is _S.ABORTED:
        return "after it was aborted"
    if input_state is _S.ABORTED_EARLY:
        if kind in OUTPUT_KINDS:
            return "which was aborted before it could send output"
        return "after it was aborted"
    open_stream = _OPEN_STREAM[input_state]
    if kind in OUTPUT_KINDS:
        return f"before its {open_stream} stream ended"
    stream = kind.name.removesuffix("_END")
    if stream not in _STREAM_ORDER:
        # BEGIN_REQUEST, ABORT_REQUEST and END_REQUEST are refused only in the states
        # handled above: asked about an allowed kind, say where the request stands.
        return f"in state {input_state.name}"
    if stream == "DATA" and input_state in _NOT_FILTER:
        return "which is not a FILTER request"
    if open_stream is None or _STREAM_ORDER[stream] < _STREAM_ORDER[open_stream]:
        return f"after its {stream} stream ended"
    return f"before its {open_stream} stream ended"


class RequestMachine:
    """The three tracks of one active request, moved only through :data:`TRANSITIONS`."""

    __slots__ = ("input", "stderr", "stdout")

    def __init__(
        self,
        input: State = State.INACTIVE,
        stdout: State = State.STDOUT_IDLE,
        stderr: State = State.STDERR_IDLE,
    ) -> None:
        self.input = input
        self.stdout = stdout
        self.stderr = stderr

    def advance(self, kind: Kind) -> bool:
        """Move the track *kind* belongs to; ``False`` (and nothing moved) if refused."""
        track = TRACK[kind]
        if track == "input":
            state = TRANSITIONS.get((self.input, kind))
            if state is None:
                return False
            self.input = state
            return True
        if self.input not in OUTPUT_ALLOWED:
            return False
        if track == "stdout":
            state = TRANSITIONS.get((self.stdout, kind))
            if state is None:
                return False
            self.stdout = state
            return True
        state = TRANSITIONS.get((self.stderr, kind))
        if state is None:
            return False
        self.stderr = state
        return True

    def refusal(self, kind: Kind) -> str:
        """Why :meth:`advance` refuses *kind* now, completing "<record> for request R ..."."""
        track = TRACK[kind]
        output = self.stderr if track == "stderr" else self.stdout
        return _refusal(self.input, output, kind)

    def explain(self, subject: str, kind: Kind) -> str:
        """*subject* ("STDIN record for request 1") followed by why *kind* is refused."""
        reason = self.refusal(kind)
        return f"{subject}{', ' if reason.startswith('which') else ' '}{reason}"

    def snapshot(self) -> RequestState:
        """An immutable copy of the tracks."""
        return RequestState(self.input, self.stdout, self.stderr)


def closing_kinds(machine: RequestMachine, complete: bool) -> tuple[Kind, ...]:
    """What a sender writes before END_REQUEST so that every stream it started is whole.

    * An open stream gets its empty record: spec 3.3 defines a stream as records "followed by
      an empty record (length == 0) of the stream type".
    * A request that completes (*complete*: REQUEST_COMPLETE) without ever writing STDOUT
      gets an empty STDOUT stream when output is allowed. Spec 6.1: "When a role protocol
      calls for transmitting a stream other than FCGI_STDERR, at least one record of the stream
      type is always transmitted, even if the stream is empty."
    * STDERR is left alone when unused: "If an application has no errors to report, it sends
      either no FCGI_STDERR records or one zero-length FCGI_STDERR record."
    """
    stdout = machine.stdout
    stderr_open = machine.stderr is _S.STDERR_OPEN
    if stdout is _S.STDOUT_OPEN or (
        complete and stdout is _S.STDOUT_IDLE and machine.input in OUTPUT_ALLOWED
    ):
        return _CLOSE_BOTH if stderr_open else _CLOSE_STDOUT
    return _CLOSE_STDERR if stderr_open else ()


_CLOSE_BOTH: Final = (_K.STDOUT_END, _K.STDERR_END)
_CLOSE_STDOUT: Final = (_K.STDOUT_END,)
_CLOSE_STDERR: Final = (_K.STDERR_END,)


def begin_kind(role: Role | int) -> Kind:
    """The kind of a BEGIN_REQUEST for *role*: only a Filter has a DATA stream."""
    return Kind.BEGIN_FILTER if role == Role.FILTER else Kind.BEGIN_REQUEST


#: The input state BEGIN_REQUEST leads to, by "is the role FILTER?": the table's answer,
#: looked up once here rather than for every request.
BEGIN_STATE: Final = {
    is_filter: TRANSITIONS[_S.INACTIVE, begin_kind(Role.FILTER if is_filter else Role.RESPONDER)]
    for is_filter in (False, True)
}


@dataclass(frozen=True, slots=True)
class RequestState:
    """Where an active request stands, as
    :meth:`~anysgi.fastcgi.protocol.Connection.request_state` reports it.

    :param input: the web server's streams: :attr:`State.PARAMS` ... :attr:`State.ABORTED`.
    :param stdout: :attr:`State.STDOUT_IDLE`, :attr:`State.STDOUT_OPEN` or
        :attr:`State.STDOUT_ENDED`.
    :param stderr: :attr:`State.STDERR_IDLE`, :attr:`State.STDERR_OPEN` or
        :attr:`State.STDERR_ENDED`.
    """

    input: State
    stdout: State
    stderr: State

    @property
    def output_allowed(self) -> bool:
        """Whether the application may write STDOUT and STDERR now."""
        return self.input in OUTPUT_ALLOWED
