"""A small in-process ASGI server for tests: scripted ``receive()``, recorded ``send()``.

It behaves like the real servers where that matters to an adapter: once the scripted request
messages are used up, ``receive()`` blocks until the response is complete or the client
"disconnects", then returns ``http.disconnect`` (uvicorn, hypercorn and granian do this);
``send()`` after a disconnect is silently dropped (as in all three) or raises an
:class:`OSError` (``send_fails=True``), and can be slowed down to exercise backpressure.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

Message = dict[str, Any]
ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def http_scope(
    method: str = "GET",
    path: str = "/",
    *,
    query_string: bytes = b"",
    root_path: str = "",
    headers: Iterable[tuple[bytes, bytes]] = (),
    http_version: str = "1.1",
    scheme: str = "http",
    server: tuple[str, int | None] | None = ("testserver", 80),
    client: tuple[str, int] | None = ("127.0.0.1", 50000),
    extensions: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An ASGI ``http`` scope as servers build it (``path`` includes ``root_path``)."""
    raw = (root_path + path).encode("utf-8")
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": http_version,
        "method": method,
        "scheme": scheme,
        "path": root_path + path,
        "raw_path": raw,
        "query_string": query_string,
        "root_path": root_path,
        "headers": [(name.lower(), value) for name, value in headers],
        "client": client,
        "server": server,
    }
    if extensions is not None:
        scope["extensions"] = extensions
    return scope


def body_messages(*chunks: bytes) -> list[Message]:
    """``http.request`` messages carrying *chunks*, the last with ``more_body`` False."""
    if not chunks:
        chunks = (b"",)
    return [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]


@dataclass
class Result:
    """What the application sent, and what it asked for."""

    sent: list[Message] = field(default_factory=list)
    received: int = 0  # how many scripted messages receive() has handed out

    @property
    def start(self) -> Message:
        starts = [m for m in self.sent if m["type"] == "http.response.start"]
        assert len(starts) == 1, f"expected one http.response.start, got {self.sent}"
        return starts[0]

    @property
    def status(self) -> int:
        return int(self.start["status"])

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(bytes(k), bytes(v)) for k, v in self.start["headers"]]

    def header(self, name: bytes) -> bytes | None:
        values = [v for k, v in self.headers if k == name]
        return values[0] if values else None

    @property
    def body_messages(self) -> list[Message]:
        return [m for m in self.sent if m["type"] == "http.response.body"]

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.body_messages)

    @property
    def complete(self) -> bool:
        """Whether the response ended with ``more_body`` False (else it was cut)."""
        bodies = self.body_messages
        return bool(bodies) and not bodies[-1].get("more_body", False)


class Driver:
    """Runs one ASGI call.

    :param messages: what ``receive()`` returns, in order, before it starts to block.
    :param disconnect_after_sends: the client goes away once this many ``http.response.body``
        messages have been sent: ``receive()`` then returns ``http.disconnect``.
    :param send_fails: after a disconnect, ``send()`` raises :class:`OSError` instead of
        dropping the message.
    :param send_gate: if set, every ``http.response.body`` send waits for the next item
        of this stream first (a client that reads slowly).
    """

    def __init__(
        self,
        messages: Sequence[Message] = (),
        *,
        disconnect_after_sends: int | None = None,
        send_fails: bool = False,
        send_gate: anyio.abc.ObjectReceiveStream[None] | None = None,
    ) -> None:
        self.messages = list(messages)
        self.result = Result()
        self.disconnect_after_sends = disconnect_after_sends
        self.send_fails = send_fails
        self.send_gate = send_gate
        self.finished = anyio.Event()  # response complete, or the client has gone
        self.disconnected = False
        self.body_sends = 0

    def disconnect(self) -> None:
        self.disconnected = True
        self.finished.set()

    async def receive(self) -> Message:
        if self.messages and not self.disconnected:
            self.result.received += 1
            return self.messages.pop(0)
        await self.finished.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if self.disconnected:
            if self.send_fails:
                raise OSError("the client has disconnected")
            return
        if message["type"] == "http.response.body" and self.send_gate is not None:
            await self.send_gate.receive()
        self.result.sent.append(message)
        if message["type"] in ("http.response.body", "http.response.pathsend"):
            self.body_sends += 1
            if message["type"] == "http.response.pathsend" or not message.get("more_body"):
                self.finished.set()
            elif self.body_sends == self.disconnect_after_sends:
                self.disconnect()

    async def __call__(self, app: ASGIApp, scope: dict[str, Any]) -> Result:
        await app(scope, self.receive, self.send)
        return self.result


async def call(
    app: ASGIApp,
    scope: dict[str, Any] | None = None,
    messages: Sequence[Message] | None = None,
    **options: Any,
) -> Result:
    """Run *app* on *scope* (a GET on / by default) with *messages* (an empty body)."""
    driver = Driver(body_messages() if messages is None else messages, **options)
    return await driver(app, http_scope() if scope is None else scope)
