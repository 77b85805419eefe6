"""``anysgi serve`` as a user runs it: real processes, real sockets, real signals."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import psutil
import pytest

from anysgi import __version__
from anysgi.cli import main

from ._servers import free_port, run_server, stop_process_group, wait_for_tcp, wait_for_unix
from .fastcgi import sync_client
from .fastcgi._helpers import params

APPS = """
import os
from pathlib import Path

import anyio


async def _lifespan(receive, send):
    while True:
        message = await receive()
        await send({"type": message["type"] + ".complete"})
        if message["type"] == "lifespan.shutdown":
            return


async def hello(scope, receive, send):
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    body = f"hello from {os.getpid()} at {scope['path']} root={scope['root_path']!r}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def slow(scope, receive, send):
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    Path(os.environ["STARTED_DIR"], scope["path"].strip("/")).touch()
    await anyio.sleep(1.0)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"finished " + scope["path"].encode()})


async def broken(scope, receive, send):
    await receive()
    await send({"type": "lifespan.startup.failed", "message": "no database"})


def create_app():
    return hello


def slow_start():
    # A factory: each pre-fork worker calls it after the fork, before its event loop.
    Path(os.environ["STARTED_DIR"], f"loading-{os.getpid()}").touch()
    import time

    time.sleep(1.0)
    return hello


def _wsgi(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"wsgi {environ['PATH_INFO']} from {os.getpid()}".encode()]


from wsgiref.validate import validator

