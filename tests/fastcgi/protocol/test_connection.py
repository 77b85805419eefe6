"""Connection: real front ends' bytes, every strictness rule, limits, EOF, both sides."""

from __future__ import annotations

import itertools

import pytest

from anysgi.fastcgi import protocol as p

from .helpers import (
    ConnectionPair,
    begin,
    client_with,
    drain,
    end_request,
    feed,
    header,
    pair,
    pairs,
    record,
    server_at,
)

# -- what nginx and Apache send -------------------------------------------------------------------

#: nginx 1.26, stock fastcgi_params, ``fastcgi_keep_conn on``, ``GET /app/hello?x=1``: one
#: PARAMS record padded to 8 bytes, CONTENT_TYPE and CONTENT_LENGTH present but empty, no body.
NGINX_GET = (
    # BEGIN_REQUEST, id 1, 8 bytes: role RESPONDER, flags FCGI_KEEP_CONN
    b"\x01\x01\x00\x01\x00\x08\x00\x00"
    b"\x00\x01\x01\x00\x00\x00\x00\x00"
    # PARAMS, id 1, 443 bytes, 5 of padding
    b"\x01\x04\x00\x01\x01\xbb\x05\x00"
    b"\x0c\x00QUERY_STRING"
    b"\x0e\x03REQUEST_METHODGET"
    b"\x0c\x00CONTENT_TYPE"
    b"\x0e\x00CONTENT_LENGTH"
    b"\x0b\x04SCRIPT_NAME/app"
    b"\x0b\x0eREQUEST_URI/app/hello?x=1"
    b"\x0c\x0aDOCUMENT_URI/app/hello"
    b"\x0d\x08DOCUMENT_ROOT/srv/www"
    b"\x0f\x08SERVER_PROTOCOLHTTP/1.1"
    b"\x0e\x04REQUEST_SCHEMEhttp"
    b"\x11\x07GATEWAY_INTERFACECGI/1.1"
    b"\x0f\x0cSERVER_SOFTWAREnginx/1.26.3"
    b"\x0b\x09REMOTE_ADDR127.0.0.1"
    b"\x0b\x05REMOTE_PORT40312"
    b"\x0b\x09SERVER_ADDR127.0.0.1"
    b"\x0b\x04SERVER_PORT8080"
    b"\x0b\x09SERVER_NAMElocalhost"
    b"\x0f\x03REDIRECT_STATUS200"
    b"\x09\x0eHTTP_HOSTlocalhost:8080"
    b"\x0f\x0aHTTP_USER_AGENTcurl/8.5.0"
    b"\x0b\x03HTTP_ACCEPT*/*"
    b"\x00\x00\x00\x00\x00"
    # empty PARAMS, empty STDIN
    b"\x01\x04\x00\x01\x00\x00\x00\x00"
    b"\x01\x05\x00\x01\x00\x00\x00\x00"
)

NGINX_GET_PARAMS = {
    b"QUERY_STRING": b"",
    b"REQUEST_METHOD": b"GET",
    b"CONTENT_TYPE": b"",
    b"CONTENT_LENGTH": b"",
    b"SCRIPT_NAME": b"/app",
    b"REQUEST_URI": b"/app/hello?x=1",
    b"DOCUMENT_URI": b"/app/hello",
    b"DOCUMENT_ROOT": b"/srv/www",
    b"SERVER_PROTOCOL": b"HTTP/1.1",
    b"REQUEST_SCHEME": b"http",
    b"GATEWAY_INTERFACE": b"CGI/1.1",
    b"SERVER_SOFTWARE": b"nginx/1.26.3",
    b"REMOTE_ADDR": b"127.0.0.1",
    b"REMOTE_PORT": b"40312",
    b"SERVER_ADDR": b"127.0.0.1",
    b"SERVER_PORT": b"8080",
    b"SERVER_NAME": b"localhost",
    b"REDIRECT_STATUS": b"200",
    b"HTTP_HOST": b"localhost:8080",
    b"HTTP_USER_AGENT": b"curl/8.5.0",
    b"HTTP_ACCEPT": b"*/*",
}


def test_nginx_get_request_byte_exact() -> None:
    server = p.Connection(p.SERVER)
    server.receive_data(NGINX_GET)
    assert drain(server) == [
        p.BeginRequest(1, p.Role.RESPONDER, keep_conn=True),
        p.Params(1, NGINX_GET_PARAMS),
        p.StdinEnd(1),
    ]
    body = b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nhello\n"
    assert server.send(p.Stdout(1, body)) == b"\x01\x06\x00\x01\x00\x32\x06\x00" + body + bytes(6)
    assert server.send(p.EndRequest(1)) == (
        b"\x01\x06\x00\x01\x00\x00\x00\x00"  # the empty STDOUT record, sent for us
        b"\x01\x03\x00\x01\x00\x08\x00\x00"  # END_REQUEST, 8 bytes
        b"\x00\x00\x00\x00\x00\x00\x00\x00"  # appStatus 0, REQUEST_COMPLETE
    )
    assert not server.active_requests


def test_nginx_get_request_one_byte_at_a_time() -> None:
    server = p.Connection(p.SERVER)
    events = feed(server, *(NGINX_GET[i : i + 1] for i in range(len(NGINX_GET))))
    assert events == [
        p.BeginRequest(1, p.Role.RESPONDER, keep_conn=True),
        p.Params(1, NGINX_GET_PARAMS),
        p.StdinEnd(1),
    ]


