"""The FastCGI server behind nginx, against fcgisgi, flup and uvicorn: ``python -m bench server``.

Every backend serves the same hello-world app (bench/_targets.py) on its own port, pinned to
CPU 0; one nginx worker (keepalive upstreams, ``fastcgi_keep_conn on``) and wrk share CPU 1.
uvicorn sits behind ``proxy_pass`` with a keepalive upstream: what one would use instead of
FastCGI. Two references that are not peers: ``anyio-floor-asyncio`` and ``anyio-floor-trio``
(``bench/_targets.py``), a canned answer per request with nothing but a checkpoint, ``recv``,
``anyio.wait_readable`` when the socket is empty, and ``send``: the floor of any server on
anyio; and ``anyio-thread-floor-*``, the same with the answer built in a worker thread (one
hop there and one back per request), the floor of any server on anyio that runs WSGI
applications in threads. Candidates are measured interleaved, several rounds, and reported
as medians with ratios; CPU time per request (from /proc) is reported beside requests per
second because it is far less sensitive to other load on the machine.

Then memory: a 1 GiB upload (``fastcgi_request_buffering off``) and a 1 GiB download
(``fastcgi_buffering off``) through nginx, and the backend's peak RSS above its idle RSS.

Environment: ``BENCH_QUICK``, ``BENCH_ROUNDS`` (default 3), ``BENCH_SECONDS`` (default 5);
see ``_common.py``.

Where anysgi's CPU time per small request goes (py-spy on the asyncio backend behind nginx,
November 2026): the codec and ``scope_from_params`` are pure Python (about 17 us together);
the rest is the event loop, one ``send()`` system call, and the handler. Two things took
most of the rest before they were removed: starting an anyio task per request (about 20 us;
the application now runs in the reading task until it first waits) and waiting for
readability before each request (on asyncio a selector registration and removal, about
16 us; the server now checkpoints and reads, and waits only when nothing is there). fcgisgi
answers from asyncio protocol callbacks, with ``asyncio.create_task`` per request and no
per-read registration, and writes each response in four system calls.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from ._common import Figure, free_port, interleave, pinned, report, wait_port, wrk_seconds
from ._common import rounds as bench_rounds

_WRK_RPS = re.compile(r"Requests/sec:\s+([0-9.]+)")
_WRK_ERRORS = re.compile(r"(Socket errors:.*|Non-2xx or 3xx responses:.*)")


def wrk(url: str, *, seconds: int, errors: list[str] | None = None) -> float:
    """Requests per second from wrk (pinned to CPU 1). Errors fail the run unless *errors*
    is given, which collects them instead (for peers that time out under load)."""
    argv = pinned(["wrk", "-t1", "-c16", f"-d{seconds}s", url], 1)
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    problems = _WRK_ERRORS.findall(out)
    if problems:
        if errors is None:
            raise RuntimeError(f"wrk saw errors against {url}:\n{out}")
        errors.extend(problems)
    match = _WRK_RPS.search(out)
    if match is None:
        raise RuntimeError(f"cannot parse wrk output:\n{out}")
    return float(match.group(1))


ROOT = Path(__file__).resolve().parents[1]
GiB = 1024**3


@contextlib.contextmanager
def _process(
    argv: list[str], log: Path, port: int | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
        )
    try:
        if port is not None:
            wait_port(port, proc)
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {key} for {pid}")


def _nginx_config(run_dir: Path, port: int, upstreams: dict[str, int], uvicorn: int | None) -> str:
    for name in ("body", "fastcgi", "proxy", "uwsgi", "scgi"):
        (run_dir / name).mkdir(exist_ok=True)
    blocks = []
    locations = []
    for name, backend in upstreams.items():
        blocks.append(f"upstream {name} {{ server 127.0.0.1:{backend}; keepalive 64; }}")
        locations.append(
            f"location /{name}/ {{ include /etc/nginx/fastcgi_params; fastcgi_pass {name}; "
            f"fastcgi_keep_conn on; fastcgi_buffering off; fastcgi_request_buffering off; }}"
        )
    if uvicorn is not None:
        blocks.append(f"upstream uvicorn {{ server 127.0.0.1:{uvicorn}; keepalive 64; }}")
        locations.append(
            "location /uvicorn/ { proxy_pass http://uvicorn; proxy_http_version 1.1; "
            'proxy_set_header Connection ""; }'
        )
    nl = "\n    "
    return f"""
