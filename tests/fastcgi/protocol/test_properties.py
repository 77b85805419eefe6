"""Hypothesis: invariants of the codec, not examples.

(a) records and name-value pairs round-trip; (b) how the bytes are cut into reads changes
nothing; (c) any input gives events or RemoteProtocolError, nothing else; (d) a client and a
server driven at random agree on every event and every request's state; (e) every
(state, record) pair does what the table says, on a real connection.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from anysgi.fastcgi import protocol as p
from anysgi.fastcgi.protocol import _records, _state
from anysgi.fastcgi.protocol._pairs import decode_pairs, encode_pairs

from .helpers import CLIENT_EVENTS, ConnectionPair, drain, record

# -- (a) round trips ------------------------------------------------------------------------------

names = st.binary(max_size=300)


@given(name=names, value=st.binary(max_size=70_000))
@example(name=b"n" * 127, value=b"v" * 127)
@example(name=b"n" * 128, value=b"v" * 128)
@example(name=b"n" * 127, value=b"v" * 128)
@example(name=b"", value=b"v" * 65535)
@example(name=b"n", value=b"v" * 65536)
def test_pair_round_trip(name: bytes, value: bytes) -> None:
    encoded = encode_pairs({name: value})
    assert len(encoded) == (1 if len(name) < 128 else 4) + (1 if len(value) < 128 else 4) + len(
        name
    ) + len(value)
    assert decode_pairs(encoded) == {name: value}


@given(items=st.lists(st.tuples(names, st.binary(max_size=300)), max_size=20))
def test_pairs_round_trip_last_value_wins(items: list[tuple[bytes, bytes]]) -> None:
    assert decode_pairs(encode_pairs(items)) == dict(items)


@given(
    data=st.binary(max_size=200_000),
    record_type=st.integers(0, 255),
    request_id=st.integers(0, 65535),
)
@example(data=b"x" * 65535, record_type=6, request_id=1)
@example(data=b"x" * 65536, record_type=6, request_id=1)
@example(data=b"x" * 127, record_type=5, request_id=65535)
@example(data=b"x" * 128, record_type=5, request_id=65535)
def test_record_stream_round_trip(data: bytes, record_type: int, request_id: int) -> None:
    parts: list[bytes | bytearray | memoryview] = []
    _records.encode_stream(parts, record_type, request_id, data)
    wire = b"".join(parts)
    records = _records.parse_records(wire)
    assert b"".join(r.content for r in records) == data
    assert all(r.record_type == record_type and r.request_id == request_id for r in records)
    assert all(0 < len(r.content) <= 65535 for r in records)
    assert all(len(r.content) == 65535 for r in records[:-1])
    assert all((8 + len(r.content) + r.padding_length) % 8 == 0 for r in records)
    assert all(r.padding_length < 8 for r in records)


# -- requests as a client sends them --------------------------------------------------------------

params = st.dictionaries(names, st.binary(max_size=300), max_size=8)
bodies = st.lists(st.binary(min_size=1, max_size=3000), max_size=3)


@st.composite
def requests(draw: st.DrawFn, request_id: int) -> list[p.Event]:
    role = draw(st.sampled_from([p.Role.RESPONDER, p.Role.AUTHORIZER, p.Role.FILTER, 9]))
    events: list[p.Event] = [
        p.BeginRequest(request_id, role, draw(st.booleans())),
        p.Params(request_id, draw(params)),
    ]
    events += [p.Stdin(request_id, body) for body in draw(bodies)]
    events.append(p.StdinEnd(request_id))
    if role is p.Role.FILTER:
        events += [p.Data(request_id, body) for body in draw(bodies)]
        events.append(p.DataEnd(request_id))
    if draw(st.booleans()):
        events.insert(draw(st.integers(1, len(events))), p.AbortRequest(request_id))
        events = events[: events.index(p.AbortRequest(request_id)) + 1]
    return events


@st.composite
def interleaved(draw: st.DrawFn) -> list[p.Event]:
    """Several requests, their events interleaved, each one's own order kept."""
    ids = draw(st.lists(st.integers(1, 65535), min_size=1, max_size=4, unique=True))
    queues = [draw(requests(request_id)) for request_id in ids]
    queues.append([p.GetValues((p.FCGI_MAX_REQS,))] * draw(st.integers(0, 2)))
    merged: list[p.Event] = []
    while any(queues):
        queue = draw(st.sampled_from([q for q in queues if q]))
        merged.append(queue.pop(0))
    return merged