APACHE_PARAMS = [
    (b"HTTP_HOST", b"localhost"),
    (b"HTTP_USER_AGENT", b"curl/8.5.0"),
    (b"HTTP_ACCEPT", b"*/*"),
    (b"CONTENT_LENGTH", b"11"),
    (b"CONTENT_TYPE", b"application/x-www-form-urlencoded"),
    (b"PATH", b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
    (
        b"SERVER_SIGNATURE",
        b"<address>Apache/2.4.62 (Debian) Server at localhost Port 80</address>\n",
    ),
    (b"SERVER_SOFTWARE", b"Apache/2.4.62 (Debian)"),
    (b"SERVER_NAME", b"localhost"),
    (b"SERVER_ADDR", b"127.0.0.1"),
    (b"SERVER_PORT", b"80"),
    (b"REMOTE_ADDR", b"127.0.0.1"),
    (b"DOCUMENT_ROOT", b"/var/www/html"),
    (b"REQUEST_SCHEME", b"http"),
    (b"CONTEXT_PREFIX", b""),
    (b"CONTEXT_DOCUMENT_ROOT", b"/var/www/html"),
    (b"SERVER_ADMIN", b"webmaster@localhost"),
    (b"SCRIPT_FILENAME", b"proxy:fcgi://127.0.0.1:9000/app/form"),
    (b"REMOTE_PORT", b"51234"),
    (b"GATEWAY_INTERFACE", b"CGI/1.1"),
    (b"SERVER_PROTOCOL", b"HTTP/1.1"),
    (b"REQUEST_METHOD", b"POST"),
    (b"QUERY_STRING", b""),
    (b"REQUEST_URI", b"/app/form"),
    (b"SCRIPT_NAME", b"/app/form"),
]


def test_apache_mod_proxy_fcgi_post_unpadded() -> None:
    """Apache sends no padding at all, FCGI_KEEP_CONN off, and the body in its own records."""
    content = pairs(APACHE_PARAMS)
    wire = (
        begin(1, role=1, flags=0, padding=0)
        + record(4, 1, content, padding=0)
        + record(4, 1, padding=0)
        + record(5, 1, b"name=", padding=0)
        + record(5, 1, b"anysgi", padding=0)
        + record(5, 1, padding=0)
    )
    assert wire[:16] == b"\x01\x01\x00\x01\x00\x08\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    server = p.Connection(p.SERVER)
    server.receive_data(wire)
    assert drain(server) == [
        p.BeginRequest(1, p.Role.RESPONDER, keep_conn=False),
        p.Params(1, dict(APACHE_PARAMS)),
        p.Stdin(1, b"name="),
        p.Stdin(1, b"anysgi"),
        p.StdinEnd(1),
    ]
    assert list(drain(server)) == []


def test_params_split_over_records_with_a_pair_straddling() -> None:
    content = pairs(APACHE_PARAMS) + pair(b"HTTP_COOKIE", b"c" * 300)
    cuts = [0, 7, 8, 100, 101, len(content) - 150, len(content)]
    wire = begin(3) + b"".join(record(4, 3, content[a:b]) for a, b in itertools.pairwise(cuts))
    server = p.Connection(p.SERVER)
    server.receive_data(wire + record(4, 3))
    events = drain(server)
    assert events[1] == p.Params(3, {**dict(APACHE_PARAMS), b"HTTP_COOKIE": b"c" * 300})


# -- framing --------------------------------------------------------------------------------------


@pytest.mark.parametrize("padding", [0, 1, 2, 7, 8, 9, 100, 254, 255])
def test_any_padding_is_accepted(padding: int) -> None:
    server = p.Connection(p.SERVER)
    wire = (
        begin(1, padding=padding)
        + record(4, 1, pair(b"A", b"b"), padding)
        + record(4, 1, padding=padding)
        + record(5, 1, b"xyz", padding)
        + record(5, 1, padding=padding)
    )
    for i in range(0, len(wire), 5):
        server.receive_data(wire[i : i + 5])
    assert drain(server) == [
        p.BeginRequest(1),
        p.Params(1, {b"A": b"b"}),
        p.Stdin(1, b"xyz"),
        p.StdinEnd(1),
    ]


@pytest.mark.parametrize("version", [0, 2, 0xFF])
def test_version_other_than_1_is_refused_naming_the_byte(version: int) -> None:
    server = p.Connection(p.SERVER)
    server.receive_data(header(1, 1, 8, version=version) + bytes(8))
    with pytest.raises(
        p.RemoteProtocolError, match=f"version byte {version} \\(0x{version:02x}\\)"
    ):
        server.next_event()


def test_version_is_checked_before_the_record_is_complete() -> None:
    server = p.Connection(p.SERVER)
    server.receive_data(header(5, 1, 65535, version=9))
    with pytest.raises(p.RemoteProtocolError, match="version byte 9"):
        server.next_event()


def test_reserved_header_byte_is_ignored() -> None:
    server = p.Connection(p.SERVER)
    server.receive_data(header(1, 1, 8, reserved=0xAA) + b"\x00\x01\x00" + b"\xff" * 5)
    assert drain(server) == [p.BeginRequest(1)]


def test_receive_data_takes_bytearray_and_memoryview() -> None:
    server = p.Connection(p.SERVER)
    server.receive_data(bytearray(NGINX_GET[:20]))
    server.receive_data(memoryview(NGINX_GET)[20:])
    assert len(drain(server)) == 3
    # A memoryview of wider items counts in bytes, not items.
    server = p.Connection(p.SERVER)
    server.receive_data(memoryview(NGINX_GET[:24]).cast("I"))
    server.receive_data(memoryview(NGINX_GET[24:]))
    assert len(drain(server)) == 3


# -- management records ---------------------------------------------------------------------------


def test_get_values_layout_both_ways() -> None:
    client = p.Connection(p.CLIENT)
    names = (p.FCGI_MAX_CONNS, p.FCGI_MAX_REQS, p.FCGI_MPXS_CONNS)
    query = client.send(p.GetValues(names))
    assert query == (
        b"\x01\x09\x00\x00\x00\x30\x00\x00"
        b"\x0e\x00FCGI_MAX_CONNS"
        b"\x0d\x00FCGI_MAX_REQS"
        b"\x0f\x00FCGI_MPXS_CONNS"
    )
    server = p.Connection(p.SERVER)
    server.receive_data(query)
    assert drain(server) == [p.GetValues(names)]
    answer = server.send(
        p.GetValuesResult(
            {p.FCGI_MAX_CONNS: b"10", p.FCGI_MAX_REQS: b"50", p.FCGI_MPXS_CONNS: b"1"}
        )
    )
    assert answer == (
        b"\x01\x0a\x00\x00\x00\x35\x03\x00"
        b"\x0e\x02FCGI_MAX_CONNS10"
        b"\x0d\x02FCGI_MAX_REQS50"
        b"\x0f\x01FCGI_MPXS_CONNS1"
        b"\x00\x00\x00"
    )
    client.receive_data(answer)
    assert drain(client) == [
        p.GetValuesResult(
            {p.FCGI_MAX_CONNS: b"10", p.FCGI_MAX_REQS: b"50", p.FCGI_MPXS_CONNS: b"1"}
        )
    ]


def test_get_values_values_are_ignored_but_pairs_must_be_well_formed() -> None:
    server = p.Connection(p.SERVER)
    server.receive_data(record(9, 0, pair(b"FCGI_MAX_REQS", b"ignored")))
    assert drain(server) == [p.GetValues((b"FCGI_MAX_REQS",))]
    server.receive_data(record(9, 0, b"\x0d\x00FCGI_MAX"))
    with pytest.raises(p.RemoteProtocolError, match="GET_VALUES record ended in the middle"):
        server.next_event()


def test_get_values_respects_the_name_limit() -> None:
    server = p.Connection(p.SERVER, max_name_length=8)
    server.receive_data(record(9, 0, pair(b"FCGI_MAX_REQS", b"")))
    with pytest.raises(p.RemoteProtocolError, match="GET_VALUES record: a name of 13 bytes"):
        server.next_event()


@pytest.mark.parametrize("record_type", [0, 12, 100, 255])
def test_unknown_management_record_is_an_event_answered_with_unknown_type(
    record_type: int,
) -> None:
    server = p.Connection(p.SERVER)
    server.receive_data(record(record_type, 0, b"whatever"))
    assert drain(server) == [p.UnknownManagementRecord(record_type)]
    answer = server.send(p.UnknownType(record_type))
    # FCGI_UnknownTypeBody: the type, then 7 reserved bytes.
    assert answer == header(11, 0, 8) + bytes((record_type,)) + bytes(7)
    with pytest.raises(p.LocalProtocolError, match="no management record of that type"):
        server.send(p.UnknownType(record_type))


def test_unknown_type_round_trip_from_a_client_probe() -> None:
    pair_ = ConnectionPair()
    assert pair_.send(p.UnknownManagementRecord(42)) == [p.UnknownManagementRecord(42)]
    assert pair_.send(p.UnknownManagementRecord(42)) == [p.UnknownManagementRecord(42)]
    assert pair_.send(p.UnknownType(42)) == [p.UnknownType(42)]
    assert pair_.send(p.UnknownType(42)) == [p.UnknownType(42)]
    with pytest.raises(p.LocalProtocolError):
        pair_.server.send(p.UnknownType(42))


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (record(5, 0, b"x"), "STDIN record with request id 0, which is reserved"),
        (begin(0), "BEGIN_REQUEST record with request id 0"),
        (record(9, 1, b""), "GET_VALUES record with request id 1: management records"),
        (record(6, 1, b"x"), "STDOUT record received by the SERVER side"),
        (end_request(1), "END_REQUEST record received by the SERVER side"),
        (record(10, 0, b""), "GET_VALUES_RESULT record received by the SERVER side"),
        (record(11, 0, bytes(8)), "UNKNOWN_TYPE record received by the SERVER side"),
        (record(12, 1, b""), "record of unknown type 12 for request 1"),
    ],
)
def test_records_in_the_wrong_place_are_refused_by_a_server(wire: bytes, message: str) -> None:
    server = p.Connection(p.SERVER)
    server.receive_data(begin(1) + wire)
    with pytest.raises(p.RemoteProtocolError, match=message):
        drain(server)


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (begin(1), "BEGIN_REQUEST record received by the CLIENT side"),
        (record(5, 1, b"x"), "STDIN record received by the CLIENT side"),
        (record(9, 0, b""), "GET_VALUES record received by the CLIENT side"),
        (record(12, 0, b""), "management record of unknown type 12 sent to a client"),
        (record(6, 0, b"x"), "STDOUT record with request id 0"),
        (record(11, 1, bytes(8)), "UNKNOWN_TYPE record with request id 1"),
        (record(10, 0, b""), "GET_VALUES_RESULT record, but no GET_VALUES record was sent"),
        (record(11, 0, bytes((12,)) + bytes(7)), "UNKNOWN_TYPE record for type 12, but no"),
        (record(11, 0, bytes(4)), "UNKNOWN_TYPE record has 4 bytes of content, not 8"),
    ],
)
def test_records_in_the_wrong_place_are_refused_by_a_client(wire: bytes, message: str) -> None:
    client = p.Connection(p.CLIENT)
    client.receive_data(wire)
    with pytest.raises(p.RemoteProtocolError, match=message):
        drain(client)


