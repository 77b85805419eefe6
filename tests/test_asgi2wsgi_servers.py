"""ASGI2WSGI under real WSGI servers on loopback: gunicorn (sync, gthread, --preload) and
waitress, each on asyncio and trio, serving ``tests/asgi2wsgi_apps.py``."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Both are in the test dependency group: a missing one is an error, never a skip.
import gunicorn  # noqa: F401
import httpx
import pytest
import waitress  # noqa: F401

from ._servers import ServerProcess, free_port, peak_rss_kib, run_server

pytestmark = pytest.mark.servers

ROOT = Path(__file__).parent.parent
MiB = 1024 * 1024

# name -> the server's command line (after "python -m"); {port} is filled in.
SERVERS = {
    "gunicorn-sync": ["gunicorn", "-k", "sync", "-w", "1"],
    "gunicorn-gthread": ["gunicorn", "-k", "gthread", "-w", "1", "--threads", "8"],
    "gunicorn-preload": ["gunicorn", "-k", "sync", "-w", "2", "--preload"],
    "waitress": ["waitress", "--threads=8"],
}


@dataclass
class Server:
    name: str
    backend: str
    url: str
    process: ServerProcess
    log: Path
    tmp: Path


def _argv(name: str, port: int) -> list[str]:
    command = SERVERS[name]
    if command[0] == "gunicorn":
        bind = ["--bind", f"127.0.0.1:{port}", "--graceful-timeout", "10"]
        extra = ["--access-logfile", "-", "--log-level", "info"]
    else:
        bind, extra = [f"--listen=127.0.0.1:{port}"], []
    return [sys.executable, "-m", *command, *bind, *extra, "tests.asgi2wsgi_apps:application"]


ALL = [(name, backend) for name in SERVERS for backend in ("asyncio", "trio")]


def servers(*names: str) -> pytest.MarkDecorator:
    """Run a test against the named servers (all by default), on both backends."""
    params = [p for p in ALL if not names or p[0] in names]
    return pytest.mark.parametrize(
        "server", params, ids=[f"{n}-{b}" for n, b in params], indirect=True
    )


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    name, backend = request.param
    tmp = tmp_path_factory.mktemp(f"{name}-{backend}")
    log = tmp / "lifespan.log"
    port = free_port()
    # waitress exits through KeyboardInterrupt (so atexit hooks run) on SIGINT only.
    stop = signal.SIGINT if name == "waitress" else signal.SIGTERM
    with run_server(
        _argv(name, port),
        name=f"{name}-{backend}",
        log_dir=tmp,
        cwd=ROOT,
        env={"ANYSGI_TEST_BACKEND": backend, "ANYSGI_TEST_LOG": str(log)},
        ready=("127.0.0.1", port),
        stop_signal=stop,
    ) as process:
        yield Server(name, backend, f"http://127.0.0.1:{port}", process, log, tmp)


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


def worker_pid(client: httpx.Client) -> int:
    return int(client.get("/pid").text.split()[0])


@servers()
def test_hello(client: httpx.Client) -> None:
    response = client.get("/hello")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain"
    assert response.text == "Hello, world!"


@servers()
def test_lifespan_ran_in_the_worker(server: Server, client: httpx.Client) -> None:
    pid, startup_pid, threads = client.get("/pid").text.split(" ", 2)
    assert pid == startup_pid
    assert f"startup {pid}" in server.log.read_text().splitlines()
    if server.name != "waitress":
        assert pid != str(server.process.pid)  # a worker, not the gunicorn master
    assert f"{server.backend}-portal-" in threads


@servers()
def test_first_chunk_arrives_before_the_app_finishes(server: Server, client: httpx.Client) -> None:
    release = server.tmp / f"release-{time.monotonic_ns()}"
    with client.stream("GET", "/stream", params={"release": str(release)}) as response:
        assert response.headers["content-type"] == "text/event-stream"
        chunks = response.iter_raw()
        first = next(chunks)
        assert first == b"data: first\n\n"
        release.touch()  # only now may the app finish
        rest = b"".join(chunks)
    assert rest == b"data: second\n\n"


@servers()
def test_client_disconnecting_mid_stream(server: Server) -> None:
    marker = server.tmp / f"disconnect-{time.monotonic_ns()}"
    with (
        httpx.Client(base_url=server.url, timeout=60) as client,
        client.stream("GET", "/disconnect", params={"marker": str(marker)}) as response,
    ):
        assert len(next(response.iter_raw())) > 0
    # Leaving the block closed the connection mid-stream.
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert time.monotonic() < deadline, "the app never saw the client go away"
        time.sleep(0.01)
    assert "http.disconnect" in marker.read_text().split()
    # The server goes on serving.
    with httpx.Client(base_url=server.url, timeout=60) as client:
        assert client.get("/hello").text == "Hello, world!"


@servers("gunicorn-sync", "gunicorn-gthread")
def test_upload_and_download_200_mib_with_flat_memory(server: Server, client: httpx.Client) -> None:
    # gunicorn hands bodies through unbuffered (waitress spools them to disk itself).
    size = 200 * MiB
    pid = worker_pid(client)
    client.get("/download", params={"size": 4 * MiB}).read()  # warm every path up
    client.post("/upload", content=b"u" * MiB)
    baseline = peak_rss_kib(pid)

    def body() -> Iterator[bytes]:  # no Content-Length: a chunked upload
        piece = b"u" * MiB
        for _ in range(size // MiB):
            yield piece

    response = client.post("/upload", content=body())
    assert response.text == str(size)

    received = 0
    with client.stream("GET", "/download", params={"size": size}) as stream:
        chunks = stream.iter_raw(MiB)
        received += len(next(chunks))
        # A client that stalls: without backpressure the app would now queue the whole
        # body in the worker's memory, which the bound below would catch.
        time.sleep(1)
        for chunk in chunks:
            received += len(chunk)
    assert received == size

    growth_mib = (peak_rss_kib(pid) - baseline) / 1024
    assert growth_mib < 32, f"worker peak RSS grew by {growth_mib:.1f} MiB"


@servers("gunicorn-preload")
def test_lifespan_shutdown_runs_when_the_worker_exits(server: Server) -> None:
    # The preloaded master imported the app but never started an event loop: a thread
    # there would not survive fork() (a2wsgi#81).
    forks = [line for line in server.log.read_text().splitlines() if line.startswith("fork ")]
    assert forks == [f"fork {server.process.pid} portals=0"] * 2
    pids = set()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for _ in range(20):
            pid, startup_pid, _ = client.get("/pid").text.split(" ", 2)
            assert pid == startup_pid
            pids.add(pid)
    # Restart the workers: each runs lifespan shutdown as it exits (atexit).
    os.kill(server.process.pid, signal.SIGHUP)
    deadline = time.monotonic() + 30
    while True:
        lines = server.log.read_text().splitlines()
        if all(f"shutdown {pid}" in lines for pid in pids):
            break
        assert time.monotonic() < deadline, f"no shutdown for {pids} in {lines}"
        time.sleep(0.05)
    for pid in pids:
        assert lines.count(f"startup {pid}") == 1
        assert lines.count(f"shutdown {pid}") == 1


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_waitress_runs_lifespan_shutdown_on_sigint(backend: str, tmp_path: Path) -> None:
    log = tmp_path / "lifespan.log"
    port = free_port()
    with run_server(
        _argv("waitress", port),
        name=f"waitress-exit-{backend}",
        log_dir=tmp_path,
        cwd=ROOT,
        env={"ANYSGI_TEST_BACKEND": backend, "ANYSGI_TEST_LOG": str(log)},
        ready=("127.0.0.1", port),
        stop_signal=signal.SIGINT,
    ) as process:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            assert client.get("/hello").text == "Hello, world!"
        process.proc.send_signal(signal.SIGINT)
        assert process.proc.wait(30) == 0
    assert log.read_text().splitlines() == [f"startup {process.pid}", f"shutdown {process.pid}"]
