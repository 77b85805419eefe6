"""ASGI2WSGI against a2wsgi's ASGIMiddleware and a native WSGI app, in the same run.

``python -m bench asgi2wsgi`` (or ``nox -s bench -- asgi2wsgi``). Three parts:

1. In process: the WSGI callable called in a loop, a fresh process per repetition; once
   with the process pinned to one CPU (the WSGI thread and the loop thread share it, so
   the figure is the CPU cost of a request, hops included) and once unpinned.
2. Under gunicorn (gthread, 1 worker, 8 threads) and waitress (8 threads), driven by wrk:
   requests per second. The server is pinned to CPU 0 and wrk to CPU 1. Beside the peers,
   a reference: the "loop floor" (``_asgi2wsgi_app.LoopFloor``), the bare minimum of any
   adapter that runs the ASGI app on an event loop thread (two hand-offs and a task, no
   scope, no checks), which shows how much of the gap to native WSGI is the design's.
3. Peak RSS of a gunicorn worker while 1 GiB goes up and 1 GiB comes down
   through ASGI2WSGI, above the idle worker.

Environment: ``BENCH_QUICK`` (also 2000 requests per in-process sample instead of 10000,
64 MiB instead of 1 GiB), ``BENCH_ROUNDS`` (default 7 in process, 3 served),
``BENCH_SECONDS`` (default 5); see ``_common.py``.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

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
MiB = 1024 * 1024

INPROCESS = ["anysgi_asyncio", "anysgi_uvloop", "anysgi_trio", "a2wsgi", "native"]
SERVED = ["anysgi_asyncio", "anysgi_trio", "a2wsgi", "native", "loop_floor"]
LABELS = {
    "anysgi_asyncio": "anysgi asyncio",
    "anysgi_uvloop": "anysgi asyncio+uvloop",
    "anysgi_trio": "anysgi trio",
    "a2wsgi": "a2wsgi",
    "native": "native WSGI",
    "loop_floor": "loop floor (reference)",
}


# --- 1. in process -------------------------------------------------------------------------


def _environ() -> dict[str, object]:
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "40000",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_USER_AGENT": "bench",
        "HTTP_ACCEPT": "*/*",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


def run_inprocess(name: str, requests: int, cpu: int | None) -> tuple[float, float]:
    """In this (fresh) process: microseconds per request of candidate *name*, wall and CPU.

    The CPU time (this process's user + system time) is what a request costs whatever
    else the machine runs; pinned, the wall time is the same figure plus other processes.
    """
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})  # before any thread exists: they all inherit it
    from . import _asgi2wsgi_app

    app = getattr(_asgi2wsgi_app, name)
    template = _environ()

    def start_response(status: str, headers: object, exc_info: object = None) -> object:
        return None

    def one() -> None:
        result = app(dict(template), start_response)
        try:
            for _ in result:
                pass
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()

    for _ in range(max(200, requests // 10)):
        one()
    cpu_start = time.process_time()
    start = time.perf_counter()
    for _ in range(requests):
        one()
    elapsed = time.perf_counter() - start
    cpu_time = time.process_time() - cpu_start
    close = getattr(app, "close", None)
    if close is not None:
        close()
    return elapsed / requests * 1e6, cpu_time / requests * 1e6


def inprocess_sample(name: str, cpu: int | None, cpu_samples: list[float]) -> float:
    requests = 2000 if QUICK else 10000
    argv = [sys.executable, "-m", "bench.bench_asgi2wsgi", "inprocess", name, str(requests)]
    argv.append("none" if cpu is None else str(cpu))
    out = subprocess.run(
        argv, cwd=ROOT, env=_env(), check=True, capture_output=True, text=True
    ).stdout
    wall, cpu_time = map(float, out.split())
    cpu_samples.append(cpu_time)
    return wall


def bench_inprocess() -> None:
    repetitions = rounds(7)
    for cpu, title in ((0, "pinned to one CPU"), (None, "unpinned")):
        cpu_samples: dict[str, list[float]] = {name: [] for name in INPROCESS}
        samples = interleave(
            {
                name: functools.partial(inprocess_sample, name, cpu, cpu_samples[name])
                for name in INPROCESS
            },
            repetitions,
        )
        for what, source in (("time", samples), ("CPU time", cpu_samples)):
            figures = [
                Figure(LABELS[name], tuple(source[name]), "us/req", lower_is_better=True)
                for name in INPROCESS
            ]
            report(
                f"In process, hello world, {what} per request ({title}; a fresh process"
                f" each; median of {repetitions})",
                figures,
                baseline="anysgi asyncio",
            )


# --- 2. under real servers ---------------------------------------------------------------


def _env() -> dict[str, str]:
    path = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path)}


@contextlib.contextmanager
def serving(server: str, name: str, *, cpu: int | None = 0) -> Iterator[int]:
    """Run *server* ("gthread", "sync" or "waitress") with candidate *name*; yield the port."""
    port = free_port()
    target = f"bench._asgi2wsgi_app:{name}"
    if server == "waitress":
        argv = ["waitress", "--threads=8", f"--listen=127.0.0.1:{port}", target]
        stop = signal.SIGINT
    else:
        threads = ["--threads", "8"] if server == "gthread" else []
        argv = ["gunicorn", "-k", server, "-w", "1", *threads]
        argv += ["--bind", f"127.0.0.1:{port}", "--log-level", "warning", target]
        stop = signal.SIGTERM
    proc = subprocess.Popen(
        pinned([sys.executable, "-m", *argv], cpu),
        cwd=ROOT,
        env=_env(),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port, proc)
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, stop)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def served_sample(server: str, name: str) -> float:
    with serving(server, name) as port:
        url = f"http://127.0.0.1:{port}/"
        wrk(url, seconds=1)  # warm-up: connections, threads, the loop, the caches
        return wrk(url, seconds=wrk_seconds(5))


def bench_served() -> None:
    repetitions = rounds(3)
    for server, title in (("gthread", "gunicorn gthread (1 worker, 8 threads)"),
                          ("waitress", "waitress (8 threads)")):  # fmt: skip
        samples = interleave(
            {name: functools.partial(served_sample, server, name) for name in SERVED},
            repetitions,
        )
        figures = [Figure(LABELS[name], tuple(samples[name]), "req/s") for name in SERVED]
        report(
            f"{title}, wrk -t1 -c16, hello world, requests/s (median of {repetitions})",
            figures,
            baseline="anysgi asyncio",
        )


# --- 3. memory for 1 GiB up and down -----------------------------------------------------


def _vm(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {key} for {pid}")


def _transfer(port: int, size: int) -> None:
    def chunks() -> Iterator[bytes]:
        piece = os.urandom(MiB)
        for _ in range(size // MiB):
            yield bytes(piece)

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        # With a Content-Length: a2wsgi reads a chunked body (no CONTENT_LENGTH) as empty.
        conn.request("POST", "/upload", body=chunks(), headers={"Content-Length": str(size)})
        response = conn.getresponse()
        assert response.read() == str(size).encode(), "upload size mismatch"
        conn.request("GET", f"/download?size={size}")
        response = conn.getresponse()
        received = 0
        while data := response.read(MiB):
            received += len(data)
        assert received == size, "download size mismatch"
    finally:
        conn.close()


def memory_sample(name: str, size: int) -> tuple[float, float, float]:
    """(idle RSS, peak growth, seconds) of a gunicorn sync worker moving *size* up and down."""
    with serving("sync", name, cpu=None) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/pid")
        pid = int(conn.getresponse().read())
        conn.close()
        _transfer(port, 4 * MiB)  # warm every path up
        idle = _vm(pid, "VmRSS")  # the worker at rest, every code path loaded
        start = time.perf_counter()
        _transfer(port, size)
        elapsed = time.perf_counter() - start
        growth = _vm(pid, "VmHWM") - idle  # the highest it ever went, above that
        return idle / 1024, growth / 1024, elapsed


def bench_memory() -> None:
    size = 64 * MiB if QUICK else 1024 * MiB
    print(f"\nPeak RSS of a gunicorn sync worker, {size // MiB} MiB up then down")
    for name in ("anysgi_asyncio", "anysgi_trio", "a2wsgi"):
        idle, growth, elapsed = memory_sample(name, size)
        rate = 2 * size / MiB / elapsed
        print(
            f"  {LABELS[name]:<16} idle {idle:6.1f} MiB   peak above idle {growth:7.1f} MiB"
            f"   ({rate:.0f} MiB/s)",
            flush=True,
        )


def main() -> None:
    bench_inprocess()
    bench_served()
    bench_memory()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "inprocess":
        cpu_arg = sys.argv[4]
        wall, cpu_time = run_inprocess(
            sys.argv[2], int(sys.argv[3]), None if cpu_arg == "none" else int(cpu_arg)
        )
        print(wall, cpu_time)
    else:
        main()