# -- per-request rules, server side ---------------------------------------------------------------


def _params_end(request_id: int = 1) -> bytes:
    return record(4, request_id)


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([record(5, 1, b"x")], "STDIN record for request 1 before its PARAMS stream ended"),
        ([record(5, 1)], "empty STDIN record for request 1 before its PARAMS stream ended"),
        (
            [_params_end(), record(4, 1, pair(b"a", b"b"))],
            "PARAMS record for request 1 after its PARAMS stream ended",
        ),
        ([_params_end(), _params_end()], "empty PARAMS record for request 1 after its PARAMS"),
        (
            [_params_end(), record(5, 1), record(5, 1, b"late")],
            "STDIN record for request 1 after its STDIN stream ended",
        ),
        ([_params_end(), record(8, 1, b"d")], "DATA record for request 1, which is not a FILTER"),
        (
            [_params_end(), record(5, 1), record(8, 1)],
            "empty DATA record for request 1, which is not a FILTER request",
        ),
        ([begin(1)], "BEGIN_REQUEST record for request 1, which is already active"),
        (
            [record(2, 1), record(2, 1)],
            "ABORT_REQUEST record for request 1 after it was aborted",
        ),
        ([record(2, 1), record(4, 1, b"\x01\x01ab")], "PARAMS record for request 1 after it was"),
        ([record(2, 1, b"why")], "ABORT_REQUEST record for request 1 has 3 bytes of content"),
    ],
)
def test_request_order_is_enforced(records: list[bytes], message: str) -> None:
    server = p.Connection(p.SERVER)
    server.receive_data(begin(1) + b"".join(records))
    with pytest.raises(p.RemoteProtocolError, match=message):
        drain(server)


def test_filter_reads_data_after_stdin_only() -> None:
    wire = begin(1, role=3) + _params_end() + record(5, 1, b"form") + record(8, 1, b"file")
    server = p.Connection(p.SERVER)
    server.receive_data(wire)
    with pytest.raises(p.RemoteProtocolError, match="DATA record for request 1 before its STDIN"):
        drain(server)
    server = p.Connection(p.SERVER)
    wire = begin(1, role=3) + _params_end() + record(5, 1, b"form") + record(5, 1)
    wire += record(8, 1, b"file") + record(8, 1, b"more") + record(8, 1)
    server.receive_data(wire)
    assert drain(server) == [
        p.BeginRequest(1, p.Role.FILTER),
        p.Params(1, {}),
        p.Stdin(1, b"form"),
        p.StdinEnd(1),
        p.Data(1, b"file"),
        p.Data(1, b"more"),
        p.DataEnd(1),
    ]
    assert server.request_state(1) == p.RequestState(
        p.State.FILTER_INPUT_ENDED, p.State.STDOUT_IDLE, p.State.STDERR_IDLE
    )


