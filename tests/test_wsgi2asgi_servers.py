"""WSGI2ASGI under real ASGI servers on loopback: uvicorn, hypercorn (asyncio and trio), granian.

Each server imports ``tests.wsgi2asgi_served:app`` (a validated WSGI app behind WSGI2ASGI)
in its own process. The tests move 200 MiB each way and bound the serving process's peak
RSS, cut a download short and check from here that the app's close() ran, and check that
an error after the headers really cuts the response on each server.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ._servers import REQUIRE_SERVERS, ServerProcess, free_port, peak_rss_kib, run_server

pytestmark = pytest.mark.servers

ROOT = Path(__file__).parent.parent
MiB = 1024 * 1024
TRANSFER = 200 * MiB
# Peak RSS growth allowed while 200 MiB go through: the bodies must stream, not pile up.
RSS_BOUND_KIB = 48 * 1024

SERVERS = {
    "uvicorn": ["-m", "uvicorn", "--host", "127.0.0.1", "--port", "{port}", "--lifespan", "on",
                "--log-level", "warning", "tests.wsgi2asgi_served:app"],
    "hypercorn": ["-m", "hypercorn", "-b", "127.0.0.1:{port}", "tests.wsgi2asgi_served:app"],
    "hypercorn-trio": ["-m", "hypercorn", "-k", "trio", "-b", "127.0.0.1:{port}",
                       "tests.wsgi2asgi_served:app"],
    "granian": ["-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", "{port}",
                "--workers", "1", "tests.wsgi2asgi_served:app"],
}  # fmt: skip


@dataclass
class Served:
    name: str
    server: ServerProcess
    url: str
    pid: int  # the process that runs the app (granian's worker is a child)


@pytest.fixture(scope="module", params=list(SERVERS))
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    name = request.param
    module = name.split("-")[0]
    try:
        __import__(module)
    except ImportError:
        # They come with the test dependency group; in CI a missing one is a failure.
        if REQUIRE_SERVERS:
            pytest.fail(f"{module} is not installed but ANYSGI_REQUIRE_SERVERS=1")
        pytest.skip(f"{module} is not installed (it is in the 'test' dependency group)")
    port = free_port()
    argv = [sys.executable, *(a.format(port=port) for a in SERVERS[name])]
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    log_dir = tmp_path_factory.mktemp(f"{name}-logs")
    with run_server(
        argv, name=name, log_dir=log_dir, env=env, cwd=ROOT, ready=("127.0.0.1", port)
    ) as server:
        url = f"http://127.0.0.1:{port}"
        pid = int(httpx.get(f"{url}/pid", timeout=10).text)
        yield Served(name, server, url, pid)
        # WSGI2ASGI answers lifespan: no server complains about it (uvicorn, with
        # --lifespan on, would not even have started).
        assert "lifespan" not in server.logs().lower()


def test_hello(served: Served) -> None:
    response = httpx.get(f"{served.url}/hello", timeout=10)
    assert response.status_code == 200
    assert response.text == "Hello, world!"


def upload_body(size: int, block: int = MiB) -> Iterator[bytes]:
    chunk = bytes(range(256)) * (block // 256)
    while size > 0:
        yield chunk[:size]
        size -= block


def test_200_mib_up_and_down_in_flat_memory(served: Served) -> None:
    with httpx.Client(base_url=served.url, timeout=60) as client:
        # warm up: the first requests load code and start threads
        client.post(
            "/upload", content=upload_body(4 * MiB), headers={"Content-Length": str(4 * MiB)}
        )
        client.get("/download", params={"size": 4 * MiB})
        baseline = peak_rss_kib(served.pid)

        response = client.post(
            "/upload", content=upload_body(TRANSFER), headers={"Content-Length": str(TRANSFER)}
        )
        expected = hashlib.sha256()
        for chunk in upload_body(TRANSFER):
            expected.update(chunk)
        assert response.text == f"{TRANSFER} {expected.hexdigest()}"

        received = 0
        with client.stream("GET", "/download", params={"size": TRANSFER}) as stream:
            assert stream.headers["content-length"] == str(TRANSFER)
            for data in stream.iter_raw(MiB):
                received += len(data)
        assert received == TRANSFER

        # and a chunked upload (no Content-Length): streamed too
        response = client.post("/upload", content=upload_body(16 * MiB))
        assert response.text.startswith(f"{16 * MiB} ")

    growth = peak_rss_kib(served.pid) - baseline
    print(f"{served.name}: peak RSS grew {growth} KiB over {baseline} KiB moving 2 x 200 MiB")
    assert growth < RSS_BOUND_KIB


def test_client_disconnect_mid_download_closes_the_iterable(served: Served, tmp_path: Path) -> None:
    flag = tmp_path / "closed"
    port = int(served.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET /endless?flag={flag} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        received = 0
        while received < 2 * MiB:
            data = sock.recv(MiB)
            assert data, "the server closed the connection"
            received += len(data)
    # The app runs in the server's process: its close() leaves the flag file.
    deadline = time.monotonic() + 15
    while not flag.exists():
        assert time.monotonic() < deadline, "close() was not called after the client left"
        time.sleep(0.02)
    assert flag.read_text() == "closed"


def test_error_after_headers_cuts_the_response(served: Served) -> None:
    with httpx.Client(base_url=served.url, timeout=10) as client:
        with client.stream("GET", "/fail-after-headers") as response:
            assert response.status_code == 200
            with pytest.raises(httpx.RemoteProtocolError):
                response.read()
        # and the server goes on serving
        assert client.get("/hello").text == "Hello, world!"
    # logged by anysgi, with its traceback
    assert "RuntimeError: failed after the headers were sent" in served.server.logs()


def test_file_wrapper_download(served: Served, tmp_path: Path) -> None:
    """Sent by path where the server offers pathsend (granian), in blocks elsewhere."""
    data = os.urandom(3 * MiB + 17)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    with httpx.Client(base_url=served.url, timeout=30) as client:
        offered = client.get("/extensions").text.split()
        assert ("http.response.pathsend" in offered) == (served.name == "granian")
        response = client.get("/file", params={"path": str(path)})
        assert response.status_code == 200
        assert response.headers["content-length"] == str(len(data))
        assert response.content == data
        # close() deletes this one: it must run only once the server has sent the file
        response = client.get("/tempfile", params={"size": 2 * MiB})
        assert response.content == b"t" * (2 * MiB)
