"""Worker threads for the adapters: a lean hop between an event loop and blocking code.

Standard library only, plus nothing from anyio: the event-loop side of a hop (waking the
task that waits for a thread) belongs to the caller, through anyio's public
``EventLoopToken``.

* :class:`Doorbell` wakes one thread from another: an eventfd, or a pipe.
* :class:`ThreadPool` runs jobs in at most ``max_threads`` threads of its own, started on
  demand and handed each job directly (no shared queue for idle threads to contend on).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Final, Protocol, final

__all__ = ("Doorbell", "Job", "ThreadPool")

logger: Final = logging.getLogger("anysgi.threads")


@final
class Doorbell:
    """Wakes one waiting thread from any other thread.

    An eventfd (Linux) or a pipe. Rings are counted, never lost: a ring that comes before
    the wait makes the wait return at once, and several rings may wake one wait, so a
    waiter always checks what it waits for in a loop. Ringing is a system call that
    releases the GIL, so the woken thread can run at once instead of contending for the
    GIL with the ringer, which a ``threading`` primitive would make it do; it never blocks.
    """

    __slots__ = ("_read_fd", "_write_fd", "ring", "wait")

    def __init__(self) -> None:
        if hasattr(os, "eventfd"):
            fd = os.eventfd(0, os.EFD_CLOEXEC)
            self._read_fd = self._write_fd = fd
            self.ring: Callable[[], None] = self._ring_eventfd
            self.wait: Callable[[], None] = self._wait_eventfd
        else:  # pragma: no cover - non-Linux
            self._read_fd, self._write_fd = os.pipe()
            os.set_blocking(self._write_fd, False)
            self.ring = self._ring_pipe
            self.wait = self._wait_pipe

    def _ring_eventfd(self) -> None:
        os.eventfd_write(self._write_fd, 1)

    def _wait_eventfd(self) -> None:
        os.eventfd_read(self._read_fd)

    def _ring_pipe(self) -> None:  # pragma: no cover - non-Linux
        with contextlib.suppress(BlockingIOError):  # full: plenty to wake up for
            os.write(self._write_fd, b"\0")

    def _wait_pipe(self) -> None:  # pragma: no cover - non-Linux
        os.read(self._read_fd, 512)

    def close(self, _close: Callable[[int], None] = os.close) -> None:
        # _close is bound at definition: at interpreter exit, module globals may be gone.
        if self._read_fd >= 0:
            _close(self._read_fd)
            if self._write_fd != self._read_fd:  # pragma: no cover - non-Linux
                _close(self._write_fd)
            self._read_fd = self._write_fd = -1

    # Only a doorbell nobody can ring any more is ever collected.
    __del__ = close


class Job(Protocol):
    """What :class:`ThreadPool` runs."""

    def run(self, doorbell: Doorbell) -> None:
        """Do the work, in a pool thread. *doorbell* is that thread's own: the job may
        wait on it for answers from whoever it hands it to. Must not raise."""

    def done(self) -> None:
        """Report the end of the work (called in the same thread, after :meth:`run`, once
        the thread is ready for its next job). Must not raise."""


@final
class _Worker:
    __slots__ = ("doorbell", "idle_since", "job")

    def __init__(self, job: Job) -> None:
        self.doorbell = Doorbell()
        self.job: Job | None = job
        self.idle_since = 0.0


class _Stop:
    """The job that tells an idle thread to end."""

    def run(self, doorbell: Doorbell) -> None:  # pragma: no cover - never run
        raise AssertionError

    def done(self) -> None:  # pragma: no cover - never run
        raise AssertionError


_STOP: Final = _Stop()


@final
class ThreadPool:
    """Runs jobs in at most *max_threads* threads, each job whole in one thread.

    Threads start when a job finds none idle. An idle thread waits on its own doorbell;
    :meth:`submit` hands a job to the thread that went idle last (its stack and caches are
    the warmest), or queues it when all *max_threads* are busy, which is what bounds the
    number of threads. The queue is bounded by whoever submits: each request waits for
    its own job. So the threads idle longest sit at the bottom of the stack; whenever a
    thread goes idle, the one at the bottom is ended if it has been idle for more than
    *idle_timeout* seconds (a burst of requests leaves no crowd of threads behind, and
    the hop costs no timer).

    The threads are daemons: one waiting for work must not keep the process alive at exit
    (a non-daemon thread would make the interpreter wait for it forever), and a job still
    running at exit belongs to an event loop that is gone anyway.

    A pool belongs to the process that created it: after ``fork()`` its threads do not
    exist in the child, so the owner checks :attr:`pid` and makes a new pool.
    """

    __slots__ = (
        "_idle",
        "_lock",
        "_name",
        "_pending",
        "_started",
        "_threads",
        "idle_timeout",
        "max_threads",
        "pid",
    )

    def __init__(self, max_threads: int, *, name: str, idle_timeout: float = 10.0) -> None:
        if max_threads < 1:
            raise ValueError(f"max_threads must be at least 1, not {max_threads}")
        self.max_threads = max_threads
        self.idle_timeout = idle_timeout
        self.pid = os.getpid()
        self._name = name
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []  # a stack: the last one to go idle is taken first
        self._pending: deque[Job] = deque()
        self._threads = 0
        self._started = 0

    @property
    def threads(self) -> int:
        """How many threads the pool has now (busy or idle)."""
        return self._threads

    def submit(self, job: Job) -> None:
        """Run *job* in a pool thread, as soon as one is free. Never blocks."""
        with self._lock:
            if self._idle:
                worker = self._idle.pop()
            elif self._threads < self.max_threads:
                self._threads += 1
                self._started += 1
                number = self._started
                worker = None
            else:
                self._pending.append(job)
                return
        if worker is not None:
            worker.job = job
            worker.doorbell.ring()
            return
        thread = threading.Thread(
            target=self._work, args=(_Worker(job),), name=f"{self._name} {number}", daemon=True
        )
        try:
            thread.start()
        except BaseException:
            with self._lock:
                self._threads -= 1
            raise

    def withdraw(self, job: Job) -> bool:
        """Take back *job* if no thread has started it yet; return whether it was."""
        with self._lock:
            try:
                self._pending.remove(job)
            except ValueError:
                return False
            return True

    def _work(self, worker: _Worker) -> None:
        doorbell = worker.doorbell
        lock = self._lock
        idle = self._idle
        pending = self._pending
        job = worker.job
        worker.job = None
        try:
            while job is not None:
                try:
                    job.run(doorbell)
                except BaseException:  # pragma: no cover - a bug in the job
                    logger.exception("Internal error in a worker thread (job %r)", job)
                # Ready for the next job before reporting this one: whoever waits for this
                # one may submit the next at once, and should find this thread idle.
                stop = None
                with lock:
                    if pending:
                        next_job: Job | None = pending.popleft()
                    else:
                        next_job = None
                        now = time.monotonic()
                        worker.idle_since = now
                        idle.append(worker)
                        if now - idle[0].idle_since > self.idle_timeout:
                            stop = idle.pop(0)
                            self._threads -= 1
                if stop is not None:
                    stop.job = _STOP
                    stop.doorbell.ring()
                try:
                    job.done()
                except BaseException:  # pragma: no cover - a bug in the job
                    logger.exception("Internal error in a worker thread (job %r)", job)
                job = next_job if next_job is not None else self._wait(worker)
        finally:
            doorbell.close()

    @staticmethod
    def _wait(worker: _Worker) -> Job | None:
        """Wait, idle, for a job; None when the thread is to end."""
        while True:
            job = worker.job
            if job is not None:
                worker.job = None
                return None if job is _STOP else job
            worker.doorbell.wait()