def test_abort_is_allowed_at_any_point_while_active() -> None:
    for stage in range(5):
        steps = [_params_end(), record(5, 1, b"x"), record(5, 1), b""][:stage]
        server = p.Connection(p.SERVER)
        server.receive_data(begin(1) + b"".join(steps) + record(2, 1))
        assert drain(server)[-1] == p.AbortRequest(1)
        assert server.request_state(1) is not None


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        (1, p.Role.RESPONDER),
        (2, p.Role.AUTHORIZER),
        (3, p.Role.FILTER),
        (0, 0),
        (7, 7),
        (0xFFFF, 0xFFFF),
    ],
)
def test_roles_known_and_unknown(role: int, expected: p.Role | int) -> None:
    server = server_at()
    server.receive_data(begin(1, role=role))
    (event,) = drain(server)
    assert isinstance(event, p.BeginRequest)
    assert event.role == expected
    assert type(event.role) is type(expected)
    # Spec 5.5: an unknown role is rejected with END_REQUEST, nothing else.
    if not isinstance(expected, p.Role):
        answer = server.send(p.EndRequest(1, protocol_status=p.ProtocolStatus.UNKNOWN_ROLE))
        assert answer == header(3, 1, 8) + b"\x00\x00\x00\x00\x03\x00\x00\x00"


def test_keep_conn_flag_and_reserved_flag_bits() -> None:
    server = p.Connection(p.SERVER)
    server.receive_data(begin(1, flags=0xFE) + begin(2, flags=0xFF))
    assert drain(server) == [p.BeginRequest(1), p.BeginRequest(2, keep_conn=True)]


@pytest.mark.parametrize("length", [0, 7, 9, 16])
def test_begin_request_body_must_be_8_bytes(length: int) -> None:
    server = p.Connection(p.SERVER)
    server.receive_data(record(1, 1, bytes(length)))
    with pytest.raises(p.RemoteProtocolError, match=f"has {length} bytes of content, not 8"):
        server.next_event()


def test_records_for_inactive_ids_are_skipped() -> None:
    server = p.Connection(p.SERVER)
    server.receive_data(
        record(4, 9, b"\x05garbage that is not even pairs")
        + record(5, 9, b"x" * 1000)
        + record(8, 9, b"d")
        + record(2, 9, b"content is not looked at either")
        + record(5, 9)
        + begin(1)
    )
    assert drain(server) == [p.BeginRequest(1)]
    assert set(server.active_requests) == {1}


def test_records_after_end_request_are_skipped() -> None:
    server = p.Connection(p.SERVER)
    server.receive_data(begin(1) + _params_end() + record(5, 1, b"part of a big upload"))
    assert len(drain(server)) == 3
    server.send(p.Stdout(1, b"Status: 413 Content Too Large\r\n\r\n"))
    server.send(p.EndRequest(1))
    assert server.request_state(1) is None
    server.receive_data(record(5, 1, b"the rest") + record(5, 1) + record(2, 1))
    assert drain(server) == []
    # The id may start a new request.
    server.receive_data(begin(1))
    assert drain(server) == [p.BeginRequest(1)]


def test_multiplexed_requests_interleave() -> None:
    server = p.Connection(p.SERVER)
    wire = (
        begin(1)
        + begin(2, role=3)
        + record(4, 2, pair(b"who", b"two"))
        + record(4, 1, pair(b"who", b"one"))
        + _params_end(2)
        + record(5, 2, b"2a")
        + _params_end(1)
        + record(5, 1, b"1a")
        + record(5, 2)
        + record(5, 1)
        + record(8, 2, b"file")
        + record(2, 1)
        + record(8, 2)
    )
    server.receive_data(wire)
    assert drain(server) == [
        p.BeginRequest(1),
        p.BeginRequest(2, p.Role.FILTER),
        p.Params(2, {b"who": b"two"}),
        p.Stdin(2, b"2a"),
        p.Params(1, {b"who": b"one"}),
        p.Stdin(1, b"1a"),
        p.StdinEnd(2),
        p.StdinEnd(1),
        p.Data(2, b"file"),
        p.AbortRequest(1),
        p.DataEnd(2),
    ]
    out = server.send(p.Stdout(2, b"two")) + server.send(p.Stdout(1, b"one"))
    out += server.send(p.EndRequest(1)) + server.send(p.EndRequest(2, 7))
    assert out == (
        record(6, 2, b"two")
        + record(6, 1, b"one")
        + record(6, 1)
        + end_request(1)
        + record(6, 2)
        + end_request(2, 7)
    )
    assert not server.active_requests


# -- limits ---------------------------------------------------------------------------------------


def test_max_params_size_counts_every_params_byte() -> None:
    content = pairs([(b"A", b"x" * 100), (b"B", b"y" * 100)])  # 206 bytes
    server = p.Connection(p.SERVER, max_params_size=206)
    server.receive_data(begin(1) + record(4, 1, content) + _params_end())
    assert drain(server)[1] == p.Params(1, {b"A": b"x" * 100, b"B": b"y" * 100})
    server = p.Connection(p.SERVER, max_params_size=205)
    server.receive_data(begin(1) + record(4, 1, content[:100]) + record(4, 1, content[100:]))
    with pytest.raises(
        p.RemoteProtocolError,
        match="PARAMS stream of request 1 goes past max_params_size=205",
    ):
        drain(server)


def test_a_declared_2_gib_value_fails_at_once() -> None:
    server = p.Connection(p.SERVER, max_value_length=2**31)
    # name length 1, value length 2**31 - 1, then only one byte of it.
    server.receive_data(begin(1) + record(4, 1, b"\x01\xff\xff\xff\xffN"))
    with pytest.raises(
        p.RemoteProtocolError,
        match="PARAMS stream of request 1: a name-value pair of 2147483653 bytes would take it "
        "past max_params_size=1048576",
    ):
        drain(server)


