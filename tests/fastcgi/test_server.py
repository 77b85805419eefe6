"""The FastCGI server driven by the codec's CLIENT side, over TCP, Unix sockets and in memory.

Every test runs on asyncio and on trio (the ``anyio_backend`` fixture).
"""

from __future__ import annotations

import contextvars
import logging
import socket
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from anysgi._errors import LifespanError
from anysgi.fastcgi import protocol as p
from anysgi.fastcgi._config import ServerConfig
from anysgi.fastcgi._handler import tune_socket
from anysgi.fastcgi.protocol._records import parse_records

from ._helpers import Client, connected, echo_app, in_memory, params, read_body, running_server

pytestmark = pytest.mark.anyio

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("REQUEST_ID", default="unset")


async def hello_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-a", b"1")]})
    await send({"type": "http.response.body", "body": b"hello"})


# -- requests and responses --------------------------------------------------------------------


async def test_get_and_post_on_one_kept_connection() -> None:
    async with connected(echo_app) as client:
        first = await client.request(params("GET", "/caf%C3%A9/x?a=1"))
        second = await client.request(
            params("POST", "/submit", body=b"hello=world"), b"hello=world"
        )
    assert first.status == 200
    assert first.body == "GET /café/x root='' query=a=1 len=0\n".encode()
    assert second.body.endswith(b"len=11\nhello=world")
    assert first.end == p.EndRequest(1, 0, p.ProtocolStatus.REQUEST_COMPLETE)


async def test_unix_socket(tmp_path: Any) -> None:
    path = tmp_path / "app.sock"
    async with running_server(echo_app, bind=f"unix:{path}") as addresses:
        assert addresses == [f"unix:{path}"]
        client = await Client.connect(addresses[0])
        response = await client.request(params("GET", "/u"))
        await client.aclose()
    assert response.body.startswith(b"GET /u ")
    assert not path.exists(), "the socket file is removed at stop"


async def test_status_line_has_code_and_reason_and_small_response_is_one_write() -> None:
    async with in_memory(hello_app) as (client, stream, _):
        await client.start(params())
        response = await client.response()
        assert response.body == b"hello"
    (write,) = stream.writes
    assert write.startswith(b"\x01\x06\x00\x01")  # one STDOUT record first...
    records = parse_records(write)
    assert [r.record_type for r in records] == [p.RecordType.STDOUT] * 2 + [
        p.RecordType.END_REQUEST
    ]
    assert records[0].content == b"Status: 200 OK\r\nx-a: 1\r\n\r\nhello"


