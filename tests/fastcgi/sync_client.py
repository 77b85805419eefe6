"""A blocking FastCGI client for tests that run the server in another process."""

from __future__ import annotations

import socket

from anysgi.fastcgi import protocol as p

from ._helpers import Response, params, parse_response


def connect(address: str, timeout: float = 10.0) -> socket.socket:
    if address.startswith("unix:"):
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(timeout)
        sock.connect(address[5:])
        return sock
    host, _, port = address.rpartition(":")
    return socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)


def request(
    address: str | socket.socket,
    request_params: dict[bytes, bytes] | None = None,
    body: bytes = b"",
    *,
    keep_conn: bool = False,
    timeout: float = 10.0,
) -> Response:
    """One request on a new connection (or on *address* if it is a connected socket)."""
    sock = connect(address, timeout) if isinstance(address, str) else address
    try:
        conn = p.Connection(p.CLIENT)
        data = conn.send(p.BeginRequest(1, keep_conn=keep_conn))
        data += conn.send(p.Params(1, request_params or params()))
        if body:
            data += conn.send(p.Stdin(1, body))
        data += conn.send(p.StdinEnd(1))
        sock.sendall(data)
        stdout = bytearray()
        while True:
            event = conn.next_event()
            if event is p.NEED_DATA:
                conn.receive_data(sock.recv(65536))
                continue
            if isinstance(event, p.Stdout):
                stdout += event.data
            elif isinstance(event, p.EndRequest):
                return parse_response(bytes(stdout), event)
            elif isinstance(event, p.ConnectionClosed):
                return parse_response(bytes(stdout), None)
    finally:
        if isinstance(address, str):
            sock.close()