def test_default_value_limit_names_itself() -> None:
    server = p.Connection(p.SERVER)
    server.receive_data(begin(1) + record(4, 1, b"\x01\xff\xff\xff\xffN"))
    with pytest.raises(
        p.RemoteProtocolError,
        match="PARAMS stream of request 1: a value of 2147483647 bytes exceeds "
        "max_value_length=1048576",
    ):
        drain(server)


def test_name_and_value_limits() -> None:
    server = p.Connection(p.SERVER, max_name_length=4, max_value_length=3)
    server.receive_data(begin(1) + record(4, 1, pair(b"NAME", b"abc")) + _params_end())
    assert drain(server)[1] == p.Params(1, {b"NAME": b"abc"})
    server.receive_data(begin(2) + record(4, 2, pair(b"NAMES", b"")))
    with pytest.raises(p.RemoteProtocolError, match="a name of 5 bytes exceeds max_name_length=4"):
        drain(server)
    server = p.Connection(p.SERVER, max_value_length=3)
    server.receive_data(begin(1) + record(4, 1, pair(b"N", b"abcd")))
    with pytest.raises(
        p.RemoteProtocolError, match="a value of 4 bytes exceeds max_value_length=3"
    ):
        drain(server)


def test_max_concurrent_requests() -> None:
    server = p.Connection(p.SERVER, max_concurrent_requests=2)
    server.receive_data(begin(1) + begin(2))
    assert len(drain(server)) == 2
    server.send(p.EndRequest(1))
    server.receive_data(begin(3))
    assert drain(server) == [p.BeginRequest(3)]
    server.receive_data(begin(4))
    with pytest.raises(
        p.RemoteProtocolError,
        match="BEGIN_REQUEST record for request 4 while 2 requests are active: "
        "max_concurrent_requests=2",
    ):
        server.next_event()
    client = p.Connection(p.CLIENT, max_concurrent_requests=1)
    client.send(p.BeginRequest(1))
    with pytest.raises(p.LocalProtocolError, match="max_concurrent_requests=1"):
        client.send(p.BeginRequest(2))


def test_defaults() -> None:
    assert p.DEFAULT_MAX_PARAMS_SIZE == 1024 * 1024
    assert p.DEFAULT_MAX_CONCURRENT_REQUESTS == 100
    assert 64 * 1024 <= p.DEFAULT_MAX_PARAMS_SIZE <= 1024 * 1024
    content = pair(b"HTTP_COOKIE", b"c" * (64 * 1024))
    server = p.Connection(p.SERVER)
    wire = begin(1)
    for start in range(0, len(content), 65535):
        wire += record(4, 1, content[start : start + 65535])
    server.receive_data(wire + _params_end())
    assert drain(server)[1] == p.Params(1, {b"HTTP_COOKIE": b"c" * (64 * 1024)})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_params_size": 0},
        {"max_name_length": -1},
        {"max_value_length": 1.5},
        {"max_concurrent_requests": 0},
        {"max_concurrent_requests": 65536},
        {"max_params_size": True},
    ],
)
def test_limits_must_be_positive_integers(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must be an integer from 1 to"):
        p.Connection(p.SERVER, **kwargs)  # type: ignore[arg-type]


def test_many_limit_configurations() -> None:
    # Checked configurations are remembered, but not without bound.
    for size in range(1000, 1100):
        conn = p.Connection(p.SERVER, max_params_size=size)
        conn.receive_data(begin(1) + record(4, 1, pair(b"x", b"y" * size)))
        with pytest.raises(p.RemoteProtocolError, match=f"max_params_size={size}"):
            drain(conn)


def test_side_must_be_a_side() -> None:
    with pytest.raises(TypeError, match="SERVER or CLIENT"):
        p.Connection("server")  # type: ignore[arg-type]


# -- EOF and errors -------------------------------------------------------------------------------


def test_eof_after_whole_records_gives_connection_closed_forever() -> None:
    server = p.Connection(p.SERVER)
    server.receive_data(begin(1))
    server.receive_data(b"")
    assert server.next_event() == p.BeginRequest(1)
    assert server.next_event() == p.ConnectionClosed()
    assert server.next_event() == p.ConnectionClosed()
    server.receive_data(b"")
    assert server.next_event() == p.ConnectionClosed()
    # Still active: for the driver, the web server aborted it (nginx's way).
    assert set(server.active_requests) == {1}


@pytest.mark.parametrize(
    ("tail", "message"),
    [
        (b"\x01\x05\x00", r"in the middle of a record header \(5 of its 8 bytes missing\)"),
        (header(5, 1, 10, 6) + b"abc", r"in the middle of a record \(13 of its 24 bytes missing\)"),
        (header(5, 1, 0, 3), r"in the middle of a record \(3 of its 11 bytes missing\)"),
    ],
)
def test_eof_in_the_middle_of_a_record(tail: bytes, message: str) -> None:
    server = p.Connection(p.SERVER)
    server.receive_data(begin(1) + tail)
    server.receive_data(b"")
    assert server.next_event() == p.BeginRequest(1)
    with pytest.raises(p.RemoteProtocolError, match="connection closed " + message):
        server.next_event()


def test_data_after_eof_is_a_local_error() -> None:
    server = p.Connection(p.SERVER)
    server.receive_data(b"")
    with pytest.raises(p.LocalProtocolError, match="after b''"):
        server.receive_data(b"x")
    assert server.next_event() == p.ConnectionClosed()


def test_remote_error_kills_the_connection() -> None:
    server = p.Connection(p.SERVER)
    server.receive_data(begin(1) + record(5, 1, b"early") + begin(2))
    assert server.next_event() == p.BeginRequest(1)
    with pytest.raises(p.RemoteProtocolError) as first:
        server.next_event()
    with pytest.raises(p.RemoteProtocolError) as second:
        server.next_event()
    assert second.value is first.value
    server.receive_data(begin(3))  # ignored
    with pytest.raises(p.RemoteProtocolError):
        server.next_event()
    with pytest.raises(p.LocalProtocolError, match="failed with a RemoteProtocolError"):
        server.send(p.EndRequest(1))
    assert "ERROR" in repr(server)


def test_local_error_leaves_the_connection_usable() -> None:
    server = server_at(begin(1), _params_end())
    before = server.request_state(1)
    for bad in (
        p.Stdout(1, b""),
        p.Stdout(2, b"x"),
        p.Params(1, {}),
        p.EndRequest(1, app_status=-1),
        p.EndRequest(1, protocol_status=9),  # type: ignore[arg-type]
        p.GetValuesResult({}),
    ):
        with pytest.raises(p.LocalProtocolError):
            server.send(bad)
        assert server.request_state(1) == before
    assert server.send(p.Stdout(1, b"ok")) == record(6, 1, b"ok")


# -- sending, server side -------------------------------------------------------------------------


def test_stdout_is_split_at_65535_bytes_with_padding() -> None:
    server = server_at(begin(1), _params_end())
    data = bytes(i % 256 for i in range(65535 * 2 + 3))
    wire = server.send(p.Stdout(1, data))
    assert wire == (
        header(6, 1, 65535, 1)
        + data[:65535]
        + b"\x00"
        + header(6, 1, 65535, 1)
        + data[65535:131070]
        + b"\x00"
        + header(6, 1, 3, 5)
        + data[131070:]
        + bytes(5)
    )
    assert server.send(p.Stdout(1, bytes(65535))) == header(6, 1, 65535, 1) + bytes(65536)


def test_empty_stdout_is_a_local_error() -> None:
    server = server_at(begin(1), _params_end())
    with pytest.raises(p.LocalProtocolError, match="with no data: end the stream with StdoutEnd"):
        server.send(p.Stdout(1, b""))
    with pytest.raises(p.LocalProtocolError, match="with no data: end the stream with StderrEnd"):
        server.send(p.Stderr(1, b""))


def test_output_waits_for_the_end_of_params() -> None:
    server = server_at(begin(1))
    with pytest.raises(
        p.LocalProtocolError, match="cannot send Stdout for request 1 before its PARAMS stream"
    ):
        server.send(p.Stdout(1, b"too early"))
    # But a rejection needs no output.
    assert server.send(p.EndRequest(1, protocol_status=p.ProtocolStatus.OVERLOADED)) == (
        header(3, 1, 8) + b"\x00\x00\x00\x00\x02\x00\x00\x00"
    )


def test_output_may_start_before_stdin_ends() -> None:
    server = server_at(begin(1), _params_end(), record(5, 1, b"part"))
    assert server.send(p.Stdout(1, b"early")) == record(6, 1, b"early")
    server.receive_data(record(5, 1, b"rest") + record(5, 1))
    assert drain(server) == [p.Stdin(1, b"rest"), p.StdinEnd(1)]


def test_filter_output_waits_for_the_end_of_stdin() -> None:
    server = server_at(begin(1, role=3), _params_end())
    with pytest.raises(p.LocalProtocolError, match="before its STDIN stream ended"):
        server.send(p.Stderr(1, b"x"))
    server.receive_data(record(5, 1))
    drain(server)
    assert server.send(p.Stderr(1, b"x")) == record(7, 1, b"x")


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([], [record(6, 1)]),
        ([p.Stdout(1, b"a")], [record(6, 1)]),
        ([p.Stdout(1, b"a"), p.StdoutEnd(1)], []),
        ([p.Stderr(1, b"e")], [record(6, 1), record(7, 1)]),
        ([p.Stdout(1, b"a"), p.Stderr(1, b"e")], [record(6, 1), record(7, 1)]),
        ([p.StdoutEnd(1), p.Stderr(1, b"e")], [record(7, 1)]),
        ([p.StdoutEnd(1), p.StderrEnd(1)], []),
    ],
)
def test_end_request_ends_open_streams_first(events: list[p.Event], expected: list[bytes]) -> None:
    server = server_at(begin(1), _params_end())
    for event in events:
        server.send(event)
    wire = server.send(p.EndRequest(1, 3))
    assert wire == b"".join(expected) + end_request(1, 3)
    with pytest.raises(p.LocalProtocolError, match="which is not active"):
        server.send(p.EndRequest(1))