wsgi = validator(_wsgi)
"""


@pytest.fixture
def apps(tmp_path: Path) -> Path:
    (tmp_path / "cliapps.py").write_text(APPS)
    return tmp_path


def anysgi(*args: str) -> list[str]:
    return [sys.executable, "-m", "anysgi", "serve", *args]


def run_cli(apps: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        anysgi(*args), cwd=apps, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"anysgi {__version__}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nosuchmodule:app"], "cannot import 'nosuchmodule': no module named 'nosuchmodule'"),
        (["cliapps:missing"], "module 'cliapps' has no attribute 'missing'"),
        (["cliapps:hello", "--bind", "nonsense"], "bind 'nonsense': expected host:port"),
        (["cliapps:hello", "--bind", "unix:/proc/nope/x.sock"], "cannot listen on unix:/proc"),
    ],
)
def test_bad_app_path_or_bind_is_one_clear_line(apps: Path, args: list[str], message: str) -> None:
    result = run_cli(apps, *args)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert lines == [f"anysgi serve: error: {message}"] or message in lines[0], result.stderr


def test_startup_failed_exits_3_with_the_message(apps: Path) -> None:
    port = free_port()
    result = run_cli(apps, "cliapps:broken", "--bind", f"127.0.0.1:{port}")
    assert result.returncode == 3
    assert "application startup failed: no database" in result.stderr


@pytest.fixture
def port() -> int:
    return free_port()


def test_serve_tcp_with_trio_and_root_path(apps: Path, tmp_path: Path, port: int) -> None:
    argv = anysgi(
        "cliapps:hello", "--bind", f"127.0.0.1:{port}", "--backend", "trio", "--root-path", ""
    )
    with run_server(argv, name="anysgi", log_dir=tmp_path, cwd=apps, ready=("127.0.0.1", port)):
        fcgid = params("GET", "/x", SCRIPT_NAME="/index.fcgi", PATH_INFO="/x")
        response = sync_client.request(f"127.0.0.1:{port}", fcgid)
    assert response.status == 200
    assert response.body.endswith(b"at /x root=''")


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_wsgi_app_with_interface_and_max_threads(
    apps: Path, tmp_path: Path, port: int, backend: str
) -> None:
    argv = anysgi(
        "cliapps:wsgi", "--interface", "wsgi", "--max-threads", "4",
        "--bind", f"127.0.0.1:{port}", "--backend", backend,
    )  # fmt: skip
    with run_server(argv, name="anysgi", log_dir=tmp_path, cwd=apps, ready=("127.0.0.1", port)):
        response = sync_client.request(f"127.0.0.1:{port}", params("GET", "/w"))
    assert response.status == 200
    assert response.body.startswith(b"wsgi /w from ")


def test_auto_interface_refuses_to_guess_with_one_line(apps: Path, port: int) -> None:
    result = run_cli(apps, "cliapps:wsgi", "--bind", f"127.0.0.1:{port}")
    assert result.returncode == 3
    assert "pass --interface asgi or --interface wsgi" in result.stderr


def test_factory_unix_socket_mode_and_access_log(apps: Path, tmp_path: Path) -> None:
    path = tmp_path / "s" / "app.sock"
    path.parent.mkdir()
    argv = anysgi(
        "cliapps:create_app",
        "--factory",
        "--bind",
        f"unix:{path}",
        "--unix-socket-mode",
        "666",
        "--access-log",
        "--uvloop",
    )
    with run_server(argv, name="anysgi", log_dir=tmp_path, cwd=apps, ready=path) as server:
        assert oct(path.stat().st_mode & 0o777) == oct(0o666)
        response = sync_client.request(f"unix:{path}", params("GET", "/logged?q=1"))
        assert response.status == 200
        deadline = time.monotonic() + 5
        while '"GET /logged?q=1" 200' not in server.logs() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert '"GET /logged?q=1" 200' in server.logs()


@pytest.mark.parametrize(
    ("backend", "workers", "how"),
    [
        ("asyncio", 1, "SIGTERM"),
        ("trio", 1, "SIGTERM"),
        ("asyncio", 2, "SIGTERM"),
        # Ctrl-C in a terminal: SIGINT to the whole foreground process group.
        ("trio", 2, "SIGINT to the group"),
    ],
)
def test_stop_signal_finishes_requests_in_flight_and_exits_0(
    apps: Path, tmp_path: Path, port: int, backend: str, workers: int, how: str
) -> None:
    started = tmp_path / "started"
    started.mkdir()
    argv = anysgi(
        "cliapps:slow", "--bind", f"127.0.0.1:{port}", "--backend", backend,
        "--workers", str(workers),
    )  # fmt: skip
    with _server(argv, apps, started) as proc:
        wait_for_tcp("127.0.0.1", port, proc=cast(Any, proc))
        results: dict[str, bytes] = {}

        def one(name: str) -> None:
            results[name] = sync_client.request(f"127.0.0.1:{port}", params("GET", f"/{name}")).body

        threads = [threading.Thread(target=one, args=(f"r{i}",)) for i in range(5)]
        for thread in threads:
            thread.start()
        _wait_for_files(started, 5, "all five requests are in flight")
        if how == "SIGTERM":
            proc.send_signal(signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGINT)
        for thread in threads:
            thread.join(10)
        stderr = _stopped(proc)
    assert results == {f"r{i}": f"finished /r{i}".encode() for i in range(5)}, stderr
    assert "stopping gracefully" in stderr
    assert "stopping now" not in stderr


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_workers_told_to_stop_while_starting_stop_with_sigint_inherited_ignored(
    apps: Path, tmp_path: Path, port: int, backend: str
) -> None:
    # `anysgi serve ... &` in a shell script starts it with SIGINT ignored. The
    # server stops on SIGINT all the same; a worker that gets it while it still starts
    # must not lose it (trio's start-up re-sets SIGINT's handler, which discards a pending
    # ignored signal).
    started = tmp_path / "started"
    started.mkdir()
    serve = anysgi(
        "cliapps:slow_start", "--factory", "--bind", f"127.0.0.1:{port}",
        "--backend", backend, "--workers", "2",
    )  # fmt: skip
    ignoring_sigint = [
        sys.executable,
        "-c",
        (
            "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
            "os.execv(sys.argv[1], sys.argv[1:])"
        ),
        *serve,
    ]
    with _server(ignoring_sigint, apps, started) as proc:
        _wait_for_files(started, 2, "both workers are in the factory")
        os.killpg(proc.pid, signal.SIGINT)
        stderr = _stopped(proc)
    assert stderr.count("SIGINT: stopping gracefully") == 2, stderr
    assert "stopping now" not in stderr


@contextlib.contextmanager
def _server(argv: list[str], apps: Path, started: Path) -> Iterator[subprocess.Popen[str]]:
    """``anysgi serve`` in a session of its own (Ctrl-C signals its process group); killed
    if it is still running at the end."""
    proc = subprocess.Popen(
        argv,
        cwd=apps,
        env={**os.environ, "STARTED_DIR": str(started)},
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        stop_process_group(proc, signal.SIGKILL)


def _wait_for_files(directory: Path, count: int, what: str) -> None:
    deadline = time.monotonic() + 10
    while len(list(directory.iterdir())) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(list(directory.iterdir())) == count, what


def _stopped(proc: subprocess.Popen[str]) -> str:
    """Wait (10 s at most) for a server told to stop to exit 0; return its stderr."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)
    hung = ""
    if proc.poll() is None:
        hung = _process_tree(proc.pid)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    stderr = _stderr(proc)
    assert not hung, f"still running 10 s after the signal:\n{hung}\n{stderr}"
    assert proc.returncode == 0, stderr
    return stderr


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_listening_socket_on_fd_0_as_mod_fcgid_spawns_it(apps: Path, backend: str) -> None:
    listener = socket.socket(socket.AF_UNIX)
    path = apps / "fcgid.sock"
    listener.bind(str(path))
    listener.listen()
    argv = anysgi("cliapps:hello", "--backend", backend)
    proc = subprocess.Popen(argv, cwd=apps, stdin=listener.fileno())
    listener.close()
    try:
        response = sync_client.request(f"unix:{path}", params("GET", "/spawned"))
        assert response.status == 200
        assert response.body.startswith(f"hello from {proc.pid} at /spawned".encode())
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


