"""WSGI2ASGI against its peers: ``python -m bench wsgi2asgi``.

Three measurements, each with every peer in the same run, interleaved:

1. In process: a minimal ASGI driver calls the app in a loop (the WSGI hello app behind
   each adapter, and the same response in native ASGI). A fresh process per repetition,
   pinned to one core and then unpinned; microseconds per request, lower is better.
2. Under uvicorn (1 worker, asyncio) and hypercorn -k trio, with wrk; server and wrk on
   different cores; requests per second, higher is better.
3. Memory: 1 GiB up and 1 GiB down through WSGI2ASGI under uvicorn; the serving process's
   peak RSS above its idle figure.

Environment: ``BENCH_QUICK``, ``BENCH_ROUNDS`` (default 5), ``BENCH_SECONDS`` (default 5);
see ``_common.py``. An in-process sample lasts 1 s (0.3 s with ``BENCH_QUICK``).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._common import (
    QUICK,
    Figure,
    free_port,
    interleave,
    pinned,
    report,
    rounds,
    wait_port,
    wrk,
    wrk_seconds,
)

ROOT = Path(__file__).parent.parent
REPS = rounds(5)
SECONDS = 0.3 if QUICK else 1.0
WRK_SECONDS = wrk_seconds(5)
GiB = 1024**3

ASYNCIO_PEERS = ["anysgi", "uvicorn", "a2wsgi", "asgiref", "starlette", "native"]
TRIO_PEERS = ["anysgi", "starlette", "native"]


# --- 1. in process --------------------------------------------------------------------


def _inprocess_worker(name: str, backend: str, seconds: float) -> None:
    """Runs in the child process: print microseconds per request."""
    import anyio

    from bench.wsgi2asgi_apps import build

    app = build(name)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench"), (b"accept", b"*/*")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    request = {"type": "http.request", "body": b"", "more_body": False}

    async def receive() -> dict[str, Any]:
        return request

    async def send(message: Any) -> None:
        pass

    async def run() -> float:
        for _ in range(300):  # warm up: threads started, code paths hot
            await app(dict(scope), receive, send)
        count = 0
        start = time.perf_counter()
        deadline = start + seconds
        while True:
            for _ in range(100):
                await app(dict(scope), receive, send)
            count += 100
            now = time.perf_counter()
            if now >= deadline:
                return (now - start) / count * 1e6

    print(anyio.run(run, backend=backend))


def inprocess(name: str, backend: str, *, cpu: int | None) -> float:
    argv = [sys.executable, "-m", "bench.bench_wsgi2asgi", "--inprocess", name, backend]
    out = subprocess.run(
        pinned(argv, cpu), check=True, capture_output=True, text=True, cwd=ROOT
    ).stdout
    return float(out.strip().splitlines()[-1])


def bench_inprocess() -> dict[str, Figure]:
    figures: dict[str, Figure] = {}
    for backend, peers in (("asyncio", ASYNCIO_PEERS), ("trio", TRIO_PEERS)):
        for cpu, label in ((0, "pinned to one core"), (None, "unpinned")):
            candidates: dict[str, Callable[[], float]] = {
                name: functools.partial(inprocess, name, backend, cpu=cpu) for name in peers
            }
            samples = interleave(candidates, REPS)
            group = [
                Figure(n, tuple(s), "us/req", lower_is_better=True) for n, s in samples.items()
            ]
            report(f"in process, {backend}, {label} (us per request)", group, baseline="anysgi")
            for fig in group:
                figures[f"{backend}/{label}/{fig.name}"] = fig
    return figures


# --- 2. under real servers ------------------------------------------------------------


#: uvicorn's stacks: plain asyncio with h11 (pure Python), and uvicorn[standard]'s
#: uvloop with httptools, whose parsing costs less, so the adapters weigh more.
UVICORN_STACKS = {"uvicorn": ("uvloop", "httptools"), "uvicorn-h11": ("asyncio", "h11")}


class Server:
    """One server process serving ``bench.wsgi2asgi_apps:app`` with the given candidate."""

    def __init__(self, server: str, candidate: str) -> None:
        self.port = free_port()
        if server.startswith("uvicorn"):
            loop, http = UVICORN_STACKS[server]
            argv = ["-m", "uvicorn", "--port", str(self.port), "--log-level", "warning",
                    "--no-access-log", "--loop", loop, "--http", http,
                    "bench.wsgi2asgi_apps:app"]  # fmt: skip
        else:  # hypercorn -k trio
            argv = ["-m", "hypercorn", "-k", "trio", "-b", f"127.0.0.1:{self.port}",
                    "bench.wsgi2asgi_apps:app"]  # fmt: skip
        env = {**os.environ, "W2A_CANDIDATE": candidate, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            pinned([sys.executable, *argv], 0), cwd=ROOT, env=env, stdout=subprocess.DEVNULL
        )
        wait_port(self.port, self.proc)
        self.url = f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def served_rps(server: str, candidate: str) -> float:
    srv = Server(server, candidate)
    try:
        wrk(f"{srv.url}/", seconds=1, connections=16, cpu=1)  # warm up
        return wrk(f"{srv.url}/", seconds=WRK_SECONDS, connections=16, cpu=1)
    finally:
        srv.close()


def bench_servers() -> dict[str, Figure]:
    figures: dict[str, Figure] = {}
    # asgiref's WsgiToAsgi is left out here: under concurrent load it answers part of the
    # requests with 500s ("CurrentThreadExecutor already quit or is broken", asgiref 3.13).
    runs = [("uvicorn", ["anysgi", "uvicorn", "a2wsgi", "starlette", "native"]),
            ("uvicorn-h11", ["anysgi", "uvicorn", "a2wsgi", "native"]),
            ("hypercorn-trio", ["anysgi", "starlette", "native"])]  # fmt: skip
    reps = max(2, REPS // 2)
    for server, peers in runs:
        candidates: dict[str, Callable[[], float]] = {
            name: functools.partial(served_rps, server, name) for name in peers
        }
        samples = interleave(candidates, reps)
        group = [Figure(n, tuple(s), "req/s") for n, s in samples.items()]
        stack = "uvloop + httptools" if server == "uvicorn" else "asyncio + h11"
        title = f"under {server} ({stack})" if server.startswith("uvicorn") else f"under {server}"
        report(f"{title}, 1 worker, wrk -c16 (requests per second)", group, baseline="anysgi")
        for fig in group:
            figures[f"{server}/{fig.name}"] = fig
    return figures


# --- 3. memory ------------------------------------------------------------------------


def _vm(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    raise RuntimeError(f"no {key} for {pid}")


def bench_memory() -> int:
    import httpx

    srv = Server("uvicorn", "transfer")
    try:
        with httpx.Client(base_url=srv.url, timeout=120) as client:
            block = b"u" * (1024 * 1024)

            def body(size: int) -> Any:
                for _ in range(size // len(block)):
                    yield block

            client.post("/upload", content=body(8 << 20), headers={"Content-Length": str(8 << 20)})
            client.get("/download", params={"size": 8 << 20})
            idle = _vm(srv.proc.pid, "VmRSS:")
            started = time.perf_counter()
            response = client.post(
                "/upload", content=body(GiB), headers={"Content-Length": str(GiB)}
            )
            assert response.text == str(GiB), response.text
            received = 0
            with client.stream("GET", "/download", params={"size": GiB}) as stream:
                for data in stream.iter_raw(1 << 20):
                    received += len(data)
            assert received == GiB
            elapsed = time.perf_counter() - started
            peak = _vm(srv.proc.pid, "VmHWM:")
    finally:
        srv.close()
    growth = peak - idle
    print(
        f"\nmemory, uvicorn: 1 GiB up + 1 GiB down in {elapsed:.1f} s; idle RSS {idle} KiB, "
        f"peak {peak} KiB: {growth / 1024:.1f} MiB above idle (bar: < 64 MiB)",
        flush=True,
    )
    return growth


# --- bars -----------------------------------------------------------------------------


def check(label: str, ok: bool, detail: str) -> None:
    print(f"  [{'met' if ok else 'MISSED'}] {label}: {detail}", flush=True)


def main() -> None:
    print("WSGI2ASGI vs peers (provisional on a busy 2-core machine; medians)", flush=True)
    inproc = bench_inprocess()
    servers = bench_servers()
    growth = bench_memory()

    def ratio(a: str, b: str, figures: dict[str, Figure]) -> float:
        return figures[a].median / figures[b].median

    print("\nbars:")
    r = ratio("asyncio/pinned to one core/anysgi", "asyncio/pinned to one core/uvicorn", inproc)
    check("in process, asyncio, pinned: <= 0.6x uvicorn's middleware", r <= 0.6, f"{r:.2f}x")
    r = ratio("trio/pinned to one core/anysgi", "trio/pinned to one core/starlette", inproc)
    check("in process, trio, pinned: <= 0.2x Starlette's", r <= 0.2, f"{r:.2f}x")
    for server in ("uvicorn", "uvicorn-h11"):
        r = ratio(f"{server}/anysgi", f"{server}/uvicorn", servers)
        check(f"{server} req/s: >= 1x uvicorn's middleware", r >= 1.0, f"{r:.2f}x")
        r = ratio(f"{server}/anysgi", f"{server}/a2wsgi", servers)
        check(f"{server} req/s: >= 2.5x a2wsgi", r >= 2.5, f"{r:.2f}x")
    r = ratio("hypercorn-trio/anysgi", "hypercorn-trio/starlette", servers)
    check("hypercorn -k trio req/s: >= 2x Starlette's", r >= 2.0, f"{r:.2f}x")
    check("1 GiB up and down: peak RSS < 64 MiB above idle", growth < 64 * 1024, f"{growth} KiB")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--inprocess":
        _inprocess_worker(sys.argv[2], sys.argv[3], SECONDS)
    else:
        main()