def test_rejections_do_not_invent_an_stdout_stream() -> None:
    server = server_at(begin(1), _params_end())
    assert server.send(p.EndRequest(1, 0, p.ProtocolStatus.CANT_MPX_CONN)) == end_request(1, 0, 1)
    server = server_at(begin(1), record(2, 1))
    assert server.send(p.EndRequest(1)) == end_request(1)
    server = server_at(begin(1), _params_end(), record(2, 1))
    assert server.send(p.EndRequest(1)) == record(6, 1) + end_request(1)


def test_stream_records_after_their_end_are_local_errors() -> None:
    server = server_at(begin(1), _params_end())
    server.send(p.StdoutEnd(1))
    with pytest.raises(
        p.LocalProtocolError, match="cannot send Stdout for request 1 after its STDOUT stream ended"
    ):
        server.send(p.Stdout(1, b"x"))
    with pytest.raises(p.LocalProtocolError, match="after its STDOUT stream ended"):
        server.send(p.StdoutEnd(1))


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (p.EndRequest(1, app_status=2**32), "app_status must be an int from 0 to 4294967295"),
        (p.EndRequest(1, app_status=True), "app_status must be an int"),
        (p.EndRequest(1, protocol_status=4), "protocol_status must be a ProtocolStatus"),  # type: ignore[arg-type]
        (p.GetValuesResult({}, request_id=1), "request_id must be 0"),
        (p.GetValuesResult({}), "no GetValues to answer"),
        (p.UnknownType(12, request_id=3), "request_id must be 0"),
        (p.BeginRequest(1), "the SERVER side cannot send BeginRequest"),
        (p.ConnectionClosed(), "the SERVER side cannot send ConnectionClosed"),
        ("not an event", "'not an event' is not a FastCGI event"),
    ],
)
def test_server_send_refusals(event: p.Event, message: str) -> None:
    server = server_at(begin(1), _params_end())
    with pytest.raises(p.LocalProtocolError, match=message):
        server.send(event)


def test_end_request_status_values_on_the_wire() -> None:
    server = server_at(begin(1), _params_end())
    assert server.send(p.EndRequest(1, 0xDEADBEEF, p.ProtocolStatus.OVERLOADED)) == (
        header(3, 1, 8) + b"\xde\xad\xbe\xef\x02\x00\x00\x00"
    )


def test_get_values_result_must_fit_in_one_record() -> None:
    server = p.Connection(p.SERVER)
    server.receive_data(record(9, 0, pair(p.FCGI_MAX_REQS, b"")))
    drain(server)
    with pytest.raises(p.LocalProtocolError, match="more than the 65535 of one record"):
        server.send(p.GetValuesResult({b"x": b"y" * 70000}))
    assert server.send(p.GetValuesResult({p.FCGI_MAX_REQS: b"100"})) == record(
        10, 0, pair(p.FCGI_MAX_REQS, b"100")
    )


