"""Helpers for the codec tests: wire bytes built from the spec's layout, and connection pairs.

The record builders here use :mod:`struct` with the layouts of spec 3.3, 5.1 and 5.5 written
out again, not the codec's own encoder, so a test that compares the codec's output with them
checks the codec against the spec rather than against itself.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from anysgi.fastcgi import protocol as p


def header(
    record_type: int,
    request_id: int,
    content_length: int,
    padding_length: int = 0,
    version: int = 1,
    reserved: int = 0,
) -> bytes:
    """FCGI_Header: version, type, requestIdB1, requestIdB0, contentLengthB1, contentLengthB0,
    paddingLength, reserved."""
    return bytes(
        (
            version,
            record_type,
            request_id >> 8,
            request_id & 0xFF,
            content_length >> 8,
            content_length & 0xFF,
            padding_length,
            reserved,
        )
    )


def record(
    record_type: int, request_id: int, content: bytes = b"", padding: int | None = None
) -> bytes:
    """A record; padded to a multiple of 8 unless *padding* says how many bytes."""
    if padding is None:
        padding = -len(content) % 8
    return header(record_type, request_id, len(content), padding) + content + b"\x00" * padding


def begin(request_id: int, role: int = 1, flags: int = 0, padding: int | None = None) -> bytes:
    """BEGIN_REQUEST: roleB1, roleB0, flags, reserved[5]."""
    body = bytes((role >> 8, role & 0xFF, flags, 0, 0, 0, 0, 0))
    return record(1, request_id, body, padding)


def end_request(request_id: int, app_status: int = 0, protocol_status: int = 0) -> bytes:
    """END_REQUEST: appStatusB3..B0, protocolStatus, reserved[3]."""
    body = struct.pack(">I", app_status) + bytes((protocol_status, 0, 0, 0))
    return record(3, request_id, body)


def length(n: int) -> bytes:
    """A name-value pair length (spec 3.4): one byte below 128, else four with the top bit."""
    return bytes((n,)) if n < 128 else struct.pack(">I", n | 0x8000_0000)


def pair(name: bytes, value: bytes) -> bytes:
    return length(len(name)) + length(len(value)) + name + value


def pairs(items: Iterable[tuple[bytes, bytes]]) -> bytes:
    return b"".join(pair(name, value) for name, value in items)


def drain(conn: p.Connection) -> list[p.Event]:
    """Every event the connection has, up to NEED_DATA (or a repeated ConnectionClosed)."""
    events: list[p.Event] = []
    while True:
        event = conn.next_event()
        if event is p.NEED_DATA:
            return events
        events.append(event)
        if isinstance(event, p.ConnectionClosed):
            return events


def feed(conn: p.Connection, *chunks: bytes) -> list[p.Event]:
    """Feed chunks one by one, draining after each; returns every event."""
    events: list[p.Event] = []
    for chunk in chunks:
        conn.receive_data(chunk)
        events += drain(conn)
    return events


@dataclass
class ConnectionPair:
    """A client and a server Connection joined by an in-memory wire (h11's idea).

    :meth:`send` sends an event from the side that may send it and returns what the other
    side received.
    """

    client: p.Connection = field(default_factory=lambda: p.Connection(p.CLIENT))
    server: p.Connection = field(default_factory=lambda: p.Connection(p.SERVER))

    def send(self, event: p.Event) -> list[p.Event]:
        sender, receiver = self._route(event)
        data = sender.send(event)
        receiver.receive_data(data)
        return drain(receiver)

    def send_all(self, events: Sequence[p.Event]) -> list[p.Event]:
        received: list[p.Event] = []
        for event in events:
            received += self.send(event)
        return received

    def _route(self, event: p.Event) -> tuple[p.Connection, p.Connection]:
        if isinstance(event, CLIENT_EVENTS):
            return self.client, self.server
        return self.server, self.client


CLIENT_EVENTS = (
    p.BeginRequest,
    p.Params,
    p.Stdin,
    p.StdinEnd,
    p.Data,
    p.DataEnd,
    p.AbortRequest,
    p.GetValues,
    p.UnknownManagementRecord,
)
SERVER_EVENTS = (
    p.Stdout,
    p.StdoutEnd,
    p.Stderr,
    p.StderrEnd,
    p.EndRequest,
    p.GetValuesResult,
    p.UnknownType,
)


def server_at(*records: bytes, **limits: int) -> p.Connection:
    """A server Connection that has received *records* (and drained their events)."""
    conn = p.Connection(p.SERVER, **limits)
    if records:
        conn.receive_data(b"".join(records))
        drain(conn)
    return conn


def client_with(*events: p.Event, **limits: int) -> p.Connection:
    """A client Connection that has sent *events*."""
    conn = p.Connection(p.CLIENT, **limits)
    for event in events:
        conn.send(event)
    return conn
