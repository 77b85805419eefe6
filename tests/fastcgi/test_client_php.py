"""FastCGITransport and the low-level clients against a real php-fpm (see _php_fpm.py)."""

from __future__ import annotations

import contextlib
import json
import threading
import tracemalloc
from pathlib import Path

import anyio
import httpx
import pytest

from anysgi.fastcgi import protocol as p
from anysgi.fastcgi.client import (
    AsyncFastCGIClient,
    FastCGIClient,
    FastCGITransport,
    ReadError,
    cgi_params,
)

from ._php_fpm import PhpFpm, php_fpm

__all__ = ("php_fpm",)

pytestmark = [pytest.mark.servers, pytest.mark.anyio]

MiB = 1024 * 1024


@pytest.fixture(params=["tcp", "unix"])
def address(request: pytest.FixtureRequest, php_fpm: PhpFpm) -> str:
    return str(getattr(php_fpm, request.param))


def php_client(php_fpm: PhpFpm, address: str, **kwargs: object) -> httpx.AsyncClient:
    transport = FastCGITransport(address, document_root=str(php_fpm.root), **kwargs)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://app.test")


async def test_get_sees_cgi_params_in_server(php_fpm: PhpFpm, address: str) -> None:
    async with php_client(php_fpm, address) as client:
        response = await client.get(
            "/server.php?name=caf%C3%A9&x=1", headers={"X-Custom": "one", "Cookie": "a=1"}
        )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    data = response.json()
    server = data["server"]
    assert server["REQUEST_METHOD"] == "GET"
    assert server["SCRIPT_NAME"] == "/server.php"
    assert server["SCRIPT_FILENAME"] == str(php_fpm.root / "server.php")
    assert server["DOCUMENT_ROOT"] == str(php_fpm.root)
    assert server["REQUEST_URI"] == "/server.php?name=caf%C3%A9&x=1"
    assert server["QUERY_STRING"] == "name=caf%C3%A9&x=1"
    assert server["SERVER_NAME"] == "app.test"
    assert server["SERVER_PORT"] == "80"
    assert server["HTTP_HOST"] == "app.test"
    assert server["HTTP_X_CUSTOM"] == "one"
    assert server["REMOTE_ADDR"] == "127.0.0.1"
    assert server["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert server["GATEWAY_INTERFACE"] == "CGI/1.1"
    assert server["REQUEST_SCHEME"] == "http"
    assert server["SERVER_SOFTWARE"].startswith("anysgi/")
    assert "HTTPS" not in server
    assert data["get"] == {"name": "café", "x": "1"}
    assert response.extensions["fastcgi_stderr"] == b""


async def test_post_bodies(php_fpm: PhpFpm, address: str) -> None:
    async with php_client(php_fpm, address) as client:
        form = await client.post("/server.php", data={"a": "1", "b": "two words"})
        as_json = await client.post("https://app.test:8443/server.php", json={"a": 1})
    assert form.json()["post"] == {"a": "1", "b": "two words"}
    server = form.json()["server"]
    assert server["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    assert server["CONTENT_LENGTH"] == str(len("a=1&b=two+words"))
    assert as_json.json()["input"] == '{"a":1}'
    server = as_json.json()["server"]
    assert server["HTTPS"] == "on"
    assert server["SERVER_PORT"] == "8443"
    assert server["CONTENT_TYPE"] == "application/json"


async def test_large_streamed_upload(php_fpm: PhpFpm) -> None:
    size = 4 * MiB  # php-fpm's post_max_size is 8M

    async def body() -> object:
        for _ in range(size // 65536):
            yield b"y" * 65536

    async with php_client(php_fpm, php_fpm.tcp) as client:
        response = await client.post(
            "/server.php",
            content=body(),  # type: ignore[arg-type]
            headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"},
        )
    data = response.json()
    assert data["server"]["CONTENT_LENGTH"] == str(size)
    assert len(data["input"]) == size


async def test_mount_point_sets_path_info(php_fpm: PhpFpm) -> None:
    transport = FastCGITransport(
        php_fpm.tcp,
        script_name="/server.php",
        params={"SCRIPT_FILENAME": str(php_fpm.root / "server.php")},
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        server = (await client.get("/server.php/api/items")).json()["server"]
    assert server["SCRIPT_NAME"] == "/server.php"
    assert server["PATH_INFO"] == "/api/items"


async def test_100_mib_response_streams_in_bounded_memory(php_fpm: PhpFpm) -> None:
    chunks = total = largest = 0
    tracemalloc.start()
    try:
        async with (
            php_client(php_fpm, php_fpm.tcp) as client,
            client.stream("GET", "/big.php?mib=100") as response,
        ):
            assert response.status_code == 200
            async for chunk in response.aiter_raw():
                chunks += 1
                total += len(chunk)
                largest = max(largest, len(chunk))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == 100 * MiB
    # Chunks of at most one read each, and never the whole body in memory.
    assert chunks >= 100 * MiB // (128 * 1024)
    assert largest <= 128 * 1024
    assert peak < 4 * MiB, f"peak traced memory {peak} bytes for a 100 MiB response"


def test_100_mib_response_sync(php_fpm: PhpFpm) -> None:
    transport = FastCGITransport(php_fpm.unix, document_root=str(php_fpm.root))
    total = 0
    tracemalloc.start()
    try:
        with (
            httpx.Client(transport=transport, base_url="http://app") as client,
            client.stream("GET", "/big.php?mib=100") as response,
        ):
            for chunk in response.iter_raw():
                total += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == 100 * MiB
    assert peak < 4 * MiB


async def test_response_arrives_while_php_still_runs(php_fpm: PhpFpm, tmp_path: Path) -> None:
    marker = tmp_path / "got-first-chunk"
    async with (
        php_client(php_fpm, php_fpm.tcp) as client,
        client.stream("GET", "/gate.php", params={"marker": str(marker)}) as response,
    ):
        chunks = []
        async for chunk in response.aiter_raw():
            chunks.append(chunk)
            marker.touch()  # PHP goes on only once we have its first chunk
    assert b"".join(chunks) == b"first,second"


async def test_status_page_and_ping(php_fpm: PhpFpm, address: str) -> None:
    async with httpx.AsyncClient(transport=FastCGITransport(address)) as client:
        ping = await client.get(
            "http://app/ping", extensions={"fastcgi_params": {"SCRIPT_FILENAME": "/ping"}}
        )
        status = await client.get(
            "http://app/status?json",
            extensions={"fastcgi_params": {"SCRIPT_FILENAME": "/status"}},
        )
    assert ping.status_code == 200
    assert ping.text == "pong"
    assert status.status_code == 200
    data = status.json()
    assert data["pool"] == ("unix" if address.startswith("unix:") else "tcp")
    assert data["process manager"] == "static"
    assert data["accepted conn"] >= 1


async def test_stderr_status_and_location(
    php_fpm: PhpFpm, caplog: pytest.LogCaptureFixture
) -> None:
    async with php_client(php_fpm, php_fpm.tcp) as client:
        warned = await client.get("/warn.php")
        moved = await client.get("/moved.php")
        missing = await client.get("/missing.php")
    assert warned.status_code == 418
    assert warned.text == "teapot"
    assert b"something odd" in warned.extensions["fastcgi_stderr"]
    assert "something odd" in caplog.text
    assert moved.status_code == 302
    assert moved.headers["location"] == "/elsewhere"
    assert missing.status_code == 404
    assert missing.extensions["fastcgi_stderr"] == b"Primary script unknown"


async def test_keep_conn_keeps_the_same_worker(php_fpm: PhpFpm) -> None:
    async with php_client(php_fpm, php_fpm.tcp) as client:
        pids = {(await client.get("/server.php")).json()["pid"] for _ in range(10)}
    assert len(pids) == 1


async def test_get_values(php_fpm: PhpFpm, address: str) -> None:
    # php-fpm answers only FCGI_MPXS_CONNS, and closes the connection after.
    async with AsyncFastCGIClient(address) as client:
        assert await client.get_values() == {"FCGI_MPXS_CONNS": "0"}
    with FastCGIClient(address) as client:
        assert client.get_values() == {"FCGI_MPXS_CONNS": "0"}
    transport = FastCGITransport(address)
    assert transport.get_values() == {"FCGI_MPXS_CONNS": "0"}
    assert await transport.aget_values() == {"FCGI_MPXS_CONNS": "0"}


async def test_multiplex_falls_back_with_php_fpm(php_fpm: PhpFpm) -> None:
    async with php_client(php_fpm, php_fpm.tcp, multiplex=True) as client:
        responses = []

        async def get() -> None:
            responses.append(await client.get("/server.php"))

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(get)
    assert [r.status_code for r in responses] == [200] * 3


def test_sync_transport_from_threads(php_fpm: PhpFpm) -> None:
    transport = FastCGITransport(
        php_fpm.tcp, params={"SCRIPT_FILENAME": "/ping"}, max_connections=3
    )
    failures: list[BaseException] = []
    with httpx.Client(transport=transport, base_url="http://app") as client:

        def work() -> None:
            try:
                for _ in range(30):
                    assert client.get("/ping").text == "pong"
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=work) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert not failures


def test_low_level_client_and_unknown_role(php_fpm: PhpFpm) -> None:
    params = cgi_params("GET", "/server.php", document_root=str(php_fpm.root))
    with FastCGIClient(php_fpm.tcp) as client:
        response = client.request(params)
        assert response.status == 200
        assert response.app_status == 0
        # PHP knows the three roles of spec 6 and hangs up on any other one (instead of
        # answering END_REQUEST with FCGI_UNKNOWN_ROLE).
        authorizer = client.request(params, role=p.Role.AUTHORIZER)
        assert json.loads(authorizer.content)["server"]["FCGI_ROLE"] == "AUTHORIZER"
        with pytest.raises(ReadError, match="reset by peer"):
            client.request(params, role=7)
        with contextlib.closing(client):
            assert client.request(params).status == 200
