"""Drive the FastCGI server with the CLIENT side of the codec, over real sockets or in memory."""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import ByteStream
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from anysgi._cgi import parse_cgi_response_head, split_cgi_response
from anysgi.fastcgi import protocol as p
from anysgi.fastcgi import serve
from anysgi.fastcgi._config import ServerConfig
from anysgi.fastcgi._handler import ConnectionHandler


def params(
    method: str = "GET",
    uri: str = "/",
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    **extra: str,
) -> dict[bytes, bytes]:
    """CGI params as nginx's stock fastcgi_params sends them."""
    path, _, query = uri.partition("?")
    result = {
        b"QUERY_STRING": query.encode(),
        b"REQUEST_METHOD": method.encode(),
        b"CONTENT_TYPE": b"application/octet-stream" if body else b"",
        b"CONTENT_LENGTH": str(len(body)).encode() if body else b"",
        b"SCRIPT_NAME": path.encode(),
        b"REQUEST_URI": uri.encode(),
        b"SERVER_PROTOCOL": b"HTTP/1.1",
        b"REQUEST_SCHEME": b"http",
        b"GATEWAY_INTERFACE": b"CGI/1.1",
        b"REMOTE_ADDR": b"127.0.0.1",
        b"REMOTE_PORT": b"50000",
        b"SERVER_ADDR": b"127.0.0.1",
        b"SERVER_PORT": b"80",
        b"SERVER_NAME": b"localhost",
        b"HTTP_HOST": b"localhost",
    }
    for name, value in (headers or {}).items():
        result[b"HTTP_" + name.upper().replace("-", "_").encode()] = value.encode()
    for name, value in extra.items():
        result[name.encode()] = value.encode()
    return result


@dataclass
class Response:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    end: p.EndRequest | None
    stderr: bytes = b""

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


@dataclass
class Client:
    """A FastCGI client connection: the web server's end."""

    stream: ByteStream
    conn: p.Connection = field(default_factory=lambda: p.Connection(p.CLIENT))
    eof: bool = False
    #: Events received for requests other than the one being awaited.
    backlog: list[p.Event] = field(default_factory=list)

    @classmethod
    async def connect(cls, address: str) -> Client:
        if address.startswith("unix:"):
            return cls(await anyio.connect_unix(address[5:]))
        host, _, port = address.rpartition(":")
        return cls(await anyio.connect_tcp(host.strip("[]"), int(port)))

    async def aclose(self) -> None:
        await self.stream.aclose()

    async def send(self, *events: p.Event) -> None:
        await self.stream.send(b"".join(self.conn.send(event) for event in events))

    async def send_raw(self, data: bytes) -> None:
        await self.stream.send(data)

    async def next_event(self) -> p.Event:
        if self.backlog:
            return self.backlog.pop(0)
        while True:
            event = self.conn.next_event()
            if event is not p.NEED_DATA:
                assert not isinstance(event, p.NeedData)
                return event
            try:
                data = await self.stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                data = b""
            self.conn.receive_data(data)

    async def read_until_closed(self) -> bytes:
        """Everything the server still sends, raw, until it closes the connection."""
        chunks = []
        with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
            while True:
                chunks.append(await self.stream.receive())
        return b"".join(chunks)

    async def start(
        self,
        request_params: dict[bytes, bytes],
        body: bytes | None = b"",
        *,
        request_id: int = 1,
        keep_conn: bool = True,
    ) -> None:
        """BEGIN_REQUEST and PARAMS, then *body* and the end of STDIN unless body is None."""
        events: list[p.Event] = [
            p.BeginRequest(request_id, keep_conn=keep_conn),
            p.Params(request_id, request_params),
        ]
        if body is not None:
            if body:
                events.append(p.Stdin(request_id, body))
            events.append(p.StdinEnd(request_id))
        await self.send(*events)

    async def response(self, request_id: int = 1) -> Response:
        """Collect STDOUT and STDERR of *request_id* until its END_REQUEST."""
        stdout = bytearray()
        stderr = bytearray()
        others = []
        while True:
            event = await self.next_event()
            if isinstance(event, p.ConnectionClosed):
                end = None
                break
            if getattr(event, "request_id", None) != request_id:
                others.append(event)
                continue
            if isinstance(event, p.Stdout):
                stdout += event.data
            elif isinstance(event, p.Stderr):
                stderr += event.data
            elif isinstance(event, p.EndRequest):
                end = event
                break
        self.backlog.extend(others)
        return parse_response(bytes(stdout), end, bytes(stderr))

    async def request(
        self,
        request_params: dict[bytes, bytes] | None = None,
        body: bytes = b"",
        *,
        request_id: int = 1,
        keep_conn: bool = True,
    ) -> Response:
        await self.start(
            request_params if request_params is not None else params(),
            body,
            request_id=request_id,
            keep_conn=keep_conn,
        )
        return await self.response(request_id)


