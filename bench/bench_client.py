"""The FastCGI client against its peers: ``python -m bench client``.

Every figure is the median of interleaved repetitions (see ``_common.py``) of sequential
requests on one kept-alive connection (latency-bound, which is what a client's own cost
shows in). The servers run in their own processes, pinned to CPU 1 where there are two;
the clients run here. Two things are measured for each client:

* requests/s, wall clock: the whole round trip, server included;
* client CPU per request (``time.process_time`` of this process): what the client itself
  costs, whatever the server.

Peers, in the same run:

* php-fpm's ping (answered by php-fpm in C, no PHP runs): ``FastCGITransport`` in
  ``httpx.AsyncClient`` (asyncio and trio) and ``httpx.Client``, the low-level clients,
  and Debian's ``cgi-fcgi`` started once per request, which is how it is used in scripts.
* One tiny ASGI app (``app`` below) served three times: over FastCGI by anysgi's own server
  and by fcgisgi, reached through ``FastCGITransport``; and over HTTP by uvicorn (uvloop and
  httptools), reached through httpx's own transport. Bar: the FastCGI round trip costs less
  than the HTTP one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import anyio
import httpx

from anysgi.fastcgi.client import AsyncFastCGIClient, FastCGIClient, FastCGITransport, cgi_params

from ._common import QUICK, Figure, free_port, interleave, pinned, report, rounds, wait_port

REQUESTS = 200 if QUICK else 1000
CGI_FCGI_REQUESTS = 20 if QUICK else 100
REPETITIONS = rounds(5)
SERVER_CPU = 1

Scope = MutableMapping[str, Any]


async def app(
    scope: Scope,
    receive: Callable[[], Awaitable[Scope]],
    send: Callable[[Scope], Awaitable[None]],
) -> None:
    """The tiny ASGI app both servers serve: ``pong``."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].rsplit(".", 1)[-1]
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": b"pong"})


# --- servers ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _process(argv: list[str], port: int, log: Path) -> Iterator[None]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            pinned(argv, SERVER_CPU), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_port(port, proc)
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        proc.wait(10)


@contextlib.contextmanager
def php_fpm(tmp: Path) -> Iterator[str]:
    binary = shutil.which("php-fpm8.2", path="/usr/sbin:/usr/bin")
    if binary is None:
        raise RuntimeError("php-fpm is not installed (apt-get install php-fpm)")
    port = free_port()
    config = tmp / "php-fpm.conf"
    config.write_text(
        f"""[global]
pid = {tmp / "php-fpm.pid"}
error_log = {tmp / "php-fpm.log"}
daemonize = no
[bench]
user = root
group = root
listen = 127.0.0.1:{port}
pm = static
pm.max_children = 2
ping.path = /ping
"""
    )
    argv = [binary, "--nodaemonize", "--fpm-config", str(config)]
    if os.geteuid() == 0:
        argv.append("--allow-to-run-as-root")
    with _process(argv, port, tmp / "php-fpm.out"):
        yield f"127.0.0.1:{port}"


@contextlib.contextmanager
def fcgisgi(tmp: Path) -> Iterator[str]:
    port = free_port()
    code = (
        "import asyncio; from fcgisgi.asyncio_server import run_asgi_server; "
        "from bench.bench_client import app; "
        f"asyncio.run(run_asgi_server(app, ('127.0.0.1', {port})))"
    )
    with _process([sys.executable, "-c", code], port, tmp / "fcgisgi.out"):
        yield f"127.0.0.1:{port}"


@contextlib.contextmanager
def anysgi_server(tmp: Path) -> Iterator[str]:
    port = free_port()
    argv = [sys.executable, "-m", "anysgi", "serve", "bench.bench_client:app"]
    argv += ["--bind", f"127.0.0.1:{port}", "--log-level", "warning"]
    with _process(argv, port, tmp / "anysgi.out"):
        yield f"127.0.0.1:{port}"


@contextlib.contextmanager
def uvicorn(tmp: Path) -> Iterator[str]:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.bench_client:app",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    with _process(argv, port, tmp / "uvicorn.out"):
        yield f"http://127.0.0.1:{port}"


# --- clients ------------------------------------------------------------------------------------

PING = {"SCRIPT_FILENAME": "/ping"}