async def test_every_write_is_whole_records_and_streams_arrive_incrementally() -> None:
    step = anyio.Event()

    async def streaming(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        await step.wait()
        await send({"type": "http.response.body", "body": b"x" * 200_000, "more_body": True})
        await send({"type": "http.response.body", "body": b"last"})

    async with in_memory(streaming) as (client, stream, _):
        await client.start(params())
        first = await client.next_event()
        assert isinstance(first, p.Stdout)
        assert first.data.endswith(b"first")  # seen before the app sends anything more
        step.set()
        response = await client.response()
        assert response.body.endswith(b"last")
    for write in stream.writes:
        parse_records(write)  # raises if a write ends inside a record
    assert len(stream.writes) == 3


async def test_app_exception_gives_500_logs_traceback_and_connection_stays_usable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def failing(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/boom":
            raise ZeroDivisionError("boom")
        await hello_app(scope, receive, send)

    async with connected(failing, lifespan="off") as client:
        with caplog.at_level(logging.ERROR, "anysgi.fastcgi"):
            broken = await client.request(params("GET", "/boom"))
        fine = await client.request(params("GET", "/ok"))
    assert broken.status == 500
    assert fine.status == 200
    assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in caplog.records)


async def test_exception_after_response_started_closes_the_connection() -> None:
    async def half(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise RuntimeError("after the headers")

    async with in_memory(half) as (client, _, _):
        await client.start(params())
        response = await client.response()
    assert response.end is None, "no END_REQUEST: the web server must not take it as complete"
    assert response.body == b"part"


async def test_app_returning_without_response_gives_500() -> None:
    async def lazy(scope: dict[str, Any], receive: Any, send: Any) -> None:
        pass

    async with in_memory(lazy) as (client, _, _):
        await client.start(params())
        assert (await client.response()).status == 500


async def test_stderr_and_logging_never_reach_stdout() -> None:
    async def noisy(scope: dict[str, Any], receive: Any, send: Any) -> None:
        logging.getLogger("app").error("an app log line")
        print("an app print")
        await hello_app(scope, receive, send)

    async with in_memory(noisy) as (client, stream, _):
        await client.start(params())
        response = await client.response()
    assert response.body == b"hello"
    assert b"app" not in b"".join(stream.writes).replace(b"x-a", b"")


# -- protocol behaviour ------------------------------------------------------------------------


async def test_multiplexed_requests_on_one_connection() -> None:
    second_started = anyio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/first":
            await second_started.wait()  # only possible if both run at once
        else:
            second_started.set()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    async with connected(app, lifespan="off") as client:
        await client.start(params("GET", "/first"), request_id=1)
        await client.start(params("GET", "/second"), request_id=2)
        second = await client.response(2)
        first = await client.response(1)
    assert (first.body, second.body) == (b"/first", b"/second")


async def test_requests_that_never_wait_run_in_the_connections_own_task() -> None:
    # Starting a task costs more than serving a small request: one that can be answered
    # without waiting runs in the task that reads the connection (see anysgi._inline).
    tasks: list[int] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        tasks.append(anyio.get_current_task().id)
        await hello_app(scope, receive, send)

    async with connected(app, lifespan="off") as client:
        for _ in range(3):
            assert (await client.request()).status == 200
    assert len(set(tasks)) == 1


async def test_context_variables_do_not_leak_from_one_request_to_the_next() -> None:
    # Requests run in the connection's task, but each in a context of its own, as each
    # would in a task of its own: a variable set by one (middleware that never resets a
    # request id) is not seen by the next.
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(REQUEST_ID.get())
        REQUEST_ID.set(scope["path"])
        await hello_app(scope, receive, send)

    async with connected(app, lifespan="off") as client:
        for path in ("/one", "/two"):
            assert (await client.request(params("GET", path))).status == 200
    assert seen == ["unset", "unset"]


async def test_a_request_that_waits_hands_reading_to_a_new_task() -> None:
    # /slow waits (an inline request is promoted): /quick, sent on the same connection
    # meanwhile, must be read and answered first, and the connection stays usable.
    release = anyio.Event()
    order: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/slow":
            await release.wait()
        else:
            release.set()
        order.append(scope["path"])
        await hello_app(scope, receive, send)

    async with connected(app, lifespan="off") as client:
        await client.start(params("GET", "/slow"), request_id=1)
        with anyio.fail_after(5):
            await anyio.sleep(0.05)  # /slow is inline and waiting before /quick arrives
            await client.start(params("GET", "/quick"), request_id=2)
            quick = await client.response(2)
            slow = await client.response(1)
            again = await client.request(params("GET", "/quick"), request_id=1)
    assert (quick.status, slow.status, again.status) == (200, 200, 200)
    assert order == ["/quick", "/slow", "/quick"]


async def test_requests_that_wait_briefly_stay_in_the_reading_task() -> None:
    # Web servers do not multiplex: while a request waits for a moment (a thread hop, a
    # query), nothing else comes on its connection, and the reading is left where it is.
    tasks: list[int] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        tasks.append(anyio.get_current_task().id)
        await anyio.lowlevel.checkpoint()
        await hello_app(scope, receive, send)

    async with connected(app, lifespan="off") as client:
        for _ in range(6):
            assert (await client.request()).status == 200
    assert len(tasks) == 6
    assert len(set(tasks)) == 1


async def test_requests_that_wait_reuse_the_spare_reader() -> None:
    # A request that waits longer than PROMOTE_AFTER has the reading moved to another task;
    # once the request is done, its task waits to take the reading over again instead of
    # ending. So such requests take turns in two tasks rather than costing a new task each.
    tasks: list[int] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        tasks.append(anyio.get_current_task().id)
        await anyio.sleep(0.03)
        await hello_app(scope, receive, send)

    async with connected(app, lifespan="off") as client:
        for _ in range(6):
            assert (await client.request()).status == 200
    assert len(tasks) == 6
    assert len(set(tasks)) == 2


async def test_a_request_waiting_for_its_body_is_read_for_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The delayed promotion must not delay a request's own body: receive() promotes.
    from anysgi.fastcgi import _handler

    monkeypatch.setattr(_handler, "PROMOTE_AFTER", 3600.0)
    async with connected(echo_app, lifespan="off") as client:
        await client.start(params("POST", "/late", body=b"x" * 5), body=None)
        await anyio.sleep(0.05)  # the app is inline, waiting in receive()
        await client.send(p.Stdin(1, b"hello"), p.StdinEnd(1))
        with anyio.fail_after(5):
            response = await client.response(1)
    assert response.body.endswith(b"len=5\nhello")


async def test_a_multiplexing_peer_gets_its_connection_read_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Once the peer has had two requests active at once, a waiting request hands over the
    # reading immediately: the next request on the connection may be what it waits for.
    from anysgi.fastcgi import _handler

    monkeypatch.setattr(_handler, "PROMOTE_AFTER", 3600.0)
    release = anyio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/wait":
            await release.wait()
        elif scope["path"] == "/release":
            release.set()
        await hello_app(scope, receive, send)

    async with connected(app, lifespan="off") as client:
        # Two requests in one write: the connection is known to multiplex from here on.
        await client.send(
            p.BeginRequest(1, keep_conn=True),
            p.Params(1, params("GET", "/a")),
            p.StdinEnd(1),
            p.BeginRequest(2, keep_conn=True),
            p.Params(2, params("GET", "/b")),
            p.StdinEnd(2),
        )
        assert (await client.response(1)).status == 200
        assert (await client.response(2)).status == 200
        await client.start(params("GET", "/wait"), request_id=1)
        await anyio.sleep(0.05)  # /wait is inline and waiting
        await client.start(params("GET", "/release"), request_id=2)
        with anyio.fail_after(5):
            assert (await client.response(2)).status == 200
            assert (await client.response(1)).status == 200


async def test_lingering_close_does_not_cut_work_after_the_response(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Without KEEP_CONN the server stops reading LINGER_TIMEOUT after its response; work
    # the application does after sending its response (a background task) must not be
    # cancelled by that, although the request began inline in the reading task.
    from anysgi.fastcgi import _handler

    monkeypatch.setattr(_handler, "LINGER_TIMEOUT", 0.01)
    finished = anyio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await hello_app(scope, receive, send)
        await anyio.sleep(0.2)  # well past the linger deadline
        finished.set()

    async with connected(app, lifespan="off") as client:
        response = await client.request(keep_conn=False)
        assert response.status == 200
        with anyio.fail_after(5):
            await finished.wait()


async def test_get_values_reports_the_real_limits() -> None:
    async with connected(echo_app, max_connections=7, max_requests_per_connection=3) as client:
        await client.send(p.GetValues((p.FCGI_MAX_CONNS, p.FCGI_MAX_REQS, p.FCGI_MPXS_CONNS, b"X")))
        answer = await client.next_event()
    assert answer == p.GetValuesResult(
        {p.FCGI_MAX_CONNS: b"7", p.FCGI_MAX_REQS: b"3", p.FCGI_MPXS_CONNS: b"1"}
    )


async def test_unknown_management_record_gets_unknown_type() -> None:
    async with connected(echo_app) as client:
        await client.send(p.UnknownManagementRecord(200))
        assert await client.next_event() == p.UnknownType(200)
        assert (await client.request()).status == 200  # and the connection carries on


@pytest.mark.parametrize("role", [p.Role.AUTHORIZER, p.Role.FILTER, 77])
async def test_other_roles_get_unknown_role(role: int) -> None:
    async with connected(echo_app) as client:
        await client.send(p.BeginRequest(1, role=role, keep_conn=True))
        end = await client.next_event()
        assert end == p.EndRequest(1, 0, p.ProtocolStatus.UNKNOWN_ROLE)
        assert (await client.request(request_id=1)).status == 200


async def test_without_keep_conn_the_server_closes_after_the_response() -> None:
    async with connected(echo_app) as client:
        response = await client.request(keep_conn=False)
        assert response.status == 200
        assert await client.read_until_closed() == b""


async def test_abort_request_gives_disconnect_and_end_request() -> None:
    seen: list[str] = []
    send_error: list[BaseException] = []
    done = anyio.Event()
    got_body = anyio.Event()

    async def waiting(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/ok":
            await hello_app(scope, receive, send)
            return
        try:
            seen.append((await receive())["type"])  # the (empty) body
            got_body.set()
            seen.append((await receive())["type"])  # blocks until the abort
            try:
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"late"})
            except OSError as exc:
                send_error.append(exc)
        finally:
            done.set()

    async with connected(waiting, lifespan="off") as client:
        await client.start(params())
        await got_body.wait()
        await client.send(p.AbortRequest(1))
        aborted = await client.response(1)
        assert aborted.end is not None
        assert aborted.body == b""
        with anyio.fail_after(5):
            await done.wait()
        assert (await client.request(params("GET", "/ok"), request_id=1)).status == 200
    assert seen == ["http.request", "http.disconnect"]
    assert len(send_error) == 1


async def test_request_aborted_in_the_read_that_completes_it_never_reaches_the_app() -> None:
    called: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        called.append(scope["path"])
        await hello_app(scope, receive, send)

    async with connected(app, lifespan="off") as client:
        # BEGIN_REQUEST, PARAMS, the end of STDIN and ABORT_REQUEST, all in one write.
        await client.send(
            p.BeginRequest(1, keep_conn=True),
            p.Params(1, params("GET", "/aborted")),
            p.StdinEnd(1),
            p.AbortRequest(1),
        )
        aborted = await client.response(1)
        assert aborted.end is not None
        assert aborted.body == b""
        assert (await client.request(params("GET", "/next"))).status == 200
    assert called == ["/next"]


async def test_closed_socket_gives_disconnect() -> None:
    seen = anyio.Event()

    async def waiting(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        if (await receive())["type"] == "http.disconnect":
            seen.set()

    async with running_server(waiting, lifespan="off") as addresses:
        client = await Client.connect(addresses[0])
        await client.start(params())
        await client.aclose()
        with anyio.fail_after(5):
            await seen.wait()


async def test_tcp_nodelay_is_set() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with socket.create_connection(listener.getsockname()) as _client:
            server_side, _ = listener.accept()
            with server_side:
                server_side.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
                tune_socket(server_side)
                assert server_side.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


# -- bad input ---------------------------------------------------------------------------------

BAD_INPUTS = {
    "wrong version": b"\x02\x01\x00\x01\x00\x08\x00\x00" + bytes(8),
    "HTTP request": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "truncated record then EOF": b"\x01\x01\x00\x01\x00\x08\x00\x00\x00\x01",
    "absurd pair length": (
        b"\x01\x01\x00\x01\x00\x08\x00\x00\x00\x01\x01\x00\x00\x00\x00\x00"
        b"\x01\x04\x00\x01\x00\x08\x00\x00\xff\xff\xff\xff\x01AAA"
    ),
    "BEGIN_REQUEST for an active id": (
        b"\x01\x01\x00\x01\x00\x08\x00\x00\x00\x01\x01\x00\x00\x00\x00\x00" * 2
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
async def test_bad_input_closes_that_connection_only(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_server(echo_app, lifespan="off") as addresses:
        good = await Client.connect(addresses[0])
        bad = await Client.connect(addresses[0])
        with caplog.at_level(logging.WARNING, "anysgi.fastcgi"):
            await bad.send_raw(BAD_INPUTS[name])
            if name.startswith("truncated"):
                await bad.stream.send_eof()
            with anyio.fail_after(5):
                leftover = await bad.read_until_closed()
        assert leftover == b""
        assert (await good.request()).status == 200
        await good.aclose()
        await bad.aclose()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith("closing the connection from 127.0.0.1:")


async def test_params_over_the_limit_close_the_connection(caplog: pytest.LogCaptureFixture) -> None:
    big = params(headers={"X-Big": "y" * 5000})
    async with connected(echo_app, max_params_size=4096) as client:
        with caplog.at_level(logging.WARNING, "anysgi.fastcgi"):
            await client.start(big)
            assert await client.read_until_closed() == b""
    assert "max_params_size" in caplog.text


async def test_too_many_multiplexed_requests_close_the_connection() -> None:
    async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await anyio.sleep_forever()

    async with connected(slow, max_requests_per_connection=2, lifespan="off") as client:
        for request_id in (1, 2, 3):
            await client.start(params(), request_id=request_id)
        with anyio.fail_after(5):
            assert await client.read_until_closed() == b""


# -- limits and timeouts -----------------------------------------------------------------------


async def test_declared_body_over_max_request_body_gets_413_without_the_app() -> None:
    called = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        called.append(scope)
        await hello_app(scope, receive, send)

    async with connected(app, max_request_body=10, lifespan="off") as client:
        response = await client.request(params("POST", "/", body=b"x" * 11), b"x" * 11)
        assert response.status == 413
        assert (await client.request()).status == 200
    assert len(called) == 1


async def test_streamed_body_over_max_request_body_gets_413() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await read_body(receive)
        await hello_app(scope, receive, send)

    request = params("POST", "/")  # no CONTENT_LENGTH: a chunked upload
    async with connected(app, max_request_body=100_000, lifespan="off") as client:
        await client.start(request, body=None)
        for _ in range(5):
            await client.send(p.Stdin(1, b"z" * 30_000))
        await client.send(p.StdinEnd(1))
        assert (await client.response()).status == 413


async def test_request_timeout_gives_504() -> None:
    async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await anyio.sleep_forever()

    async with connected(slow, request_timeout=0.2, lifespan="off") as client:
        with anyio.fail_after(5):
            assert (await client.request()).status == 504


async def test_idle_connection_is_closed_after_idle_timeout() -> None:
    async with connected(echo_app, idle_timeout=0.2) as client:
        assert (await client.request()).status == 200
        with anyio.fail_after(5):
            assert await client.read_until_closed() == b""


async def test_max_connections_stops_accepting_at_the_cap() -> None:
    async with running_server(echo_app, max_connections=1) as addresses:
        first = await Client.connect(addresses[0])
        assert (await first.request()).status == 200
        second = await Client.connect(addresses[0])  # queued in the backlog
        await second.start(params())
        with anyio.move_on_after(0.3) as waited:
            await second.response()
        assert waited.cancelled_caught, "served beyond max_connections"
        await first.aclose()
        with anyio.fail_after(5):
            assert (await second.response()).status == 200
        await second.aclose()


async def test_web_server_addrs_refuses_other_peers(caplog: pytest.LogCaptureFixture) -> None:
    async with running_server(echo_app, web_server_addrs=["10.1.2.3"]) as addresses:
        client = await Client.connect(addresses[0])
        with caplog.at_level(logging.WARNING, "anysgi.fastcgi"):
            assert await client.read_until_closed() == b""
        await client.aclose()
    assert "FCGI_WEB_SERVER_ADDRS" in caplog.text
    async with running_server(echo_app, web_server_addrs=["10.1.2.3", "127.0.0.1"]) as addresses:
        client = await Client.connect(addresses[0])
        assert (await client.request()).status == 200
        await client.aclose()


# -- backpressure ------------------------------------------------------------------------------


async def test_request_body_backpressure_stops_reading_the_socket() -> None:
    release = anyio.Event()
    received = []

    async def lazy_reader(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await release.wait()
        received.append(len(await read_body(receive)))
        await hello_app(scope, receive, send)

    total = 32 * 1024 * 1024
    chunk = b"u" * 65536
    sent = 0

    async def upload(client: Client) -> None:
        nonlocal sent
        while sent < total:
            await client.send(p.Stdin(1, chunk))
            sent += len(chunk)
        await client.send(p.StdinEnd(1))

    async with connected(lazy_reader, lifespan="off") as client:
        await client.start(params("POST", "/", body=b"x" * total), body=None)
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(upload, client)
            # Nothing to wait for but time: the server must *not* make progress here.
            await anyio.sleep(1)
            # The socket buffers hold a few MiB at most: the server stopped reading.
            assert sent < total / 2
            release.set()
        assert (await client.response()).status == 200
    assert received == [total]


async def test_response_backpressure_waits_for_the_socket() -> None:
    produced = 0

    async def firehose(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal produced
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(1000):
            await send({"type": "http.response.body", "body": b"d" * 65536, "more_body": True})
            produced += 65536
        await send({"type": "http.response.body", "body": b""})

    async with connected(firehose, lifespan="off") as client:
        await client.start(params())
        await anyio.sleep(0.5)  # the client reads nothing meanwhile
        assert produced < 20 * 1024 * 1024, "the server buffered the response"
        with anyio.fail_after(30):
            response = await client.response()
    assert len(response.body) == 1000 * 65536


# -- lifespan, state, mount point --------------------------------------------------------------


class LifespanApp:
    def __init__(self, *, fail: bool = False) -> None:
        self.events: list[str] = []
        self.fail = fail

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            self.events.append(message["type"])
            if self.fail:
                await send({"type": "lifespan.startup.failed", "message": "no database"})
                return
            scope["state"]["pool"] = "connected"
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
            self.events.append(message["type"])
            await send({"type": "lifespan.shutdown.complete"})
            return
        self.events.append(f"request {scope['state']['pool']}")
        scope["state"]["pool"] = "changed by a request"  # a copy: the next one sees the original
        await hello_app(scope, receive, send)


async def test_lifespan_startup_state_and_shutdown() -> None:
    app = LifespanApp()
    async with running_server(app) as addresses:
        assert app.events == ["lifespan.startup"]
        client = await Client.connect(addresses[0])
        for _ in range(2):
            assert (await client.request()).status == 200
        await client.aclose()
    assert app.events == [
        "lifespan.startup",
        "request connected",
        "request connected",
        "lifespan.shutdown",
    ]


async def test_lifespan_startup_failed_raises() -> None:
    from anysgi.fastcgi import serve

    with pytest.raises(LifespanError, match="no database"):
        await serve(LifespanApp(fail=True), bind="127.0.0.1:0")


async def test_app_without_lifespan_support_is_served() -> None:
    async with connected(echo_app, lifespan="auto") as client:
        assert (await client.request()).status == 200


async def test_root_path_forced_for_mod_fcgid_params() -> None:
    fcgid = params("GET", "/blog/post?x=1", SCRIPT_NAME="/index.fcgi", PATH_INFO="/blog/post")
    async with connected(echo_app) as client:
        default = await client.request(fcgid)
    async with connected(echo_app, root_path="") as client:
        forced = await client.request(fcgid)
    async with connected(echo_app, root_path="/mnt") as client:
        mounted = await client.request(params("GET", "/mnt/a"))
    assert default.body.startswith(b"GET /blog/post root='' ")
    assert forced.body.startswith(b"GET /blog/post root='' ")
    assert mounted.body.startswith(b"GET /mnt/a root='/mnt' ")


# -- stopping ----------------------------------------------------------------------------------


async def test_graceful_stop_finishes_requests_in_flight() -> None:
    started = anyio.Event()
    finish = anyio.Event()

    async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
        started.set()
        await finish.wait()
        await hello_app(scope, receive, send)

    stop = anyio.Event()
    from anysgi.fastcgi import serve

    async with anyio.create_task_group() as task_group:
        addresses = await task_group.start(
            lambda task_status: serve(
                slow,
                bind="127.0.0.1:0",
                lifespan="off",
                shutdown_trigger=stop.wait,
                task_status=task_status,
            )
        )
        busy = await Client.connect(addresses[0])
        idle = await Client.connect(addresses[0])
        await busy.start(params())
        await started.wait()
        stop.set()
        with anyio.fail_after(5):
            assert await idle.read_until_closed() == b"", "idle connections close at once"
        with pytest.raises(OSError, match="connection attempts failed"):
            await Client.connect(addresses[0])  # no longer listening
        finish.set()
        with anyio.fail_after(5):
            response = await busy.response()
        await busy.aclose()
        await idle.aclose()
    assert response.status == 200
    assert response.body == b"hello"


async def test_shutdown_timeout_cancels_what_is_left() -> None:
    cancelled = anyio.Event()
    running = anyio.Event()

    async def stuck(scope: dict[str, Any], receive: Any, send: Any) -> None:
        running.set()
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    with anyio.fail_after(10):
        async with running_server(stuck, shutdown_timeout=0.2, lifespan="off") as addresses:
            client = await Client.connect(addresses[0])
            await client.start(params())
            await running.wait()
        await client.aclose()
    assert cancelled.is_set()


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="max_connections"):
        ServerConfig(max_connections=0)
    with pytest.raises(ValueError, match="idle_timeout"):
        ServerConfig(idle_timeout=-1)
    with pytest.raises(TypeError):
        ServerConfig(binds="127.0.0.1:9000")  # type: ignore[arg-type]


# -- WSGI applications (through WSGI2ASGI) ----------------------------------------------------


def _wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    size = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(size) if size else b""
    text = f"{environ['REQUEST_METHOD']} {environ['SCRIPT_NAME']}|{environ['PATH_INFO']}"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [text.encode(), b" ", body]


async def test_wsgi_app_is_served_through_wsgi2asgi() -> None:
    from wsgiref.validate import validator

    # validator() returns lint_app(*args, **kw): interface="auto" cannot tell, so say it.
    app = validator(_wsgi_app)
    async with connected(app, interface="wsgi", lifespan="off", max_threads=2) as client:
        got = await client.request(params("GET", "/w/x"))
        posted = await client.request(params("POST", "/w/y", body=b"abc" * 1000), b"abc" * 1000)
    assert got.status == 200
    assert got.body == b"GET |/w/x "
    assert posted.body == b"POST |/w/y " + b"abc" * 1000