def test_web_server_addrs_from_the_environment(apps: Path, tmp_path: Path, port: int) -> None:
    argv = anysgi("cliapps:hello", "--bind", f"127.0.0.1:{port}")
    env = {"FCGI_WEB_SERVER_ADDRS": "10.9.8.7"}
    with run_server(argv, name="anysgi", log_dir=tmp_path, cwd=apps, env=env, ready=None) as srv:
        wait_for_tcp("127.0.0.1", port, proc=srv.proc)
        try:
            response = sync_client.request(f"127.0.0.1:{port}", params())
        except ConnectionResetError:
            pass  # closed before our request was read
        else:
            assert response.end is None
            assert response.status == 0
        deadline = time.monotonic() + 5
        while "FCGI_WEB_SERVER_ADDRS" not in srv.logs() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "refusing the connection from 127.0.0.1:" in srv.logs()


def _stderr(proc: subprocess.Popen[str]) -> str:
    assert proc.stderr is not None
    with proc.stderr:
        return proc.stderr.read()


def _process_tree(pid: int) -> str:
    """What a server that does not stop is doing: each process, its state, its signals."""
    lines = []
    for process in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            lines.append(
                f"{process.pid} {process.status()} threads={process.num_threads()} "
                f"{' '.join(process.cmdline()[-6:])}"
            )
            # Signals pending, blocked, ignored and caught: where a stop signal went.
            status = Path(f"/proc/{process.pid}/status").read_text().splitlines()
            lines.append("  " + " ".join(x for x in status if x.startswith(("Sig", "Shd"))))
    return "\n".join(lines)


def _worker_pids(master: int) -> set[int]:
    return {child.pid for child in psutil.Process(master).children()}


