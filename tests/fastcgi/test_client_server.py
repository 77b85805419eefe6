"""The FastCGI client against anysgi's own FastCGI server: two halves that must agree.

Generated requests go through ``FastCGITransport`` (async and sync) to ``serve()`` running an
echo application; what the application saw must be what httpx was asked to send, and what it
answered must be what httpx hands back. The server runs on the test's backend (asyncio, trio)
through a blocking portal, so the sync transport can reach it from the test's thread.
"""

from __future__ import annotations

import json
import string
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import anyio.from_thread
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anysgi.fastcgi.client import AsyncFastCGIClient, FastCGITransport, cgi_params

from ._helpers import running_server

_seen_disconnect: dict[str, anyio.Event] = {}


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with a JSON account of the request; ``/stream/N`` streams N chunks instead."""
    assert scope["type"] == "http"
    if scope["path"].startswith("/stream/"):
        await stream_app(scope, receive, send)
        return
    body = bytearray()
    more = True
    while more:
        message = await receive()
        assert message["type"] == "http.request"
        body += message.get("body", b"")
        more = message.get("more_body", False)
    seen = {
        "method": scope["method"],
        "path": scope["path"],
        "raw_path": scope["raw_path"].decode("latin-1"),
        "query_string": scope["query_string"].decode("latin-1"),
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
        "body_length": len(body),
        "body_latin1": bytes(body[:4096]).decode("latin-1"),
    }
    payload = json.dumps(seen).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"x-echo-length", b"%d" % len(body)),
            ],
        }
    )
    # The request body is sent back too, after the JSON, so the response body round-trips.
    await send({"type": "http.response.body", "body": payload + b"\n", "more_body": True})
    await send({"type": "http.response.body", "body": bytes(body)})


async def stream_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    count = int(scope["path"].rsplit("/", 1)[1])
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for index in range(count):
        await send({"type": "http.response.body", "body": b"chunk %d\n" % index, "more_body": True})
    # The client closes the response before the end: the server must tell the application.
    message = await receive()
    while message["type"] == "http.request":
        message = await receive()
    assert message["type"] == "http.disconnect"
    _seen_disconnect[scope["query_string"].decode()].set()


@pytest.fixture
def portal_and_address(
    portal_backend: str,
) -> Iterator[tuple[anyio.from_thread.BlockingPortal, str]]:
    with (
        anyio.from_thread.start_blocking_portal(portal_backend) as portal,
        portal.wrap_async_context_manager(running_server(echo_app, lifespan="off")) as addrs,
    ):
        yield portal, addrs[0]


# -- generated requests ---------------------------------------------------------------------

_SEGMENT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="/?#", exclude_categories=["Cs"]),
    min_size=1,
    max_size=12,
).filter(lambda segment: segment not in (".", ".."))  # httpx resolves dot segments (RFC 3986)
_TOKEN = st.text(alphabet=string.ascii_lowercase + string.digits + "-", min_size=1, max_size=16)
# Header values: visible ASCII and inner spaces (h11 and nginx strip the outer ones).
_VALUE = st.text(alphabet=string.ascii_letters + string.digits + " ;,=/.:-_", max_size=40).map(
    str.strip
)
_RESERVED = {"host", "content-length", "content-type", "transfer-encoding", "connection"}


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    segments = draw(st.lists(_SEGMENT, max_size=4))
    path = "/" + "/".join(urllib.parse.quote(s, safe="") for s in segments)
    query = draw(st.dictionaries(_TOKEN, _TOKEN, max_size=3))
    names = draw(st.lists(_TOKEN.filter(lambda n: n not in _RESERVED), max_size=5, unique=True))
    headers = {"x-" + name: draw(_VALUE) for name in names}
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]))
    body = b""
    if method in ("POST", "PUT", "PATCH"):
        body = draw(st.one_of(st.binary(max_size=300), st.binary(min_size=70_000, max_size=70_100)))
    return {"method": method, "path": path, "query": query, "headers": headers, "body": body}


def as_httpx(request: dict[str, Any]) -> dict[str, Any]:
    """The arguments of ``client.request()`` for a generated request."""
    return {
        "method": request["method"],
        "url": request["path"],
        "params": request["query"],
        "headers": request["headers"],
        "content": request["body"],
    }


def check_round_trip(request: dict[str, Any], response: httpx.Response) -> None:
    assert response.status_code == 200
    head, _, echoed_body = response.content.partition(b"\n")
    seen = json.loads(head)
    body: bytes = request["body"]
    assert seen["method"] == request["method"]
    assert seen["path"] == urllib.parse.unquote(request["path"])
    assert seen["raw_path"] == request["path"]
    assert urllib.parse.parse_qs(seen["query_string"]) == {
        k: [v] for k, v in request["query"].items()
    }
    sent_headers = dict(seen["headers"])
    for name, value in request["headers"].items():
        assert sent_headers[name] == value
    if body:
        assert sent_headers["content-length"] == str(len(body))
    assert seen["body_length"] == len(body)
    assert seen["body_latin1"] == body[:4096].decode("latin-1")
    assert echoed_body == body
    assert response.headers["x-echo-length"] == str(len(body))
    assert response.headers["content-type"] == "application/json"


_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def test_async_transport_round_trip(
    portal_and_address: tuple[anyio.from_thread.BlockingPortal, str],
) -> None:
    portal, address = portal_and_address
    transport = FastCGITransport(address, script_name="")
    client = httpx.AsyncClient(transport=transport, base_url="http://app")
    with portal.wrap_async_context_manager(client):

        @_SETTINGS
        @given(requests())
        def round_trip(request: dict[str, Any]) -> None:
            response = portal.call(lambda: client.request(**as_httpx(request)))
            check_round_trip(request, response)

        round_trip()


def test_sync_transport_round_trip(
    portal_and_address: tuple[anyio.from_thread.BlockingPortal, str],
) -> None:
    _, address = portal_and_address
    with httpx.Client(
        transport=FastCGITransport(address, script_name=""), base_url="http://app"
    ) as client:

        @_SETTINGS
        @given(requests())
        def round_trip(request: dict[str, Any]) -> None:
            response = client.request(**as_httpx(request))
            check_round_trip(request, response)

        round_trip()


# -- behaviour the two halves must agree on -------------------------------------------------


def test_get_values_reports_the_servers_limits(
    portal_and_address: tuple[anyio.from_thread.BlockingPortal, str],
) -> None:
    portal, address = portal_and_address

    async def ask() -> dict[str, str]:
        async with AsyncFastCGIClient(address) as client:
            return await client.get_values()

    values = portal.call(ask)
    # serve()'s defaults (ServerConfig): multiplexing advertised, real numbers.
    assert values["FCGI_MPXS_CONNS"] == "1"
    assert int(values["FCGI_MAX_REQS"]) > 1
    assert int(values["FCGI_MAX_CONNS"]) >= 1


def test_multiplexed_requests_share_one_connection(
    portal_and_address: tuple[anyio.from_thread.BlockingPortal, str],
) -> None:
    portal, address = portal_and_address

    async def many() -> list[tuple[int, bytes]]:
        results: list[tuple[int, bytes]] = []
        async with AsyncFastCGIClient(address, multiplex=True, max_connections=1) as client:

            async def one(index: int) -> None:
                params = cgi_params("POST", f"/item/{index}", script_name="")
                response = await client.request(params, b"%d" % index * 1000)
                results.append((index, response.content))

            async with anyio.create_task_group() as task_group:
                for index in range(20):
                    task_group.start_soon(one, index)
        return results

    results = portal.call(many)
    assert len(results) == 20
    for index, content in results:
        head, _, body = content.partition(b"\n")
        assert json.loads(head)["path"] == f"/item/{index}"
        assert body == b"%d" % index * 1000


def test_closing_a_response_early_tells_the_application(
    portal_and_address: tuple[anyio.from_thread.BlockingPortal, str],
) -> None:
    portal, address = portal_and_address
    key = f"early-{id(portal)}"
    _seen_disconnect[key] = portal.call(anyio.Event)

    async def read_one_chunk_then_leave() -> bytes:
        transport = FastCGITransport(address, script_name="")
        # The transport driven directly: breaking out of httpx's own async generators
        # leaves them to the garbage collector, which trio reports as a ResourceWarning.
        response = await transport.handle_async_request(
            httpx.Request("GET", f"http://app/stream/3?{key}")
        )
        assert isinstance(response.stream, httpx.AsyncByteStream)
        chunks = response.stream.__aiter__()
        first = await chunks.__anext__()
        await chunks.aclose()  # type: ignore[attr-defined]
        await response.aclose()
        with anyio.fail_after(5):
            await _seen_disconnect[key].wait()
        # The connection is healthy or gone, never reused half-read: a new request works.
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            again = await client.get("/after")
        assert again.status_code == 200
        return first

    try:
        first = portal.call(read_one_chunk_then_leave)
    finally:
        del _seen_disconnect[key]
    assert first.startswith(b"chunk 0\n")


async def _upload_chunks(total: int, size: int) -> AsyncIterator[bytes]:
    chunk = b"u" * size
    for _ in range(total // size):
        yield chunk


def test_a_large_upload_streams_through_both(
    portal_and_address: tuple[anyio.from_thread.BlockingPortal, str],
) -> None:
    portal, address = portal_and_address
    total = 8 * 1024 * 1024

    async def upload() -> httpx.Response:
        transport = FastCGITransport(address, script_name="")
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return await client.post(
                "/upload",
                content=_upload_chunks(total, 64 * 1024),
                headers={"content-length": str(total)},
            )

    response = portal.call(upload)
    assert response.status_code == 200
    assert response.headers["x-echo-length"] == str(total)
    head, _, body = response.content.partition(b"\n")
    assert json.loads(head)["body_length"] == total
    assert body == b"u" * total
