"""Pre-fork workers for ``anysgi serve --workers N``.

The master binds every socket once, then forks N workers that inherit them and each run
their own event loop and lifespan, accepting from the shared sockets (the kernel spreads
connections among the processes waiting in accept). The master only supervises:

* a worker that dies is replaced (no faster than once a second per slot, so a crash loop
  does not spin);
* a worker that exits with :data:`EXIT_STARTUP_FAILED` (its application could not load, or
  lifespan startup failed) stops the whole server with that status, rather than be
  restarted for ever;
* SIGTERM or SIGINT is passed on to every worker, which stops gracefully; the master waits
  for them and exits 0. A second signal is passed on too (the workers then stop at once).

The master never starts an event loop and imports the application module before forking
(so a bad path fails once, up front, and workers share its memory); a ``--factory`` is
called in each worker, after the fork.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Final

from ._binds import OpenSocket
from ._config import ServerConfig

__all__ = ("EXIT_STARTUP_FAILED", "run_workers")

logger = logging.getLogger("anysgi.fastcgi")

#: A worker's exit status when its application failed to start; the master gives up.
EXIT_STARTUP_FAILED: Final = 3
_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD)
_RESTART_INTERVAL: Final = 1.0


def run_workers(
    count: int,
    sockets: list[OpenSocket],
    config: ServerConfig,
    worker_main: Callable[[ServerConfig], int],
) -> int:
    """Fork *count* workers running ``worker_main(config)`` and supervise them.

    :param sockets: the listening sockets, already open; the workers get them as
        ``fd://N`` binds.
    :param worker_main: runs one worker (in the child); returns its exit status.
    :return: the master's exit status.
    """
    worker_config = dataclasses.replace(
        config, binds=tuple(f"fd://{s.sock.fileno()}" for s in sockets)
    )
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    workers: dict[int, int] = {}  # pid -> slot
    started: dict[int, float] = {}  # slot -> start time
    stopping = False
    status = 0

    def spawn(slot: int) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                # Its own process group: Ctrl-C in a terminal signals the master only, which
                # passes one SIGINT on; in the master's group each worker would get two (one
                # from the terminal, one forwarded), and a second signal means "stop now".
                os.setpgid(0, 0)
                _die_with_parent()
                # SIGTERM and SIGINT stay blocked until the worker's signal receiver is
                # installed (serve_until_signalled unblocks them): one that comes while the
                # worker starts is then delivered to it, not lost or turned into a traceback.
                signal.pthread_sigmask(
                    signal.SIG_SETMASK, old_mask | {signal.SIGTERM, signal.SIGINT}
                )
                code = worker_main(worker_config)
            except BaseException:
                logger.exception("worker %d failed", os.getpid())
            finally:
                logging.shutdown()
                os._exit(code)
        workers[pid] = slot
        started[slot] = time.monotonic()
        logger.info("worker %d started (slot %d)", pid, slot)

    def signal_all(signum: int) -> None:
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):  # exited already; reaped below
                os.kill(pid, signum)

    try:
        for slot in range(count):
            spawn(slot)
        pending_restarts: dict[int, float] = {}
        while workers or (pending_restarts and not stopping):
            timeout = 1.0
            if pending_restarts and not stopping:
                now = time.monotonic()
                for slot, when in list(pending_restarts.items()):
                    if when <= now:
                        del pending_restarts[slot]
                        spawn(slot)
                if pending_restarts:
                    timeout = max(0.01, min(pending_restarts.values()) - time.monotonic())
            info = signal.sigtimedwait(_SIGNALS, timeout)
            if info is not None and info.si_signo in (signal.SIGTERM, signal.SIGINT):
                name = signal.Signals(info.si_signo).name
                if not stopping:
                    logger.info("%s: stopping %d worker(s) gracefully", name, len(workers))
                    stopping = True
                signal_all(info.si_signo)
            while True:
                try:
                    pid, wait_status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                slot_or_none = workers.pop(pid, None)
                if slot_or_none is None:
                    continue
                slot = slot_or_none
                code = os.waitstatus_to_exitcode(wait_status)
                if stopping:
                    logger.info("worker %d stopped (%s)", pid, _describe(code))
                    if code not in (0, -signal.SIGTERM, -signal.SIGINT) and status == 0:
                        status = code if code > 0 else 1
                    continue
                if code == EXIT_STARTUP_FAILED:
                    logger.error("worker %d could not start its application: stopping", pid)
                    status = EXIT_STARTUP_FAILED
                    stopping = True
                    signal_all(signal.SIGTERM)
                    continue
                logger.warning("worker %d died (%s): starting another", pid, _describe(code))
                lived = time.monotonic() - started.get(slot, 0.0)
                pending_restarts[slot] = time.monotonic() + max(0.0, _RESTART_INTERVAL - lived)
    finally:
        if workers:
            signal_all(signal.SIGKILL)
            for pid in list(workers):
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        for opened in sockets:
            opened.close()
    return status


def _die_with_parent() -> None:
    """Linux: have the kernel send SIGTERM to this worker if the master dies (even SIGKILL)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover (not Linux)
        pass


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"