def _client_bytes(events: list[p.Event]) -> bytes:
    client = p.Connection(p.CLIENT)
    return b"".join(client.send(event) for event in events)


def _expected(events: list[p.Event]) -> list[p.Event]:
    """What the server should see: each Stdin/Data cut at 65535 bytes."""
    out: list[p.Event] = []
    for event in events:
        if isinstance(event, (p.Stdin, p.Data)):
            cls = type(event)
            out += [
                cls(event.request_id, event.data[i : i + 65535])
                for i in range(0, len(event.data), 65535)
            ]
        elif isinstance(event, p.BeginRequest):
            out.append(p.BeginRequest(event.request_id, event.role, event.keep_conn))
        else:
            out.append(event)
    return out


@st.composite
def cuts(draw: st.DrawFn, data: bytes) -> list[bytes]:
    points = sorted(draw(st.lists(st.integers(0, len(data)), max_size=30)))
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


# -- (b) cutting the stream changes nothing -------------------------------------------------------


@given(st.data())
@settings(max_examples=200)
def test_any_split_gives_the_same_events(data: st.DataObject) -> None:
    events = data.draw(interleaved())
    wire = _client_bytes(events)
    whole = p.Connection(p.SERVER)
    whole.receive_data(wire)
    whole.receive_data(b"")
    expected = drain(whole)
    assert expected == [*_expected(events), p.ConnectionClosed()]
    split = p.Connection(p.SERVER)
    received: list[p.Event] = []
    for chunk in data.draw(cuts(wire)):
        split.receive_data(chunk)
        received += drain(split)
    split.receive_data(b"")
    received += drain(split)
    assert received == expected


@given(
    stdout=st.binary(min_size=1, max_size=70_000),
    stderr=st.binary(max_size=100),
    app_status=st.integers(0, 2**32 - 1),
)
@settings(max_examples=30)
def test_one_byte_at_a_time_on_the_client_side(
    stdout: bytes, stderr: bytes, app_status: int
) -> None:
    def client_and_response() -> tuple[p.Connection, bytes]:
        pair = ConnectionPair()
        pair.send_all([p.BeginRequest(1), p.Params(1, {})])
        wire = pair.server.send(p.Stdout(1, stdout))
        if stderr:
            wire += pair.server.send(p.Stderr(1, stderr))
        return pair.client, wire + pair.server.send(p.EndRequest(1, app_status))

    whole, wire = client_and_response()
    whole.receive_data(wire)
    expected = drain(whole)
    assert expected[-1] == p.EndRequest(1, app_status)
    client, _ = client_and_response()
    received = []
    for i in range(len(wire)):
        client.receive_data(wire[i : i + 1])
        received += drain(client)
    assert received == expected


# -- (c) total parser -----------------------------------------------------------------------------


def _survives(side: p.Side, chunks: list[bytes], **limits: int) -> list[p.Event]:
    """Feed *chunks* then EOF; every event up to ConnectionClosed or a RemoteProtocolError."""
    conn = p.Connection(side, **limits)
    events: list[p.Event] = []
    try:
        for chunk in [*chunks, b""]:
            conn.receive_data(chunk)
            while (event := conn.next_event()) is not p.NEED_DATA:
                events.append(event)
                if isinstance(event, p.ConnectionClosed):
                    return events
    except p.RemoteProtocolError as error:
        first = error
    else:
        raise AssertionError("EOF was fed, but neither ConnectionClosed nor an error came")
    # Dead for good, and says so again.
    with pytest.raises(p.RemoteProtocolError) as again:
        conn.next_event()
    assert again.value is first
    return events


@given(side=st.sampled_from([p.SERVER, p.CLIENT]), data=st.binary(max_size=2000))
def test_arbitrary_bytes_give_events_or_remote_protocol_error(side: p.Side, data: bytes) -> None:
    _survives(side, [data])


