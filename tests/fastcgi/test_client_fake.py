"""The FastCGI client and FastCGITransport against scripted servers (see _fake_server.py).

Async tests run on asyncio and trio; the sync client is exercised where its code paths
differ (threads, blocking sockets). Servers signal with threading.Event, never with sleeps.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from anysgi.fastcgi import protocol as p
from anysgi.fastcgi.client import (
    AsyncFastCGIClient,
    FastCGIClient,
    FastCGITransport,
    RequestRejectedError,
    ResponseError,
    cgi_params,
)

from ._fake_server import (
    FakeConnection,
    FakeRequest,
    FakeServer,
    Handler,
    echo_handler,
    fake_server,
)

pytestmark = pytest.mark.anyio

WAIT = 10.0  # seconds a test waits for an event that must happen


async def wait_for(event: threading.Event) -> None:
    assert await anyio.to_thread.run_sync(event.wait, WAIT), "the server never got there"


def head_then(data: bytes) -> bytes:
    return b"Content-Type: text/plain\r\n\r\n" + data


# --- what goes out -------------------------------------------------------------------------------


async def test_params_from_an_httpx_request() -> None:
    with fake_server() as server:
        transport = FastCGITransport(
            server.address,
            script_name="/mount",
            params={"SCRIPT_FILENAME": "/srv/app.php", "SERVER_SOFTWARE": "test"},
            remote_addr="203.0.113.9",
        )
        async with httpx.AsyncClient(transport=transport) as client:
            response = await client.post(
                "https://app.example:8443/mount/caf%C3%A9/a%20b?x=1&y=%2F",
                content=b"hello=world",
                headers=[
                    ("Content-Type", "application/x-www-form-urlencoded"),
                    ("X-Custom", "one"),
                    ("X-Custom", "two"),
                    ("X_Spoofed", "no"),
                    ("Cookie", "a=1"),
                    ("Cookie", "b=2"),
                ],
                extensions={"fastcgi_params": {b"EXTRA": b"yes"}},
            )
    assert response.status_code == 200
    echoed = response.json()
    params = echoed["params"]
    assert params["REQUEST_METHOD"] == "POST"
    assert params["SCRIPT_NAME"] == "/mount"
    assert params["PATH_INFO"].encode("latin-1") == "/café/a b".encode()
    assert params["REQUEST_URI"] == "/mount/caf%C3%A9/a%20b?x=1&y=%2F"
    assert params["QUERY_STRING"] == "x=1&y=%2F"
    assert params["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    assert params["CONTENT_LENGTH"] == "11"
    assert "HTTP_CONTENT_TYPE" not in params
    assert params["HTTP_X_CUSTOM"] == "one, two"
    assert params["HTTP_COOKIE"] == "a=1; b=2"
    assert params["HTTP_HOST"] == "app.example:8443"
    assert not any("SPOOFED" in name for name in params)
    assert params["HTTPS"] == "on"
    assert params["REQUEST_SCHEME"] == "https"
    assert params["SERVER_NAME"] == "app.example"
    assert params["SERVER_PORT"] == "8443"
    assert params["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert params["GATEWAY_INTERFACE"] == "CGI/1.1"
    assert params["REMOTE_ADDR"] == "203.0.113.9"
    assert params["SCRIPT_FILENAME"] == "/srv/app.php"
    assert params["SERVER_SOFTWARE"] == "test"
    assert params["EXTRA"] == "yes"
    assert echoed["body"] == "hello=world"
    assert echoed["keep_conn"] is True
    assert echoed["role"] == p.Role.RESPONDER


def test_sync_transport_sends_the_same_params() -> None:
    with (
        fake_server() as server,
        httpx.Client(transport=FastCGITransport(server.address), base_url="http://app") as client,
    ):
        response = client.get("/x?y=1", headers={"Accept": "text/plain"})
    params = response.json()["params"]
    assert params["SCRIPT_NAME"] == "/x"
    assert "PATH_INFO" not in params
    assert params["HTTP_ACCEPT"] == "text/plain"
    assert params["SERVER_PORT"] == "80"
    assert "HTTPS" not in params
    assert "CONTENT_LENGTH" not in params


async def test_request_body_is_streamed_not_buffered() -> None:
    first_chunk = threading.Event()
    seen: list[bytes] = []

    def handler(connection: FakeConnection) -> None:
        request_id = 0
        while True:
            event = connection.next_event()
            if isinstance(event, p.BeginRequest):
                request_id = event.request_id
            elif isinstance(event, p.Stdin):
                seen.append(event.data)
                first_chunk.set()
            elif isinstance(event, p.StdinEnd):
                connection.respond(
                    FakeRequest(request_id, 1, True), str(len(seen)).encode(), head=b""
                )
            elif isinstance(event, p.ConnectionClosed):
                return

    async def body() -> AsyncIterator[bytes]:
        yield b"first"
        # Only sent once the server has the first chunk: a client that buffered the whole
        # body before sending would wait here forever.
        await wait_for(first_chunk)
        yield b"second"

    with fake_server(handler) as server:
        async with httpx.AsyncClient(transport=FastCGITransport(server.address)) as client:
            response = await client.post("http://app/upload", content=body())
    assert response.status_code == 200
    assert seen == [b"first", b"second"]
    assert response.text == "2"


# --- what comes back -----------------------------------------------------------------------------


async def test_response_body_streams_as_it_arrives() -> None:
    go_on = threading.Event()

    def handler(connection: FakeConnection) -> None:
        request = connection.read_request()
        assert request is not None
        connection.send(p.Stdout(request.request_id, head_then(b"first,")))
        # The rest only comes once the client has seen the first chunk.
        assert go_on.wait(WAIT)
        connection.send(p.Stdout(request.request_id, b"second"))
        connection.send(p.EndRequest(request.request_id))

    with fake_server(handler) as server:
        async with (
            httpx.AsyncClient(transport=FastCGITransport(server.address)) as client,
            client.stream("GET", "http://app/") as response,
        ):
            chunks = []
            async for chunk in response.aiter_raw():
                chunks.append(chunk)
                go_on.set()
    assert chunks == [b"first,", b"second"]


async def test_status_location_and_stderr(caplog: pytest.LogCaptureFixture) -> None:
    def handler(connection: FakeConnection) -> None:
        while (request := connection.read_request()) is not None:
            path = request.params[b"SCRIPT_NAME"]
            if path == b"/missing":
                head = b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n"
                connection.send(p.Stderr(request.request_id, b"no such page"))
                connection.respond(request, b"gone", head=head)
            else:
                connection.respond(request, b"", head=b"Location: /elsewhere\r\n")

    caplog.set_level(logging.WARNING, "anysgi.fastcgi.client")
    with fake_server(handler) as server:
        async with httpx.AsyncClient(
            transport=FastCGITransport(server.address), base_url="http://app"
        ) as client:
            missing = await client.get("/missing")
            moved = await client.get("/moved")
    assert missing.status_code == 404
    assert missing.text == "gone"
    assert missing.extensions["fastcgi_stderr"] == b"no such page"
    assert "no such page" in caplog.text
    assert moved.status_code == 302
    assert moved.headers["location"] == "/elsewhere"
    assert moved.extensions["fastcgi_stderr"] == b""


# --- broken servers ------------------------------------------------------------------------------


def _records(*events: p.Event) -> bytes:
    """Bytes a server would send for *events* on request 1."""
    server = p.Connection(p.SERVER)
    client = p.Connection(p.CLIENT)
    server.receive_data(client.send(p.BeginRequest(1, keep_conn=True)))
    server.receive_data(client.send(p.Params(1, {})) + client.send(p.StdinEnd(1)))
    while server.next_event() is not p.NEED_DATA:
        pass
    return b"".join(server.send(event) for event in events)


# case: (what the server sends, whether it then closes, what the error says)
BAD_REPLIES = {
    "garbage": (b"HTTP/1.1 200 OK\r\n\r\nnot FastCGI at all", False, "version byte"),
    "closed before the head": (b"", True, "closed the connection"),
    "closed in the head": (
        _records(p.Stdout(1, b"Content-Type: te")),
        True,
        "closed the connection",
    ),
    "overloaded": (_records(p.EndRequest(1, 0, p.ProtocolStatus.OVERLOADED)), False, "OVERLOADED"),
    "unknown role": (
        _records(p.EndRequest(1, 0, p.ProtocolStatus.UNKNOWN_ROLE)),
        False,
        "UNKNOWN_ROLE",
    ),
    "bad CGI head": (
        _records(p.Stdout(1, b"no colon here\r\n\r\nbody"), p.EndRequest(1)),
        False,
        "invalid CGI response",
    ),
    "no CGI head": (
        _records(p.StdoutEnd(1), p.EndRequest(1)),
        False,
        "without a CGI response",
    ),
    "head never ends": (
        _records(p.Stdout(1, b"Content-Type: text/plain\r\n"), p.EndRequest(1)),
        False,
        "ended inside its CGI header block",
    ),
    "head too long": (
        _records(p.Stdout(1, b"X-Big: " + b"x" * 70_000)),
        False,
        "max_response_head",
    ),
}


@pytest.mark.parametrize("case", list(BAD_REPLIES))
async def test_a_broken_server_gives_a_clear_error_and_a_new_connection(case: str) -> None:
    bad, close, message = BAD_REPLIES[case]

    def handler(connection: FakeConnection) -> None:
        while (request := connection.read_request()) is not None:
            if request.params.get(b"SCRIPT_NAME") == b"/bad":
                connection.send_raw(bad)
                if close:
                    return
            else:
                connection.respond(request, b"ok")

    with fake_server(handler) as server:
        async with httpx.AsyncClient(
            transport=FastCGITransport(server.address), base_url="http://app"
        ) as client:
            with pytest.raises(httpx.RemoteProtocolError, match=message) as info:
                await client.get("/bad")
            assert isinstance(info.value.__cause__, ResponseError)
            if "overloaded" in case or "role" in case:
                assert isinstance(info.value.__cause__, RequestRejectedError)
            # The connection that failed is not reused; the next one is.
            assert (await client.get("/good")).text == "ok"
            assert (await client.get("/good")).text == "ok"
            assert server.accepted == 2


async def test_connection_closed_mid_body() -> None:
    def handler(connection: FakeConnection) -> None:
        request = connection.read_request()
        assert request is not None
        connection.send(p.Stdout(request.request_id, head_then(b"partial")))
        connection.close()

    with fake_server(handler) as server:
        async with (
            httpx.AsyncClient(transport=FastCGITransport(server.address)) as client,
            client.stream("GET", "http://app/") as response,
        ):
            assert response.status_code == 200
            with pytest.raises(httpx.RemoteProtocolError, match="closed the connection"):
                await response.aread()


def test_sync_broken_server() -> None:
    def handler(connection: FakeConnection) -> None:
        while (request := connection.read_request()) is not None:
            if request.params[b"SCRIPT_NAME"] == b"/bad":
                connection.send(p.EndRequest(request.request_id, 0, p.ProtocolStatus.OVERLOADED))
            else:
                connection.respond(request, b"ok")

    with (
        fake_server(handler) as server,
        httpx.Client(transport=FastCGITransport(server.address), base_url="http://app") as client,
    ):
        assert client.get("/good").text == "ok"
        with pytest.raises(httpx.RemoteProtocolError, match="OVERLOADED"):
            client.get("/bad")
        assert client.get("/good").text == "ok"
        assert server.accepted == 2


# --- pooling -------------------------------------------------------------------------------------


async def test_keep_conn_reuses_one_connection() -> None:
    with fake_server() as server:
        async with httpx.AsyncClient(
            transport=FastCGITransport(server.address), base_url="http://app"
        ) as client:
            for _ in range(5):
                response = await client.get("/")
                assert response.json()["keep_conn"] is True
    assert server.accepted == 1


async def test_without_keep_conn_every_request_has_its_connection() -> None:
    with fake_server() as server:
        async with httpx.AsyncClient(
            transport=FastCGITransport(server.address, keep_conn=False), base_url="http://app"
        ) as client:
            for _ in range(3):
                response = await client.get("/")
                assert response.json()["keep_conn"] is False
    assert server.accepted == 3


async def test_the_pool_is_bounded() -> None:
    release = threading.Event()
    started = threading.Semaphore(0)

    def handler(connection: FakeConnection) -> None:
        while (request := connection.read_request()) is not None:
            started.release()
            assert release.wait(WAIT)
            connection.respond(request, b"done")

    results: list[str] = []
    with fake_server(handler) as server:
        transport = FastCGITransport(server.address, max_connections=2)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:

            async def get() -> None:
                results.append((await client.get("/")).text)

            async with anyio.create_task_group() as tg:
                for _ in range(3):
                    tg.start_soon(get)
                # Two requests reach the server; the third waits for a connection.
                for _ in range(2):
                    assert await anyio.to_thread.run_sync(started.acquire, True, WAIT)
                assert server.accepted == 2
                release.set()
    assert results == ["done"] * 3
    assert server.accepted == 2


async def test_pool_timeout() -> None:
    hold = threading.Event()

    def handler(connection: FakeConnection) -> None:
        request = connection.read_request()
        assert request is not None
        connection.send(p.Stdout(request.request_id, head_then(b"slow")))
        hold.wait(WAIT)

    with fake_server(handler) as server:
        transport = FastCGITransport(server.address, max_connections=1)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            async with client.stream("GET", "/") as first:
                assert first.status_code == 200
                with pytest.raises(httpx.PoolTimeout):
                    await client.get("/", timeout=httpx.Timeout(5, pool=0.1))
            hold.set()


async def test_read_timeout_drops_the_connection() -> None:
    def handler(connection: FakeConnection) -> None:
        request = connection.read_request()
        if request is not None and request.params[b"SCRIPT_NAME"] == b"/ok":
            connection.respond(request, b"ok")
            return
        connection.next_event()  # never answers; returns when the client closes

    with fake_server(handler) as server:
        async with httpx.AsyncClient(
            transport=FastCGITransport(server.address), base_url="http://app"
        ) as client:
            with pytest.raises(httpx.ReadTimeout):
                await client.get("/silent", timeout=0.2)
            assert (await client.get("/ok")).text == "ok"
    assert server.accepted == 2


async def test_write_timeout() -> None:
    stop = threading.Event()

    def handler(connection: FakeConnection) -> None:
        stop.wait(WAIT)  # never reads

    async def endless() -> AsyncIterator[bytes]:
        chunk = b"x" * 65536
        while True:
            yield chunk

    with fake_server(handler) as server:
        async with httpx.AsyncClient(transport=FastCGITransport(server.address)) as client:
            with pytest.raises(httpx.WriteTimeout):
                await client.post("http://app/", content=endless(), timeout=0.2)
        stop.set()


async def test_connect_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"  # bound, not listening
        async with httpx.AsyncClient(transport=FastCGITransport(address)) as client:
            with pytest.raises(httpx.ConnectError, match=address):
                await client.get("http://app/")


async def test_missing_unix_socket(tmp_path: Path) -> None:
    address = f"unix:{tmp_path / 'nothing.sock'}"
    async with httpx.AsyncClient(transport=FastCGITransport(address)) as client:
        with pytest.raises(httpx.ConnectError, match=r"nothing\.sock"):
            await client.get("http://app/")


async def test_unix_socket(tmp_path: Path) -> None:
    with fake_server(unix_path=tmp_path / "app.sock") as server:
        async with httpx.AsyncClient(transport=FastCGITransport(server.address)) as client:
            response = await client.get("http://app/x")
    assert response.json()["params"]["SCRIPT_NAME"] == "/x"


async def test_an_idle_connection_closed_by_the_server_is_not_reused() -> None:
    closed = threading.Event()

    def handler(connection: FakeConnection) -> None:
        request = connection.read_request()
        assert request is not None
        connection.respond(request, b"ok")
        connection.close()  # despite FCGI_KEEP_CONN, as php-fpm does at pm.max_requests
        closed.set()

    with fake_server(handler) as server:
        async with httpx.AsyncClient(
            transport=FastCGITransport(server.address), base_url="http://app"
        ) as client:
            assert (await client.get("/")).text == "ok"
            await wait_for(closed)
            assert (await client.get("/")).text == "ok"
    assert server.accepted == 2


def _closes_on_second_request(connection: FakeConnection) -> None:
    request = connection.read_request()
    assert request is not None
    connection.respond(request, b"ok")
    if connection.read_request() is not None:
        connection.close()  # took the request, answered nothing: a race with the close


async def test_a_request_lost_to_a_closing_connection_is_sent_again() -> None:
    with fake_server(_closes_on_second_request) as server:
        async with httpx.AsyncClient(
            transport=FastCGITransport(server.address), base_url="http://app"
        ) as client:
            assert (await client.get("/")).text == "ok"
            assert (await client.post("/", content=b"replayable")).text == "ok"
    assert server.accepted == 2


async def test_a_streamed_body_is_never_sent_twice() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"once"

    with fake_server(_closes_on_second_request) as server:
        async with httpx.AsyncClient(
            transport=FastCGITransport(server.address), base_url="http://app"
        ) as client:
            assert (await client.get("/")).text == "ok"
            with pytest.raises(httpx.RemoteProtocolError):
                await client.post("/", content=body())
    assert server.accepted == 1


async def test_closing_a_response_before_its_end_closes_its_connection() -> None:
    size = 4 * 1024 * 1024  # more than one read brings: END_REQUEST is not in yet

    def handler(connection: FakeConnection) -> None:
        while (request := connection.read_request()) is not None:
            with contextlib.suppress(OSError):  # the client hangs up on the first one
                connection.send(p.Stdout(request.request_id, head_then(b"x" * size)))
                connection.send(p.EndRequest(request.request_id))

    with fake_server(handler) as server:
        # The low-level client: httpx's own generators do not close each other, which trio
        # reports when one is left unfinished.
        async with AsyncFastCGIClient(server.address) as client:
            async with (
                client.stream(cgi_params("GET", "/")) as response,
                contextlib.aclosing(response.aiter_bytes()) as chunks,
            ):
                await chunks.__anext__()
            assert len((await client.request(cgi_params("GET", "/"))).content) == size
    assert server.accepted == 2


async def test_a_complete_response_frees_its_connection_even_if_unread() -> None:
    with fake_server() as server:
        async with httpx.AsyncClient(
            transport=FastCGITransport(server.address), base_url="http://app"
        ) as client:
            async with client.stream("GET", "/") as response:
                assert response.status_code == 200
            await client.get("/")
    assert server.accepted == 1


async def test_aclose_closes_idle_connections() -> None:
    done = threading.Event()

    def handler(connection: FakeConnection) -> None:
        echo_handler(connection)  # returns at EOF
        done.set()

    with fake_server(handler) as server:
        transport = FastCGITransport(server.address)
        async with httpx.AsyncClient(transport=transport) as client:
            await client.get("http://app/")
            assert not done.is_set()
        await wait_for(done)
        with pytest.raises(RuntimeError, match="closed"):
            await transport.handle_async_request(httpx.Request("GET", "http://app/"))


def test_sync_transport_from_threads() -> None:
    with fake_server() as server:
        transport = FastCGITransport(server.address, max_connections=3)
        errors: list[BaseException] = []
        statuses: list[int] = []

        def work(client: httpx.Client) -> None:
            try:
                for i in range(20):
                    response = client.post("/", content=f"body {i}".encode())
                    assert response.json()["body"] == f"body {i}"
                    statuses.append(response.status_code)
            except BaseException as exc:
                errors.append(exc)

        with httpx.Client(transport=transport, base_url="http://app") as client:
            threads = [threading.Thread(target=work, args=(client,)) for _ in range(6)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(WAIT * 3)
    assert not errors
    assert statuses == [200] * 120
    assert 1 <= server.accepted <= 3


def test_sync_timeouts_and_pool() -> None:
    hold = threading.Event()

    def handler(connection: FakeConnection) -> None:
        request = connection.read_request()
        assert request is not None
        connection.send(p.Stdout(request.request_id, head_then(b"slow")))
        hold.wait(WAIT)

    with (
        fake_server(handler) as server,
        httpx.Client(
            transport=FastCGITransport(server.address, max_connections=1), base_url="http://app"
        ) as client,
    ):
        with client.stream("GET", "/") as response:
            with pytest.raises(httpx.PoolTimeout):
                client.get("/", timeout=httpx.Timeout(5, pool=0.1))
            with pytest.raises(httpx.ReadTimeout):
                response.read()
        hold.set()


# --- multiplexing --------------------------------------------------------------------------------


def mux_handler(expected: int, aborted: list[int] | None = None) -> Handler:
    """Collect *expected* requests on one connection, then answer them in reverse order."""

    def handler(connection: FakeConnection) -> None:
        pending: dict[int, FakeRequest] = {}
        ready: list[FakeRequest] = []
        while True:
            event = connection.next_event()
            if isinstance(event, p.ConnectionClosed):
                return
            if isinstance(event, p.GetValues):
                connection.send(
                    p.GetValuesResult({p.FCGI_MPXS_CONNS: b"1", p.FCGI_MAX_REQS: b"10"})
                )
            elif isinstance(event, p.BeginRequest):
                pending[event.request_id] = FakeRequest(event.request_id, 1, event.keep_conn)
            elif isinstance(event, p.Params):
                pending[event.request_id].params = event.params
            elif isinstance(event, p.AbortRequest):
                if aborted is not None:
                    aborted.append(event.request_id)
                connection.send(p.EndRequest(event.request_id))
            elif isinstance(event, p.StdinEnd):
                ready.append(pending.pop(event.request_id))
                if len(ready) == expected:
                    for request in reversed(ready):
                        body = request.params[b"SCRIPT_NAME"] * 1000
                        connection.send(
                            p.Stdout(request.request_id, head_then(body)),
                            p.EndRequest(request.request_id),
                        )
                    ready.clear()

    return handler


async def test_multiplexing_when_the_server_advertises_it() -> None:
    with fake_server(mux_handler(5)) as server:
        transport = FastCGITransport(server.address, multiplex=True, max_connections=1)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            results: dict[int, bytes] = {}

            async def get(i: int) -> None:
                results[i] = (await client.get(f"/{i}", timeout=WAIT)).content

            async with anyio.create_task_group() as tg:
                for i in range(5):
                    tg.start_soon(get, i)
    assert results == {i: f"/{i}".encode() * 1000 for i in range(5)}
    # One connection for GET_VALUES, one carrying all five requests at once.
    assert server.accepted == 2


def test_sync_multiplexing_from_threads() -> None:
    with fake_server(mux_handler(4)) as server:
        transport = FastCGITransport(server.address, multiplex=True, max_connections=1)
        results: dict[int, bytes] = {}
        with httpx.Client(transport=transport, base_url="http://app") as client:

            def get(i: int) -> None:
                results[i] = client.get(f"/{i}", timeout=WAIT).content

            threads = [threading.Thread(target=get, args=(i,)) for i in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(WAIT * 2)
    assert results == {i: f"/{i}".encode() * 1000 for i in range(4)}
    assert server.accepted == 2


async def test_no_multiplexing_when_the_server_does_not_advertise_it() -> None:
    with fake_server(values={p.FCGI_MPXS_CONNS: b"0"}) as server:
        transport = FastCGITransport(server.address, multiplex=True)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            for _ in range(3):
                assert (await client.get("/")).json()["request_id"] == 1
    assert server.accepted == 2  # GET_VALUES, then one connection reused


# --- the low-level clients -----------------------------------------------------------------------


async def test_async_client_request_stream_and_get_values() -> None:
    values = {p.FCGI_MAX_CONNS: b"5", p.FCGI_MAX_REQS: b"5", p.FCGI_MPXS_CONNS: b"0"}
    with fake_server(values=values) as server:
        async with AsyncFastCGIClient(server.address) as client:
            assert await client.get_values() == {
                "FCGI_MAX_CONNS": "5",
                "FCGI_MAX_REQS": "5",
                "FCGI_MPXS_CONNS": "0",
            }
            response = await client.request(cgi_params("PUT", "/item"), b"data")
            assert response.status == 200
            assert (b"Content-Type", b"application/json") in response.headers
            assert response.app_status == 0
            assert json.loads(response.content)["body"] == "data"
            async with client.stream({"SCRIPT_NAME": "/s"}) as streamed:
                body = b"".join([chunk async for chunk in streamed.aiter_bytes()])
            assert json.loads(body)["params"] == {"SCRIPT_NAME": "/s"}
            with pytest.raises(RuntimeError, match="aread"):
                _ = streamed.content


def test_sync_client_and_get_values_without_answer() -> None:
    def handler(connection: FakeConnection) -> None:
        event = connection.next_event()
        if isinstance(event, p.GetValues):
            return  # closes without answering
        assert isinstance(event, p.BeginRequest)
        while not isinstance(connection.next_event(), p.StdinEnd):
            pass
        connection.respond(FakeRequest(event.request_id, 1, event.keep_conn), b"ok")

    with fake_server(handler) as server, FastCGIClient(server.address) as client:
        with pytest.raises(ResponseError, match="without answering GET_VALUES"):
            client.get_values()
        assert client.request(cgi_params("GET", "/")).status == 200


def test_sync_body_from_an_iterator() -> None:
    def chunks() -> Iterator[bytes]:
        yield b"a"
        yield b""
        yield b"bc"

    with fake_server() as server, FastCGIClient(server.address) as client:
        response = client.request(cgi_params("POST", "/"), chunks())
    assert json.loads(response.content)["body"] == "abc"


def test_fake_server_reports_handler_errors() -> None:
    def handler(connection: FakeConnection) -> None:
        raise ValueError("handler bug")

    with (
        pytest.raises(AssertionError, match="handler bug"),
        FakeServer(handler) as server,
        socket.create_connection(server.listener.getsockname()[:2]),
    ):
        assert server.accepted_event.wait(WAIT)


async def test_connect_timeout() -> None:
    # A listener whose backlog is full: Linux drops further SYNs, so connect() hangs.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        host, port = listener.getsockname()
        fillers = [socket.socket() for _ in range(3)]
        try:
            for filler in fillers:
                filler.setblocking(False)
                filler.connect_ex((host, port))
            transport = FastCGITransport(f"{host}:{port}")
            async with httpx.AsyncClient(transport=transport) as client:
                with pytest.raises(httpx.ConnectTimeout):
                    await client.get("http://app/", timeout=0.2)
        finally:
            for filler in fillers:
                filler.close()


async def test_closing_a_multiplexed_response_early_aborts_only_its_request() -> None:
    aborted = threading.Event()

    def handler(connection: FakeConnection) -> None:
        while True:
            event = connection.next_event()
            if isinstance(event, p.ConnectionClosed):
                return
            if isinstance(event, p.GetValues):
                connection.send(p.GetValuesResult({p.FCGI_MPXS_CONNS: b"1"}))
            elif isinstance(event, p.Params):
                request_id = event.request_id
                if event.params[b"SCRIPT_NAME"] == b"/endless":
                    connection.send(p.Stdout(request_id, head_then(b"more to come")))
                else:
                    connection.send(
                        p.Stdout(request_id, head_then(b"ok")), p.EndRequest(request_id)
                    )
            elif isinstance(event, p.AbortRequest):
                connection.send(p.EndRequest(event.request_id))
                aborted.set()

    with fake_server(handler) as server:
        async with AsyncFastCGIClient(server.address, multiplex=True) as client:
            async with client.stream(cgi_params("GET", "/endless")) as endless:
                assert endless.status == 200
                # The connection is shared: another request goes through meanwhile.
                assert (await client.request(cgi_params("GET", "/"))).content == b"ok"
            await wait_for(aborted)
            assert (await client.request(cgi_params("GET", "/"))).content == b"ok"
    assert server.accepted == 2  # GET_VALUES, then one shared connection


async def test_a_server_that_refuses_to_multiplex_after_all() -> None:
    refused = threading.Event()

    def handler(connection: FakeConnection) -> None:
        while (request := connection.read_request()) is not None:
            if not refused.is_set():
                refused.set()
                connection.send(p.EndRequest(request.request_id, 0, p.ProtocolStatus.CANT_MPX_CONN))
            else:
                connection.respond(request, b"ok")

    values = {p.FCGI_MPXS_CONNS: b"1", p.FCGI_MAX_REQS: b"4"}
    with fake_server(handler, values=values) as server:
        async with AsyncFastCGIClient(server.address, multiplex=True) as client:
            with pytest.raises(RequestRejectedError, match="CANT_MPX_CONN"):
                await client.request(cgi_params("GET", "/"))
            assert (await client.request(cgi_params("GET", "/"))).content == b"ok"
            assert (await client.request(cgi_params("GET", "/"))).content == b"ok"
    assert server.accepted == 3  # GET_VALUES, the refused connection, a plain one
