"""Start real third-party servers (nginx, Apache, gunicorn, ...) on loopback for tests.

A test that needs a server binary calls :func:`require_binary`. Locally a missing
binary skips the test with the command that installs it; in CI (``ANYSGI_REQUIRE_SERVERS=1``,
set by ``.ci/run``) it is a failure, so a missing server can never hide a missing feature.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REQUIRE_SERVERS = os.environ.get("ANYSGI_REQUIRE_SERVERS") == "1"


def require_binary(name: str, *, apt: str | None = None) -> str:
    """Return the path of *name*, or skip (locally) / fail (CI) when it is not installed."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/local/sbin")
    if path is None:
        hint = f"apt-get install {apt}" if apt else f"install {name}"
        message = f"{name} is not installed ({hint})"
        if REQUIRE_SERVERS:
            pytest.fail(message + " but ANYSGI_REQUIRE_SERVERS=1")
        pytest.skip(message)
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_tcp(
    host: str, port: int, *, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Wait until *host:port* accepts a connection (or *proc* has died, or *timeout*)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s") from None
            time.sleep(0.05)


def wait_for_unix(
    path: str | os.PathLike[str],
    *,
    timeout: float = 20.0,
    proc: subprocess.Popen[bytes] | None = None,
) -> None:
    """Wait until the Unix socket at *path* accepts a connection."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {path}")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.connect(os.fspath(path))
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {path} after {timeout}s") from None
            time.sleep(0.05)


def peak_rss_kib(pid: int) -> int:
    """Peak resident set size (VmHWM) of a live process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for pid {pid}")


def current_rss_kib(pid: int) -> int:
    """Current resident set size (VmRSS) of a live process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


@dataclass
class ServerProcess:
    """A server started by a test; its output goes to *log_path* for failure reports."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    name: str
    extra_logs: list[Path] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def logs(self) -> str:
        parts = []
        for path in [self.log_path, *self.extra_logs]:
            with contextlib.suppress(OSError):
                parts.append(f"--- {path} ---\n" + path.read_text(errors="replace")[-20000:])
        return "\n".join(parts)


@contextlib.contextmanager
def run_server(
    argv: Sequence[str],
    *,
    name: str,
    log_dir: Path,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    ready: tuple[str, int] | str | os.PathLike[str] | None = None,
    stop_signal: int = signal.SIGTERM,
    extra_logs: Sequence[Path] = (),
    timeout: float = 30.0,
) -> Iterator[ServerProcess]:
    """Run *argv* in its own process group until the block ends, then stop it.

    *ready* is ``(host, port)`` or a Unix socket path to wait for. On exit the
    whole process group gets *stop_signal*, then SIGKILL after 10 seconds, so no
    worker outlives the test. If the block raises, the server's logs are appended
    to the error report.
    """
    log_path = log_dir / f"{name}.log"
    full_env = {**os.environ, **(env or {})}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
        )
    server = ServerProcess(proc, log_path, name, list(extra_logs))
    try:
        try:
            if isinstance(ready, tuple):
                wait_for_tcp(ready[0], ready[1], timeout=timeout, proc=proc)
            elif ready is not None:
                wait_for_unix(ready, timeout=timeout, proc=proc)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{name} did not start: {exc}\n{server.logs()}") from exc
        try:
            yield server
        except BaseException:
            sys.stderr.write(f"\n{name} logs:\n{server.logs()}\n")
            raise
    finally:
        stop_process_group(proc, stop_signal)


def stop_process_group(
    proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 10.0
) -> None:
    """Signal the process group of *proc*; SIGKILL it if it has not exited in *timeout*."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    else:
        # The leader is gone; make sure no worker of its group lingers.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