@st.composite
def raw_records(draw: st.DrawFn) -> bytes:
    """Well-framed records of any type and id, with bodies that may or may not make sense."""
    out = []
    for _ in range(draw(st.integers(1, 12))):
        record_type = draw(st.sampled_from([*range(1, 12), 0, 12, 200]))
        request_id = draw(st.sampled_from([0, 1, 2, 3]))
        content = draw(
            st.one_of(
                st.just(b""),
                st.binary(max_size=40),
                st.sampled_from([bytes(8), b"\x00\x01\x01" + bytes(5), b"\x00\x03\x00" + bytes(5)]),
                st.builds(encode_pairs, params),
            )
        )
        out.append(record(record_type, request_id, content, draw(st.integers(0, 9))))
    return b"".join(out)


@given(side=st.sampled_from([p.SERVER, p.CLIENT]), data=st.data())
@settings(max_examples=300)
def test_random_records_give_events_or_remote_protocol_error(
    side: p.Side, data: st.DataObject
) -> None:
    wire = data.draw(raw_records())
    whole = _survives(side, [wire], max_name_length=50, max_value_length=200)
    pieces = _survives(side, data.draw(cuts(wire)), max_name_length=50, max_value_length=200)
    # Cutting changes nothing, up to the error if there is one.
    assert pieces == whole


@given(st.data())
@settings(max_examples=200)
def test_corrupted_valid_streams_give_events_or_remote_protocol_error(
    data: st.DataObject,
) -> None:
    wire = bytearray(_client_bytes(data.draw(interleaved())))
    assume(wire)
    for _ in range(data.draw(st.integers(1, 5))):
        position = data.draw(st.integers(0, len(wire) - 1))
        wire[position] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        del wire[data.draw(st.integers(0, len(wire))) :]
    _survives(p.SERVER, data.draw(cuts(bytes(wire))))


# -- (d) a client and a server driven at random ---------------------------------------------------

#: A request id, as an index: mostly one of the active requests (so that streams get far), at
#: times any of 1..4 (so that inactive ids and new requests come up too).
IDS = st.integers(0, 11)


