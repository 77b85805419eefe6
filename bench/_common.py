"""Shared benchmark helpers: repetitions, medians, ratios, a load generator, CPU pinning,
loopback ports for the servers a benchmark starts, and the settings every benchmark reads.

Environment, the same for every benchmark:

* ``BENCH_QUICK=1``: a short smoke run (fewer rounds, shorter samples, smaller transfers),
  to check that a benchmark runs; its figures are not worth quoting;
* ``BENCH_ROUNDS``: how many interleaved rounds (repetitions) per figure;
* ``BENCH_SECONDS``: how long each wrk run lasts.

Benchmarks on two cores are noisy (about 10% run to run), so every figure is the median of
several interleaved repetitions, and peers are always measured in the same run and reported
as ratios against each other, never as absolute thresholds.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

QUICK = os.environ.get("BENCH_QUICK") == "1"


def rounds(default: int) -> int:
    """Rounds per figure: ``BENCH_ROUNDS``, else *default* (at most 2 with ``BENCH_QUICK``)."""
    return int(os.environ.get("BENCH_ROUNDS", min(default, 2) if QUICK else default))


def wrk_seconds(default: int = 5) -> int:
    """Seconds per wrk run: ``BENCH_SECONDS``, else *default* (2 with ``BENCH_QUICK``).

    Whole seconds: wrk's ``-d`` takes an integer with a unit."""
    return int(os.environ.get("BENCH_SECONDS", 2 if QUICK else default))


@dataclass(frozen=True)
class Figure:
    """One measured figure: the median of its samples; higher is better unless *lower_is_better*."""

    name: str
    samples: tuple[float, ...]
    unit: str
    lower_is_better: bool = False

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def interleave(
    candidates: dict[str, Callable[[], float]], repetitions: int
) -> dict[str, list[float]]:
    """Run every candidate once per round, *repetitions* rounds, so drift hits all alike."""
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repetitions):
        for name, fn in candidates.items():
            samples[name].append(fn())
    return samples


def report(title: str, figures: Sequence[Figure], *, baseline: str | None = None) -> None:
    """Print a table of medians, with each figure's ratio to *baseline* (anysgi / peer)."""
    print(f"\n{title}")
    base = next((f for f in figures if f.name == baseline), None)
    width = max(len(f.name) for f in figures)
    for fig in figures:
        spread = f"[{min(fig.samples):.4g} .. {max(fig.samples):.4g}]"
        line = f"  {fig.name:<{width}}  {fig.median:>12.4g} {fig.unit:<8} {spread}"
        if base is not None and fig is not base:
            line += f"   {base.name}/{fig.name} = {base.median / fig.median:.2f}x"
        print(line, flush=True)


def pinned(argv: Sequence[str], cpu: int | None) -> list[str]:
    """Prefix *argv* with ``taskset -c CPU`` where taskset exists and there are 2+ CPUs."""
    if cpu is None or shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        return list(argv)
    return ["taskset", "-c", str(cpu), *argv]


def free_port() -> int:
    """A TCP port nobody listens on now, on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Return once something accepts connections on 127.0.0.1:*port*.

    Raises if *proc* (the server that should be listening) exits first, or after *timeout*.
    """
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {port}") from None
            time.sleep(0.05)


_WRK_RPS = re.compile(r"Requests/sec:\s+([0-9.]+)")


def wrk(
    url: str, *, seconds: float = 5, connections: int = 16, threads: int = 1, cpu: int | None = 1
) -> float:
    """Requests per second from Debian's ``wrk`` against *url*; errors fail the run."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    argv = pinned(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", url], cpu)
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    if "Non-2xx or 3xx responses" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors against {url}:\n{out}")
    match = _WRK_RPS.search(out)
    if match is None:
        raise RuntimeError(f"cannot parse wrk output:\n{out}")
    return float(match.group(1))