# -- the client side ------------------------------------------------------------------------------


def test_client_request_bytes() -> None:
    client = p.Connection(p.CLIENT)
    wire = client.send(p.BeginRequest(1, p.Role.RESPONDER, keep_conn=True))
    assert wire == NGINX_GET[:16]
    wire = client.send(p.Params(1, NGINX_GET_PARAMS))
    assert wire == NGINX_GET[16:-8]
    assert client.send(p.StdinEnd(1)) == NGINX_GET[-8:]


def test_client_may_send_a_repeated_name() -> None:
    pair_ = ConnectionPair()
    pair_.send(p.BeginRequest(1))
    pairs_ = [(b"A", b"1"), (b"B", b"2"), (b"A", b"3")]
    wire = pair_.client.send(p.Params(1, pairs_))  # type: ignore[arg-type]
    assert wire == record(4, 1, pairs(pairs_)) + record(4, 1)
    pair_.server.receive_data(wire)
    assert drain(pair_.server) == [p.Params(1, {b"A": b"3", b"B": b"2"})]


def test_client_params_split_into_records_and_end() -> None:
    client = client_with(p.BeginRequest(2))
    params = {b"BIG": b"v" * 70000, b"small": b"s"}
    wire = client.send(p.Params(2, params))
    content = pair(b"BIG", b"v" * 70000) + pair(b"small", b"s")
    assert wire == (
        header(4, 2, 65535, 1)
        + content[:65535]
        + b"\x00"
        + record(4, 2, content[65535:])
        + header(4, 2, 0)
    )
    with pytest.raises(p.LocalProtocolError, match="cannot send Params for request 3"):
        client.send(p.Params(3, {}))
    with pytest.raises(p.LocalProtocolError, match="after its PARAMS stream ended"):
        client.send(p.Params(2, {}))


class Huge(bytes):
    """Claims more bytes than a name-value pair length can say."""

    def __len__(self) -> int:
        return 2**31


def test_management_names_too_long_for_the_wire() -> None:
    client = p.Connection(p.CLIENT)
    with pytest.raises(p.LocalProtocolError, match="cannot send GetValues: a name or value"):
        client.send(p.GetValues((Huge(),)))
    client.send(p.GetValues((b"ok",)))  # not counted as pending before


def test_client_params_too_long_for_the_wire() -> None:
    client = client_with(p.BeginRequest(1))
    with pytest.raises(p.LocalProtocolError, match="cannot send Params for request 1: a name"):
        client.send(p.Params(1, {b"x": Huge()}))
    assert client.request_state(1) == p.RequestState(
        p.State.PARAMS, p.State.STDOUT_IDLE, p.State.STDERR_IDLE
    )


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (p.BeginRequest(0), "request_id must be an int from 1 to 65535, not 0"),
        (p.BeginRequest(65536), "not 65536"),
        (p.BeginRequest(True), "not True"),
        (p.BeginRequest(1, role=-1), "role must fit in two bytes"),
        (p.BeginRequest(1, role=65536), "role must fit in two bytes"),
        (p.GetValues((), request_id=1), "GetValues.request_id must be 0"),
        (p.GetValues((b"x" * 70000,)), "more than the 65535 of one record"),
        (p.UnknownManagementRecord(9), "record_type 9 is GET_VALUES, a type spec 8 defines"),
        (p.UnknownManagementRecord(256), "record_type must be an int from 0 to 255"),
        (p.Stdout(1, b"x"), "the CLIENT side cannot send Stdout"),
        (p.Stdin(5, b"x"), "cannot send Stdin for request 5, which is not active"),
    ],
)
def test_client_send_refusals(event: p.Event, message: str) -> None:
    client = p.Connection(p.CLIENT)
    with pytest.raises(p.LocalProtocolError, match=message):
        client.send(event)
    assert not client.active_requests


def test_client_send_order() -> None:
    client = client_with(p.BeginRequest(1))
    with pytest.raises(p.LocalProtocolError, match="BeginRequest for request 1, which is already"):
        client.send(p.BeginRequest(1))
    with pytest.raises(p.LocalProtocolError, match="Stdin for request 1 before its PARAMS"):
        client.send(p.Stdin(1, b"x"))
    client.send(p.Params(1, {}))
    with pytest.raises(p.LocalProtocolError, match="Data for request 1, which is not a FILTER"):
        client.send(p.Data(1, b"x"))
    with pytest.raises(p.LocalProtocolError, match="with no data: end the stream with StdinEnd"):
        client.send(p.Stdin(1, b""))
    assert client.send(p.Stdin(1, b"body")) == record(5, 1, b"body")
    assert client.send(p.StdinEnd(1)) == record(5, 1)
    assert client.send(p.AbortRequest(1)) == record(2, 1)
    with pytest.raises(p.LocalProtocolError, match="after it was aborted"):
        client.send(p.AbortRequest(1))
    filter_ = client_with(p.BeginRequest(2, p.Role.FILTER), p.Params(2, {}), p.StdinEnd(2))
    assert filter_.send(p.Data(2, b"file")) == record(8, 2, b"file")
    assert filter_.send(p.DataEnd(2)) == record(8, 2)


def test_client_receives_a_response() -> None:
    client = client_with(p.BeginRequest(1), p.Params(1, {}), p.StdinEnd(1))
    client.receive_data(
        record(7, 1, b"warning")
        + record(6, 1, b"Status: 200 OK\r\n\r\n")
        + record(6, 1, b"body")
        + record(6, 1)
        + record(7, 1)
        + end_request(1, 0)
    )
    assert drain(client) == [
        p.Stderr(1, b"warning"),
        p.Stdout(1, b"Status: 200 OK\r\n\r\n"),
        p.Stdout(1, b"body"),
        p.StdoutEnd(1),
        p.StderrEnd(1),
        p.EndRequest(1),
    ]
    assert not client.active_requests
    with pytest.raises(p.LocalProtocolError, match="which is not active"):
        client.send(p.AbortRequest(1))


def test_client_accepts_end_request_with_streams_left_open() -> None:
    # END_REQUEST ends the request, and with it its streams; some applications leave STDERR
    # (or even STDOUT) without its empty record.
    client = client_with(p.BeginRequest(1), p.Params(1, {}))
    client.receive_data(record(6, 1, b"x") + record(7, 1, b"e") + end_request(1, 5, 0))
    assert drain(client)[-1] == p.EndRequest(1, 5, p.ProtocolStatus.REQUEST_COMPLETE)