user root;
worker_processes 1;
pid {run_dir}/nginx.pid;
error_log {run_dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_max_body_size 0;
    client_body_temp_path {run_dir}/body;
    fastcgi_temp_path {run_dir}/fastcgi;
    proxy_temp_path {run_dir}/proxy;
    uwsgi_temp_path {run_dir}/uwsgi;
    scgi_temp_path {run_dir}/scgi;
    {nl.join(blocks)}
    server {{
        listen 127.0.0.1:{port};
        {nl.join(locations)}
    }}
}}
"""


def _check(url: str, expected: bytes = b"Hello, world!") -> None:
    import httpx

    response = httpx.get(url, timeout=10)
    if response.status_code != 200 or response.content != expected:
        raise RuntimeError(f"{url} answered {response.status_code} {response.content[:200]!r}")


def _throughput(run_dir: Path, seconds: int, rounds: int) -> None:
    targets = [
        "anysgi-asgi-asyncio",
        "anysgi-asgi-trio",
        "anysgi-asgi-uvloop",
        "fcgisgi-asgi",
        "fcgisgi-asgi-uvloop",
    ]
    targets += ["anysgi-wsgi-asyncio", "anysgi-wsgi-trio", "fcgisgi-wsgi", "flup"]
    # References, not peers: the least any server on anyio can do (bench/_targets.py), and
    # the least one that builds its answers in a worker thread, as a WSGI app needs, can do.
    targets += ["anyio-floor-asyncio", "anyio-floor-trio"]
    targets += ["anyio-thread-floor-asyncio", "anyio-thread-floor-trio"]
    have_flup = importlib.util.find_spec("flup") is not None
    if not have_flup:
        targets.remove("flup")
    ports = {name: free_port() for name in [*targets, "uvicorn"]}
    http_port = free_port()
    python = sys.executable
    with contextlib.ExitStack() as stack:
        procs = {}
        for name in [*targets, "uvicorn"]:
            argv = pinned([python, "-m", "bench._targets", name, f"127.0.0.1:{ports[name]}"], 0)
            procs[name] = stack.enter_context(_process(argv, run_dir / f"{name}.log", ports[name]))
        config = run_dir / "nginx.conf"
        upstreams = {name.replace("-", "_"): ports[name] for name in targets}
        config.write_text(_nginx_config(run_dir, http_port, upstreams, ports["uvicorn"]))
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        stack.enter_context(
            _process(
                pinned([nginx, "-c", str(config), "-g", "daemon off;"], 1),
                run_dir / "nginx.log",
                http_port,
            )
        )
        urls = {
            name: f"http://127.0.0.1:{http_port}/{name.replace('-', '_')}/hello" for name in targets
        }
        urls["uvicorn"] = f"http://127.0.0.1:{http_port}/uvicorn/hello"
        for url in urls.values():
            _check(url)
        for url in urls.values():  # warm up: imports, connection pools
            wrk(url, seconds=1, errors=[])
        cpu: dict[str, list[float]] = {name: [] for name in urls}
        peer_errors: dict[str, list[str]] = {name: [] for name in urls}

        def measure(name: str) -> float:
            pid = procs[name].pid
            before = _cpu_seconds(pid)
            started = time.monotonic()
            # anysgi must serve every request; a peer's timeouts are reported, not fatal.
            errors = None if name.startswith("anysgi") else peer_errors[name]
            rps = wrk(urls[name], seconds=seconds, errors=errors)
            elapsed = time.monotonic() - started
            cpu[name].append((_cpu_seconds(pid) - before) / (rps * elapsed) * 1e6)
            return rps

        samples = interleave({name: functools.partial(measure, name) for name in urls}, rounds)
    figures = [Figure(name, tuple(values), "req/s") for name, values in samples.items()]
    for name, problems in peer_errors.items():
        if problems:
            print(f"  note: {name}: {'; '.join(sorted(set(problems)))}")
    report(
        f"hello world behind nginx (keepalive upstreams), wrk -c16, {seconds:g}s x {rounds}",
        figures,
        baseline="anysgi-asgi-asyncio",
    )
    wsgi_figures = [
        f for f in figures if "-wsgi" in f.name or f.name == "flup" or "thread-floor" in f.name
    ]
    report("WSGI apps", wsgi_figures, baseline="anysgi-wsgi-asyncio")
    report(
        "server CPU time per request (lower is better: a ratio above 1 means anysgi costs more)",
        [
            Figure(name, tuple(values), "us/req", lower_is_better=True)
            for name, values in cpu.items()
        ],
        baseline="anysgi-asgi-asyncio",
    )


def _memory(run_dir: Path) -> None:
    import httpx

    port = free_port()
    http_port = free_port()
    argv = pinned(
        [sys.executable, "-m", "bench._targets", "anysgi-asgi-asyncio", f"127.0.0.1:{port}"], 0
    )
    with contextlib.ExitStack() as stack:
        backend = stack.enter_context(_process(argv, run_dir / "mem-backend.log", port))
        config = run_dir / "nginx-mem.conf"
        config.write_text(_nginx_config(run_dir, http_port, {"anysgi": port}, None))
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        stack.enter_context(
            _process(
                pinned([nginx, "-c", str(config), "-g", "daemon off;"], 1),
                run_dir / "nginx-mem.log",
                http_port,
            )
        )
        base = f"http://127.0.0.1:{http_port}/anysgi"
        _check(f"{base}/hello")
        idle = _status_kib(backend.pid, "VmRSS")
        block = b"\xab" * (1024 * 1024)

        def body() -> Iterator[bytes]:
            for _ in range(GiB // len(block)):
                yield block

        started = time.monotonic()
        with httpx.Client(timeout=300) as client:
            response = client.post(
                f"{base}/upload", content=body(), headers={"content-length": str(GiB)}
            )
            upload_seconds = time.monotonic() - started
            if response.text != str(GiB):
                raise RuntimeError(f"upload answered {response.status_code} {response.text!r}")
            after_upload = _status_kib(backend.pid, "VmHWM")
            started = time.monotonic()
            digest = hashlib.sha256()
            received = 0
            with client.stream("GET", f"{base}/download") as download:
                for chunk in download.iter_raw():
                    received += len(chunk)
            download_seconds = time.monotonic() - started
            if received != GiB:
                raise RuntimeError(f"download gave {received} bytes, not {GiB}")
        del digest
        peak = _status_kib(backend.pid, "VmHWM")
    print("\n1 GiB through nginx (request and response buffering off), anysgi asyncio backend")
    print(f"  idle RSS                 {idle / 1024:8.1f} MiB")
    print(
        f"  peak after 1 GiB upload  {after_upload / 1024:8.1f} MiB  "
        f"(+{(after_upload - idle) / 1024:.1f} MiB, {GiB / upload_seconds / 2**20:.0f} MiB/s)"
    )
    print(
        f"  peak after 1 GiB download{peak / 1024:8.1f} MiB  "
        f"(+{(peak - idle) / 1024:.1f} MiB, {GiB / download_seconds / 2**20:.0f} MiB/s)"
    )
    verdict = "met" if peak - idle < 64 * 1024 else "NOT met"
    print(f"  bar: peak - idle < 64 MiB: {verdict}")


def main() -> None:
    seconds = wrk_seconds(5)
    rounds = bench_rounds(3)
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"{tool} is not installed (apt-get install {tool})")
    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
        run_dir = Path(tmp)
        _throughput(run_dir, seconds, rounds)
        _memory(run_dir)


if __name__ == "__main__":
    main()