def parse_response(stdout: bytes, end: p.EndRequest | None, stderr: bytes = b"") -> Response:
    split = split_cgi_response(stdout)
    if split is None:
        return Response(0, [], stdout, end, stderr)
    head, body = split
    status, headers = parse_cgi_response_head(head)
    return Response(status, headers, body, end, stderr)


@contextlib.asynccontextmanager
async def running_server(app: Any, **options: Any) -> AsyncIterator[list[str]]:
    """Run ``serve(app, **options)`` (default bind 127.0.0.1:0) and yield its addresses."""
    options.setdefault("bind", "127.0.0.1:0")
    options.setdefault("web_server_addrs", None)
    async with anyio.create_task_group() as task_group:
        stop = anyio.Event()
        addresses = await task_group.start(
            lambda task_status: serve(
                app, shutdown_trigger=stop.wait, task_status=task_status, **options
            )
        )
        try:
            yield addresses
        finally:
            stop.set()


@contextlib.asynccontextmanager
async def connected(app: Any, **options: Any) -> AsyncIterator[Client]:
    async with running_server(app, **options) as addresses:
        client = await Client.connect(addresses[0])
        try:
            yield client
        finally:
            await client.aclose()


# -- in memory ---------------------------------------------------------------------------------


class MemoryStream:
    """The server's end of an in-memory connection; records every write separately."""

    def __init__(
        self, incoming: MemoryObjectReceiveStream[bytes], outgoing: MemoryObjectSendStream[bytes]
    ) -> None:
        self.incoming = incoming
        self.outgoing = outgoing
        self.writes: list[bytes] = []
        self.pending = b""
        self.eof_sent = False
        self.closed = False

    async def receive(self, max_bytes: int) -> bytes:
        if not self.pending:
            try:
                self.pending = await self.incoming.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                return b""
        data, self.pending = self.pending[:max_bytes], self.pending[max_bytes:]
        return data

    receive_after_checkpoint = receive

    async def send(self, data: bytes) -> None:
        if self.eof_sent or self.closed:
            raise BrokenPipeError("closed")
        data = bytes(data)
        self.writes.append(data)
        try:
            self.outgoing.send_nowait(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise BrokenPipeError("peer gone") from exc

    async def send_eof(self) -> None:
        self.eof_sent = True
        self.outgoing.close()

    def abort(self) -> None:
        self.eof_sent = True
        self.outgoing.close()
        self.incoming.close()

    async def aclose(self) -> None:
        self.closed = True
        self.outgoing.close()
        self.incoming.close()


class MemoryClientStream(ByteStream):
    """The client's end of an in-memory connection, as an anyio byte stream."""

    def __init__(
        self, incoming: MemoryObjectReceiveStream[bytes], outgoing: MemoryObjectSendStream[bytes]
    ) -> None:
        self.incoming = incoming
        self.outgoing = outgoing

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self.incoming.receive()

    async def send(self, item: bytes) -> None:
        await self.outgoing.send(item)

    async def send_eof(self) -> None:
        self.outgoing.close()

    async def aclose(self) -> None:
        self.outgoing.close()
        self.incoming.close()


@contextlib.asynccontextmanager
async def in_memory(
    app: Any, config: ServerConfig | None = None, state: dict[str, Any] | None = None
) -> AsyncIterator[tuple[Client, MemoryStream, ConnectionHandler]]:
    """A ConnectionHandler over an in-memory stream, and a Client on the other end."""
    to_server_send, to_server_receive = anyio.create_memory_object_stream[bytes](math.inf)
    to_client_send, to_client_receive = anyio.create_memory_object_stream[bytes](math.inf)
    server_stream = MemoryStream(to_server_receive, to_client_send)
    client = Client(MemoryClientStream(to_client_receive, to_server_send))
    handler = ConnectionHandler(
        server_stream,
        app,
        config or ServerConfig(web_server_addrs=None),
        state,
        "memory-peer",
    )
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(handler.run)
        try:
            yield client, server_stream, handler
        finally:
            await client.aclose()


# -- apps ----------------------------------------------------------------------------------------


async def read_body(receive: Callable[[], Any]) -> bytes:
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise OSError("disconnected while reading the body")
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return bytes(body)


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Echoes method, path, root_path, query and body; ignores lifespan."""
    if scope["type"] == "lifespan":
        raise RuntimeError("no lifespan")
    body = await read_body(receive)
    text = (
        f"{scope['method']} {scope['path']} root={scope['root_path']!r} "
        f"query={scope['query_string'].decode()} len={len(body)}\n"
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": text + body})