def test_workers_share_the_socket_and_are_restarted(apps: Path, tmp_path: Path, port: int) -> None:
    argv = anysgi("cliapps:hello", "--bind", f"127.0.0.1:{port}", "--workers", "2")
    proc = subprocess.Popen(argv, cwd=apps, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_tcp("127.0.0.1", port, proc=cast(Any, proc))
        deadline = time.monotonic() + 10
        while len(_worker_pids(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        before = _worker_pids(proc.pid)
        assert len(before) == 2
        served = {int(sync_client.request(f"127.0.0.1:{port}").body.split()[2]) for _ in range(40)}
        assert served <= before
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while (
            len(_worker_pids(proc.pid) - {victim}) < 2 or victim in _worker_pids(proc.pid)
        ) and time.monotonic() < deadline:
            time.sleep(0.02)
        after = _worker_pids(proc.pid)
        assert len(after) == 2
        assert victim not in after
        for _ in range(10):
            assert sync_client.request(f"127.0.0.1:{port}").status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert not any(psutil.pid_exists(pid) for pid in after)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stderr = _stderr(proc)
    assert "died (killed by SIGKILL): starting another" in stderr


def test_workers_give_up_when_the_app_cannot_start(apps: Path, port: int) -> None:
    result = run_cli(apps, "cliapps:broken", "--bind", f"127.0.0.1:{port}", "--workers", "2")
    assert result.returncode == 3
    assert "no database" in result.stderr


def test_emfile_backs_off_instead_of_spinning(apps: Path, tmp_path: Path, port: int) -> None:
    limit = 40

    def low_fd_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    argv = anysgi("cliapps:hello", "--bind", f"127.0.0.1:{port}", "--max-connections", "500")
    log_path = tmp_path / "emfile.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(argv, cwd=apps, stderr=log, text=True, preexec_fn=low_fd_limit)
    held: list[socket.socket] = []
    try:
        wait_for_tcp("127.0.0.1", port, proc=cast(Any, proc))
        held.extend(socket.create_connection(("127.0.0.1", port)) for _ in range(limit + 10))
        deadline = time.monotonic() + 10
        while "Too many open files" not in log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.02)  # the server's log is in another process: poll it
        server = psutil.Process(proc.pid)
        cpu_before = sum(server.cpu_times()[:2])
        time.sleep(1.0)
        cpu_spent = sum(server.cpu_times()[:2]) - cpu_before
        assert cpu_spent < 0.5, f"the accept loop spun: {cpu_spent:.2f}s of CPU in 1s"
        for sock in held:
            sock.close()
        held.clear()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if sync_client.request(f"127.0.0.1:{port}", timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("the server did not recover from EMFILE")
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    finally:
        for sock in held:
            sock.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "accept() failed: Too many open files; retrying" in log_path.read_text()


def test_every_option_is_a_cli_flag_and_documented() -> None:
    import argparse
    import dataclasses
    import inspect

    from anysgi import _cli_serve
    from anysgi.fastcgi import run, serve
    from anysgi.fastcgi._config import ServerConfig

    parser = argparse.ArgumentParser()
    _cli_serve.add_parser(parser.add_subparsers())
    serve_parser = parser._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr,index]
    flags = {flag for action in serve_parser._actions for flag in action.option_strings}
    reference = (Path(__file__).parents[1] / "docs" / "reference" / "cli.rst").read_text()
    for flag in flags - {"-h", "--help", "-b", "-w"}:
        assert f"``{flag}" in reference, f"{flag} is not in docs/reference/cli.rst"
    for field in dataclasses.fields(ServerConfig):
        if field.name in ("binds", "web_server_addrs", "root_path", "access_log", "lifespan"):
            continue
        assert "--" + field.name.replace("_", "-") in flags, field.name
        assert field.name in inspect.signature(serve).parameters, field.name
        assert field.name in inspect.signature(run).parameters, field.name


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_fastcgi_run_blocks_until_sigterm(apps: Path, tmp_path: Path, backend: str) -> None:
    """The documented example: fastcgi.run(app, bind="unix:...", backend=...)."""
    sock = tmp_path / "run.sock"
    code = (
        "from anysgi import fastcgi\n"
        "import cliapps\n"
        f"fastcgi.run(cliapps.hello, bind='unix:{sock}', backend='{backend}')\n"
        "print('returned')\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=apps, stdout=subprocess.PIPE, text=True
    )
    try:
        wait_for_unix(sock, proc=cast(Any, proc))
        assert sync_client.request(f"unix:{sock}").status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        with proc.stdout:
            out = proc.stdout.read()
    assert out == "returned\n"
    assert not sock.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-params-size", "lots"], "invalid size 'lots'"),
        (["--idle-timeout", "-1"], "must be positive"),
        (["--unix-socket-mode", "rw"], "invalid file mode"),
        (["--workers", "0"], "expected a positive integer"),
        (["--uvloop", "--backend", "trio"], "--uvloop needs --backend asyncio"),
    ],
)
def test_bad_option_values(apps: Path, args: list[str], message: str) -> None:
    result = run_cli(apps, "cliapps:hello", *args)
    assert result.returncode in (1, 2)
    assert message in result.stderr


def test_sizes_and_durations_parse() -> None:
    from anysgi import _cli_serve

    assert _cli_serve._size("64k") == 65536
    assert _cli_serve._size("1M") == 1024**2
    assert _cli_serve._size("2gib") == 2 * 1024**3
    assert _cli_serve._optional_size("none") is None
    assert _cli_serve._seconds("none") is None
    assert _cli_serve._seconds("2.5") == 2.5
    assert _cli_serve._mode("660") == 0o660