class Measure:
    """Runs one client for REQUESTS requests; keeps CPU per request on the side."""

    def __init__(self) -> None:
        self.cpu: dict[str, list[float]] = {}

    def _done(self, name: str, count: int, wall: float, cpu: float) -> float:
        self.cpu.setdefault(name, []).append(cpu / count * 1e6)
        return count / wall

    def async_httpx(
        self, name: str, backend: str, url: str, address: str | None, **options: Any
    ) -> Callable[[], float]:
        """httpx.AsyncClient with a FastCGITransport to *address*, or its own transport."""

        async def run() -> float:
            kwargs: dict[str, Any] = {}
            if address is not None:
                kwargs["transport"] = FastCGITransport(address, **options)
            async with httpx.AsyncClient(**kwargs) as client:
                for _ in range(20):
                    (await client.get(url)).raise_for_status()
                wall, cpu = time.perf_counter(), time.process_time()
                for _ in range(REQUESTS):
                    response = await client.get(url)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                assert response.content == b"pong", response.content
            return self._done(name, REQUESTS, wall, cpu)

        return lambda: anyio.run(run, backend=backend)

    def sync_httpx(
        self, name: str, url: str, address: str | None, **options: Any
    ) -> Callable[[], float]:
        """httpx.Client with a FastCGITransport to *address*, or its own transport."""

        def run() -> float:
            kwargs: dict[str, Any] = {}
            if address is not None:
                kwargs["transport"] = FastCGITransport(address, **options)
            with httpx.Client(**kwargs) as client:
                for _ in range(20):
                    client.get(url).raise_for_status()
                wall, cpu = time.perf_counter(), time.process_time()
                for _ in range(REQUESTS):
                    response = client.get(url)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                assert response.content == b"pong", response.content
            return self._done(name, REQUESTS, wall, cpu)

        return run

    def async_low_level(self, name: str, address: str, backend: str) -> Callable[[], float]:
        params = {**cgi_params("GET", "/ping"), **{k.encode(): v.encode() for k, v in PING.items()}}

        async def run() -> float:
            async with AsyncFastCGIClient(address) as client:
                for _ in range(20):
                    await client.request(params)
                wall, cpu = time.perf_counter(), time.process_time()
                for _ in range(REQUESTS):
                    response = await client.request(params)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                assert response.content == b"pong"
            return self._done(name, REQUESTS, wall, cpu)

        return lambda: anyio.run(run, backend=backend)

    def sync_low_level(self, name: str, address: str) -> Callable[[], float]:
        params = {**cgi_params("GET", "/ping"), **{k.encode(): v.encode() for k, v in PING.items()}}

        def run() -> float:
            with FastCGIClient(address) as client:
                for _ in range(20):
                    client.request(params)
                wall, cpu = time.perf_counter(), time.process_time()
                for _ in range(REQUESTS):
                    response = client.request(params)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                assert response.content == b"pong"
            return self._done(name, REQUESTS, wall, cpu)

        return run

    def cgi_fcgi(self, name: str, address: str) -> Callable[[], float]:
        binary = shutil.which("cgi-fcgi")
        if binary is None:
            raise RuntimeError("cgi-fcgi is not installed (apt-get install libfcgi-bin)")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin"),
            "REQUEST_METHOD": "GET",
            "SCRIPT_NAME": "/ping",
            "SCRIPT_FILENAME": "/ping",
            "QUERY_STRING": "",
        }
        argv = [binary, "-bind", "-connect", address]

        def run() -> float:
            wall = time.perf_counter()
            before = os.times()
            for _ in range(CGI_FCGI_REQUESTS):
                out = subprocess.run(argv, env=env, capture_output=True, check=True).stdout
            after = os.times()
            wall = time.perf_counter() - wall
            assert out.endswith(b"pong"), out
            # Its CPU is the children's: the cgi-fcgi processes.
            cpu = (after.children_user - before.children_user) + (
                after.children_system - before.children_system
            )
            return self._done(name, CGI_FCGI_REQUESTS, wall, cpu)

        return run


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with (
            php_fpm(tmp) as fpm,
            anysgi_server(tmp) as anysgi_app,
            fcgisgi(tmp) as fcgi_app,
            uvicorn(tmp) as http_app,
        ):
            m = Measure()
            ping_url = "http://app/ping"
            php = {
                "async transport, asyncio": m.async_httpx(
                    "async transport, asyncio",
                    "asyncio",
                    ping_url,
                    fpm,
                    params=PING,
                ),
                "async transport, trio": m.async_httpx(
                    "async transport, trio", "trio", ping_url, fpm, params=PING
                ),
                "sync transport": m.sync_httpx("sync transport", ping_url, fpm, params=PING),
                "AsyncFastCGIClient, asyncio": m.async_low_level(
                    "AsyncFastCGIClient, asyncio", fpm, "asyncio"
                ),
                "FastCGIClient": m.sync_low_level("FastCGIClient", fpm),
                "cgi-fcgi per request": m.cgi_fcgi("cgi-fcgi per request", fpm),
            }
            same_app = {
                "FastCGI: async transport -> anysgi": m.async_httpx(
                    "FastCGI: async transport -> anysgi",
                    "asyncio",
                    "http://app/",
                    anysgi_app,
                ),
                "FastCGI: sync transport -> anysgi": m.sync_httpx(
                    "FastCGI: sync transport -> anysgi", "http://app/", anysgi_app
                ),
                "FastCGI: async transport -> fcgisgi": m.async_httpx(
                    "FastCGI: async transport -> fcgisgi",
                    "asyncio",
                    "http://app/",
                    fcgi_app,
                ),
                "HTTP: httpx.AsyncClient -> uvicorn": m.async_httpx(
                    "HTTP: httpx.AsyncClient -> uvicorn", "asyncio", http_app + "/", None
                ),
                "FastCGI: sync transport -> fcgisgi": m.sync_httpx(
                    "FastCGI: sync transport -> fcgisgi", "http://app/", fcgi_app
                ),
                "HTTP: httpx.Client -> uvicorn": m.sync_httpx(
                    "HTTP: httpx.Client -> uvicorn", http_app + "/", None
                ),
            }
            php_samples = interleave(php, REPETITIONS)
            app_samples = interleave(same_app, REPETITIONS)

    def figures(samples: dict[str, list[float]]) -> tuple[list[Figure], list[Figure]]:
        rps = [Figure(name, tuple(values), "req/s") for name, values in samples.items()]
        cpu = [Figure(name, tuple(m.cpu[name]), "us/req", lower_is_better=True) for name in samples]
        return rps, cpu

    print(
        f"\nsequential requests on one connection; {REQUESTS} per sample "
        f"({CGI_FCGI_REQUESTS} for cgi-fcgi), {REPETITIONS} samples, median [min .. max]"
    )
    rps, cpu = figures(php_samples)
    report("php-fpm ping: requests/s (higher is better)", rps, baseline="async transport, asyncio")
    report("php-fpm ping: client CPU per request (lower is better)", cpu)
    rps, cpu = figures(app_samples)
    report(
        "same tiny ASGI app, FastCGI (anysgi's server, fcgisgi) vs HTTP (uvicorn): requests/s",
        rps,
        baseline="FastCGI: async transport -> anysgi",
    )
    report("same tiny ASGI app: client CPU per request (lower is better)", cpu)
    cpu_of = {f.name: f.median for f in cpu}
    rps_of = {f.name: f.median for f in rps}
    print("\nbar: a FastCGI round trip through the transport costs less than an HTTP one")
    for kind, fastcgi, http in (
        ("async", "FastCGI: async transport -> anysgi", "HTTP: httpx.AsyncClient -> uvicorn"),
        ("async", "FastCGI: async transport -> fcgisgi", "HTTP: httpx.AsyncClient -> uvicorn"),
        ("sync", "FastCGI: sync transport -> anysgi", "HTTP: httpx.Client -> uvicorn"),
        ("sync", "FastCGI: sync transport -> fcgisgi", "HTTP: httpx.Client -> uvicorn"),
    ):
        wall_met = rps_of[fastcgi] > rps_of[http]
        cpu_met = cpu_of[fastcgi] < cpu_of[http]
        print(
            f"  {kind}, {fastcgi.rsplit(' ', 1)[1]}: wall {1e6 / rps_of[fastcgi]:.0f} us "
            f"vs {1e6 / rps_of[http]:.0f} us "
            f"({'MET' if wall_met else 'NOT MET'}); client CPU {cpu_of[fastcgi]:.0f} us vs "
            f"{cpu_of[http]:.0f} us ({'MET' if cpu_met else 'NOT MET'})"
        )