class ClientServer(RuleBasedStateMachine):
    """Random events on both sides; what one side may send the other must accept as is."""

    def __init__(self) -> None:
        super().__init__()
        self.pair = ConnectionPair(
            p.Connection(p.CLIENT, max_concurrent_requests=3),
            p.Connection(p.SERVER, max_concurrent_requests=3),
        )
        self.sent = 0

    def _id(self, pick: int) -> int:
        active = sorted(self.pair.client.active_requests)
        if active and pick < 8:
            return active[pick % len(active)]
        return pick % 4 + 1

    def _try(self, event: p.Event) -> None:
        sender = self.pair.client if isinstance(event, CLIENT_EVENTS) else self.pair.server
        receiver = self.pair.server if sender is self.pair.client else self.pair.client
        before = sender.request_state(event.request_id)
        active_before = set(sender.active_requests)
        try:
            wire = sender.send(event)
        except p.LocalProtocolError:
            # Refused: nothing changed, nothing to say.
            assert sender.request_state(event.request_id) == before
            assert set(sender.active_requests) == active_before
            return
        self.sent += 1
        receiver.receive_data(wire)
        received = drain(receiver)
        self._check_received(event, received)

    def _check_received(self, event: p.Event, received: list[p.Event]) -> None:
        if isinstance(event, p.EndRequest):
            *closing, last = received
            assert last == event
            assert set(closing) <= {p.StdoutEnd(event.request_id), p.StderrEnd(event.request_id)}
        elif isinstance(event, (p.Stdin, p.Data, p.Stdout, p.Stderr)):
            chunks = [r for r in received if isinstance(r, (p.Stdin, p.Data, p.Stdout, p.Stderr))]
            assert chunks == received
            assert all(type(r) is type(event) for r in chunks)
            assert b"".join(r.data for r in chunks) == event.data
        else:
            assert received == [event]

    @rule(request_id=IDS, role=st.sampled_from([1, 2, 3, 77]), keep_conn=st.booleans())
    def begin(self, request_id: int, role: int, keep_conn: bool) -> None:
        self._try(p.BeginRequest(request_id % 4 + 1, role, keep_conn))

    @rule(request_id=IDS, values=params)
    def params(self, request_id: int, values: dict[bytes, bytes]) -> None:
        request_id = self._id(request_id)
        self._try(p.Params(request_id, values))

    @rule(request_id=IDS, body=st.binary(max_size=200), end=st.booleans())
    def stdin(self, request_id: int, body: bytes, end: bool) -> None:
        request_id = self._id(request_id)
        self._try(p.StdinEnd(request_id) if end else p.Stdin(request_id, body))

    @rule(request_id=IDS, body=st.binary(max_size=200), end=st.booleans())
    def data(self, request_id: int, body: bytes, end: bool) -> None:
        request_id = self._id(request_id)
        self._try(p.DataEnd(request_id) if end else p.Data(request_id, body))

    @rule(request_id=IDS)
    def abort(self, request_id: int) -> None:
        request_id = self._id(request_id)
        self._try(p.AbortRequest(request_id))

    @rule(request_id=IDS, body=st.binary(max_size=200), end=st.booleans(), err=st.booleans())
    def output(self, request_id: int, body: bytes, end: bool, err: bool) -> None:
        request_id = self._id(request_id)
        if err:
            self._try(p.StderrEnd(request_id) if end else p.Stderr(request_id, body))
        else:
            self._try(p.StdoutEnd(request_id) if end else p.Stdout(request_id, body))

    @rule(
        request_id=IDS,
        app_status=st.integers(0, 2**32 - 1),
        status=st.sampled_from(list(p.ProtocolStatus)),
    )
    def end_request(self, request_id: int, app_status: int, status: p.ProtocolStatus) -> None:
        request_id = self._id(request_id)
        self._try(p.EndRequest(request_id, app_status, status))

    @rule(request_id=IDS, body=st.binary(min_size=1, max_size=200), choice=st.integers(0, 3))
    def progress(self, request_id: int, body: bytes, choice: int) -> None:
        """Take a request one natural step further, so that runs reach the deep states."""
        request_id = self._id(request_id)
        state = self.pair.server.request_state(request_id)
        if state is None:
            self._try(p.BeginRequest(request_id, p.Role.FILTER if choice == 3 else 1))
            return
        step: dict[p.State, list[p.Event]] = {
            p.State.PARAMS: [p.Params(request_id, {b"K": body})],
            p.State.FILTER_PARAMS: [p.Params(request_id, {})],
            p.State.STDIN: [p.Stdin(request_id, body), p.StdinEnd(request_id)],
            p.State.FILTER_STDIN: [p.Stdin(request_id, body), p.StdinEnd(request_id)],
            p.State.FILTER_DATA: [p.Data(request_id, body), p.DataEnd(request_id)],
        }
        output: list[p.Event] = [
            p.Stdout(request_id, body),
            p.Stderr(request_id, body),
            p.StdoutEnd(request_id),
            p.EndRequest(request_id),
        ]
        options = step.get(state.input, output)
        self._try(options[choice % len(options)])

    @rule()
    def get_values(self) -> None:
        self._try(p.GetValues((p.FCGI_MAX_CONNS, p.FCGI_MPXS_CONNS)))

    @rule(values=st.dictionaries(names, names, max_size=3))
    def get_values_result(self, values: dict[bytes, bytes]) -> None:
        self._try(p.GetValuesResult(values))

    @rule(record_type=st.sampled_from([0, 12, 99]), answer=st.booleans())
    def unknown(self, record_type: int, answer: bool) -> None:
        self._try(p.UnknownType(record_type) if answer else p.UnknownManagementRecord(record_type))

    @invariant()
    def both_sides_agree(self) -> None:
        client, server = self.pair.client, self.pair.server
        assert set(client.active_requests) == set(server.active_requests)
        for request_id in client.active_requests:
            assert client.request_state(request_id) == server.request_state(request_id)


TestClientServer = ClientServer.TestCase
TestClientServer.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