def test_client_accepts_an_early_rejection() -> None:
    client = client_with(p.BeginRequest(1, role=9))
    client.receive_data(end_request(1, 0, 3))
    assert drain(client) == [p.EndRequest(1, 0, p.ProtocolStatus.UNKNOWN_ROLE)]
    with pytest.raises(p.LocalProtocolError, match="Params for request 1, which is not active"):
        client.send(p.Params(1, {}))


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([record(6, 1, b"x")], "STDOUT record for request 1 before its PARAMS stream ended"),
        ([record(7, 1)], "empty STDERR record for request 1 before its PARAMS stream ended"),
        ([record(6, 2, b"x"), record(6, 2), record(6, 2, b"y")], "after its STDOUT stream ended"),
        ([record(6, 2), record(6, 2)], "empty STDOUT record for request 2 after its STDOUT"),
        ([record(7, 2), record(7, 2, b"late")], "STDERR record for request 2 after its STDERR"),
        ([record(3, 2, bytes(9))], "END_REQUEST record for request 2 has 9 bytes of content"),
        ([end_request(2, 0, 4)], "protocolStatus 4, which spec 5.5 does not define"),
    ],
)
def test_client_refuses_a_bad_response(records: list[bytes], message: str) -> None:
    client = client_with(p.BeginRequest(1), p.BeginRequest(2), p.Params(2, {}))
    client.receive_data(b"".join(records))
    with pytest.raises(p.RemoteProtocolError, match=message):
        drain(client)


def test_client_skips_records_for_requests_it_does_not_have() -> None:
    client = client_with(p.BeginRequest(1), p.Params(1, {}))
    client.receive_data(
        end_request(7)
        + record(6, 8, b"stray")
        + record(7, 8, b"stray")
        + record(3, 9, b"bad body too")
        + record(6, 1, b"mine")
    )
    assert drain(client) == [p.Stdout(1, b"mine")]


def test_client_sees_output_that_crossed_its_abort() -> None:
    client = client_with(p.BeginRequest(1), p.Params(1, {}), p.AbortRequest(1))
    client.receive_data(record(6, 1, b"already sent") + record(6, 1) + end_request(1))
    assert drain(client) == [p.Stdout(1, b"already sent"), p.StdoutEnd(1), p.EndRequest(1)]
    client = client_with(p.BeginRequest(1), p.AbortRequest(1))
    client.receive_data(record(6, 1, b"x"))
    with pytest.raises(p.RemoteProtocolError, match="aborted before it could send output"):
        drain(client)


# -- round trips and odds and ends ----------------------------------------------------------------


def test_full_exchange_through_a_connection_pair() -> None:
    wire = ConnectionPair()
    received = wire.send_all(
        [
            p.BeginRequest(1, p.Role.RESPONDER, True),
            p.Params(1, {b"REQUEST_METHOD": b"POST"}),
            p.Stdin(1, b"x" * 100_000),
            p.StdinEnd(1),
            p.Stdout(1, b"Status: 201\r\n\r\n"),
            p.Stderr(1, b"log"),
            p.EndRequest(1, 0),
        ]
    )
    assert received == [
        p.BeginRequest(1, p.Role.RESPONDER, True),
        p.Params(1, {b"REQUEST_METHOD": b"POST"}),
        p.Stdin(1, b"x" * 65535),
        p.Stdin(1, b"x" * (100_000 - 65535)),
        p.StdinEnd(1),
        p.Stdout(1, b"Status: 201\r\n\r\n"),
        p.Stderr(1, b"log"),
        p.StdoutEnd(1),
        p.StderrEnd(1),
        p.EndRequest(1),
    ]
    assert not wire.client.active_requests
    assert not wire.server.active_requests


def test_public_helpers() -> None:
    server = p.Connection(p.SERVER)
    assert server.side is p.SERVER
    assert p.Connection(p.CLIENT).side is p.CLIENT
    active = server.active_requests
    server.receive_data(begin(4) + begin(2))
    drain(server)
    assert sorted(active) == [2, 4]  # a live view
    assert not hasattr(active, "add")
    assert server.request_state(4) == p.RequestState(
        p.State.PARAMS, p.State.STDOUT_IDLE, p.State.STDERR_IDLE
    )
    assert server.request_state(3) is None
    assert repr(server) == "<Connection SERVER active_requests=[2, 4]>"
    assert repr(p.NEED_DATA) == str(p.NEED_DATA) == "NEED_DATA"
    assert p.NEED_DATA is p.NeedData.NEED_DATA
    assert server.next_event() is p.NEED_DATA


def test_events_are_frozen_and_slotted() -> None:
    event = p.Stdin(1, b"x")
    with pytest.raises(AttributeError):
        event.data = b"y"  # type: ignore[misc]
    assert not hasattr(event, "__dict__")
    assert p.GetValues((b"a",)).request_id == 0
    assert p.ConnectionClosed(request_id=0) == p.ConnectionClosed()


def test_fast_makers_build_the_same_events_as_init() -> None:
    from anysgi.fastcgi.protocol import _events as e

    cases = [
        (e.make_begin_request(1, p.Role.FILTER, True), p.BeginRequest(1, p.Role.FILTER, True)),
        (e.make_params(2, {b"a": b"b"}), p.Params(2, {b"a": b"b"})),
        (e.make_stdin(3, b"x"), p.Stdin(3, b"x")),
        (e.make_stdin_end(3), p.StdinEnd(3)),
        (e.make_data(4, b"d"), p.Data(4, b"d")),
        (e.make_data_end(4), p.DataEnd(4)),
        (e.make_abort_request(5), p.AbortRequest(5)),
        (e.make_stdout(6, b"o"), p.Stdout(6, b"o")),
        (e.make_stdout_end(6), p.StdoutEnd(6)),
        (e.make_stderr(7, b"e"), p.Stderr(7, b"e")),
        (e.make_stderr_end(7), p.StderrEnd(7)),
        (
            e.make_end_request(8, 1, p.ProtocolStatus.OVERLOADED),
            p.EndRequest(8, 1, p.ProtocolStatus.OVERLOADED),
        ),
    ]
    for made, built in cases:
        assert made == built
        assert type(made) is type(built)
        assert repr(made) == repr(built)
        with pytest.raises(AttributeError):
            setattr(made, "request_id", 0)  # noqa: B010  (frozen: must refuse)
