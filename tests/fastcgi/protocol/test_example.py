"""The codec example of the reference docs works, over a real socket pair."""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path
from types import ModuleType

from anysgi.fastcgi import protocol as p

from .helpers import drain

EXAMPLE = Path(__file__).parents[3] / "examples" / "fastcgi_codec_server.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fastcgi_codec_server", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _exchange(events: list[p.Event], *, close: bool) -> list[p.Event]:
    client = p.Connection(p.CLIENT)
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.sendall(b"".join(client.send(event) for event in events))
        if close:
            ours.shutdown(socket.SHUT_WR)
        _load().serve_connection(theirs)
        theirs.shutdown(socket.SHUT_WR)
        received: list[p.Event] = []
        while chunk := ours.recv(65536):
            client.receive_data(chunk)
            received += drain(client)
        client.receive_data(b"")
        return [*received, *drain(client)]


def test_example_answers_a_request_and_closes() -> None:
    received = _exchange(
        [
            p.BeginRequest(1),
            p.Params(1, {b"REQUEST_URI": b"/hi"}),
            p.Stdin(1, b"ignored"),
            p.StdinEnd(1),
        ],
        close=False,
    )
    assert received == [
        p.Stdout(1, b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nHello /hi"),
        p.StdoutEnd(1),
        p.EndRequest(1),
        p.ConnectionClosed(),
    ]


def test_example_keeps_the_connection_and_answers_management_records() -> None:
    received = _exchange(
        [
            p.GetValues((p.FCGI_MAX_REQS, b"NOT_A_VARIABLE")),
            p.UnknownManagementRecord(77),
            p.BeginRequest(1, p.Role.AUTHORIZER, keep_conn=True),
            p.BeginRequest(2, keep_conn=True),
            p.Params(2, {}),
            p.AbortRequest(2),
        ],
        close=True,
    )
    assert received == [
        p.GetValuesResult({p.FCGI_MAX_REQS: b"1"}),
        p.UnknownType(77),
        p.EndRequest(1, protocol_status=p.ProtocolStatus.UNKNOWN_ROLE),
        p.StdoutEnd(2),  # spec 6.1: STDOUT is always sent, even empty
        p.EndRequest(2),
        p.ConnectionClosed(),
    ]
