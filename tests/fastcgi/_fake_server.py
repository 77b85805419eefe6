"""Scripted FastCGI servers for the client tests: real sockets, blocking threads, our codec.

A :class:`FakeServer` listens on loopback TCP (or a Unix socket) and runs a handler in a
thread of its own for each connection it accepts. Handlers speak the SERVER side of
:mod:`anysgi.fastcgi.protocol` through :class:`FakeConnection`, or write raw bytes to play a
broken server. Being threads with blocking sockets, the same server works for sync tests and
for async tests on asyncio and trio alike.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from anysgi.fastcgi import protocol as p

Handler = Callable[["FakeConnection"], None]


@dataclass
class FakeRequest:
    request_id: int
    role: int
    keep_conn: bool
    params: dict[bytes, bytes] = field(default_factory=dict)
    body: bytes = b""

    def json_params(self) -> dict[str, str]:
        return {k.decode("latin-1"): v.decode("latin-1") for k, v in self.params.items()}


class FakeConnection:
    """One accepted connection, as the application sees it."""

    def __init__(self, server: FakeServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.conn = p.Connection(p.SERVER)
        self.closed = False

    def next_event(self) -> p.Event:
        """The next event from the client, reading as needed; ConnectionClosed at EOF."""
        while True:
            event = self.conn.next_event()
            if event is not p.NEED_DATA:
                return event
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            self.conn.receive_data(data)

    def read_request(self) -> FakeRequest | None:
        """A whole request (up to StdinEnd); answers GET_VALUES on the way; None at EOF."""
        request: FakeRequest | None = None
        body = bytearray()
        while True:
            event = self.next_event()
            if isinstance(event, p.ConnectionClosed):
                return None
            if isinstance(event, p.GetValues):
                values = {n: v for n, v in self.server.values.items() if n in event.names}
                self.send(p.GetValuesResult(values))
            elif isinstance(event, p.BeginRequest):
                request = FakeRequest(event.request_id, int(event.role), event.keep_conn)
            elif isinstance(event, p.Params):
                assert request is not None
                request.params = event.params
            elif isinstance(event, p.Stdin):
                body += event.data
            elif isinstance(event, p.StdinEnd):
                assert request is not None
                request.body = bytes(body)
                return request

    def send(self, *events: p.Event) -> None:
        self.send_raw(b"".join(self.conn.send(event) for event in events))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def respond(
        self, request: FakeRequest, body: bytes, head: bytes = b"Content-Type: text/plain\r\n"
    ) -> None:
        """A complete CGI response and END_REQUEST; closes unless the client kept it."""
        self.send(
            p.Stdout(request.request_id, head + b"\r\n" + body),
            p.StdoutEnd(request.request_id),
            p.EndRequest(request.request_id),
        )
        if not request.keep_conn:
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()


def echo_handler(connection: FakeConnection) -> None:
    """Answer every request with its params and body as JSON, until the client closes."""
    while True:
        request = connection.read_request()
        if request is None:
            return
        payload = {
            "params": request.json_params(),
            "body": request.body.decode("latin-1"),
            "keep_conn": request.keep_conn,
            "role": request.role,
            "request_id": request.request_id,
        }
        connection.respond(
            request,
            json.dumps(payload).encode(),
            head=b"Content-Type: application/json\r\n",
        )
        if connection.closed:
            return


class FakeServer:
    """A FastCGI server on loopback whose connections are handled by *handler* in threads."""

    def __init__(
        self,
        handler: Handler = echo_handler,
        *,
        unix_path: Path | None = None,
        backlog: int = 64,
        values: dict[bytes, bytes] | None = None,
    ) -> None:
        self.handler = handler
        self.values = values if values is not None else {p.FCGI_MPXS_CONNS: b"0"}
        if unix_path is not None:
            self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.listener.bind(os.fspath(unix_path))
            self.address = f"unix:{unix_path}"
        else:
            self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.listener.bind(("127.0.0.1", 0))
            self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.listener.listen(backlog)
        self.connections: list[FakeConnection] = []
        self.errors: list[BaseException] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        #: Set each time a connection is accepted.
        self.accepted_event = threading.Event()

    @property
    def accepted(self) -> int:
        """How many connections were accepted so far."""
        return len(self.connections)

    def _accept_loop(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            connection = FakeConnection(self, sock)
            with self._lock:
                self.connections.append(connection)
            self.accepted_event.set()
            thread = threading.Thread(target=self._run, args=(connection,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _run(self, connection: FakeConnection) -> None:
        try:
            self.handler(connection)
        except BaseException as exc:  # reported by __exit__, so tests see handler bugs
            if not (isinstance(exc, OSError) and connection.closed):
                self.errors.append(exc)
        finally:
            connection.close()

    def __enter__(self) -> FakeServer:
        thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._threads.append(thread)
        thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for connection in list(self.connections):
            connection.close()
        for thread in self._threads:
            thread.join(10)
        if self.errors and exc_info[0] is None:
            raise AssertionError(f"fake server handler failed: {self.errors!r}") from (
                self.errors[0]
            )


@contextlib.contextmanager
def fake_server(handler: Handler = echo_handler, **kwargs: object) -> Iterator[FakeServer]:
    with FakeServer(handler, **kwargs) as server:  # type: ignore[arg-type]
        yield server