# -- (e) the table, applied by real connections ---------------------------------------------------

K = _state.Kind
_RECORD_OF_KIND: dict[_state.Kind, tuple[int, bytes]] = {
    K.BEGIN_REQUEST: (1, b"\x00\x01" + bytes(6)),
    K.BEGIN_FILTER: (1, b"\x00\x03" + bytes(6)),
    K.PARAMS: (4, b"\x01\x01ab"),
    K.PARAMS_END: (4, b""),
    K.STDIN: (5, b"in"),
    K.STDIN_END: (5, b""),
    K.DATA: (8, b"da"),
    K.DATA_END: (8, b""),
    K.ABORT_REQUEST: (2, b""),
    K.STDOUT: (6, b"out"),
    K.STDOUT_END: (6, b""),
    K.STDERR: (7, b"err"),
    K.STDERR_END: (7, b""),
    K.END_REQUEST: (3, bytes(8)),
}
#: The event that sends each kind (PARAMS alone has none: Params sends a whole stream).
_EVENT_OF_KIND: dict[_state.Kind, p.Event] = {
    K.BEGIN_REQUEST: p.BeginRequest(1),
    K.BEGIN_FILTER: p.BeginRequest(1, p.Role.FILTER),
    K.PARAMS_END: p.Params(1, {}),
    K.STDIN: p.Stdin(1, b"in"),
    K.STDIN_END: p.StdinEnd(1),
    K.DATA: p.Data(1, b"da"),
    K.DATA_END: p.DataEnd(1),
    K.ABORT_REQUEST: p.AbortRequest(1),
    K.STDOUT: p.Stdout(1, b"out"),
    K.STDOUT_END: p.StdoutEnd(1),
    K.STDERR: p.Stderr(1, b"err"),
    K.STDERR_END: p.StderrEnd(1),
    K.END_REQUEST: p.EndRequest(1, 0, p.ProtocolStatus.OVERLOADED),
}


@given(
    filter_role=st.booleans(),
    script=st.lists(st.sampled_from(list(K)), max_size=12),
    probe=st.sampled_from(list(K)),
)
@settings(max_examples=500)
def test_every_state_and_record_does_what_the_table_says(
    filter_role: bool, script: list[_state.Kind], probe: _state.Kind
) -> None:
    """Walk a request through random kinds: each is accepted by both sides exactly when the
    table (``RequestMachine``, the model) allows it, and both sides then agree with the model.
    The first refused kind must be refused by the sender (LocalProtocolError) and, sent raw, by
    the receiver (RemoteProtocolError)."""
    pair = ConnectionPair()
    role = p.Role.FILTER if filter_role else p.Role.RESPONDER
    pair.send(p.BeginRequest(1, role))
    model = _state.RequestMachine(
        _state.TRANSITIONS[_state.State.INACTIVE, _state.begin_kind(role)]
    )
    for kind in [*script, probe]:
        is_begin = kind in (K.BEGIN_REQUEST, K.BEGIN_FILTER)
        allowed = not is_begin and model.advance(kind)
        if kind in _state.INPUT_KINDS:
            sender, receiver = pair.client, pair.server
        else:
            sender, receiver = pair.server, pair.client
        record_type, content = _RECORD_OF_KIND[kind]
        if not allowed:
            if kind in _EVENT_OF_KIND:
                with pytest.raises(p.LocalProtocolError):
                    sender.send(_EVENT_OF_KIND[kind])
            receiver.receive_data(record(record_type, 1, content))
            with pytest.raises(p.RemoteProtocolError):
                drain(receiver)
            return
        if kind is K.PARAMS:
            receiver.receive_data(record(record_type, 1, content))
            assert drain(receiver) == []
        else:
            received = pair.send(_EVENT_OF_KIND[kind])
            # (Params may carry pairs from raw PARAMS records sent before.)
            assert type(received[-1]) is type(_EVENT_OF_KIND[kind])
            assert received[-1].request_id == 1
        if kind is K.END_REQUEST:
            assert pair.client.request_state(1) is pair.server.request_state(1) is None
            return
        assert pair.client.request_state(1) == pair.server.request_state(1) == model.snapshot()
