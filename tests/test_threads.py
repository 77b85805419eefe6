"""anysgi._threads: the worker pool and the doorbell that WSGI2ASGI's thread hops ride on.

Plain threads, no event loop: every wait has a timeout, so a regression fails instead of
hanging, and the only sleeps are the ones an idle timeout needs to pass.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from anysgi._threads import Doorbell, ThreadPool

WAIT = 10.0  # seconds; only ever reached when a test is about to fail


class Recorder:
    """A job that records where and when it ran; it blocks in run() while *gate* is shut."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.gate = gate
        self.started = threading.Event()
        self.finished = threading.Event()
        self.thread: threading.Thread | None = None
        self.done_calls = 0

    def run(self, doorbell: Doorbell) -> None:
        self.thread = threading.current_thread()
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(WAIT)

    def done(self) -> None:
        self.done_calls += 1
        self.finished.set()


def run_all(pool: ThreadPool, *jobs: Recorder) -> None:
    for job in jobs:
        pool.submit(job)
    for job in jobs:
        assert job.finished.wait(WAIT)


# --- ThreadPool -----------------------------------------------------------------------


@pytest.mark.parametrize("max_threads", [0, -1])
def test_max_threads_must_be_at_least_one(max_threads: int) -> None:
    with pytest.raises(ValueError, match="max_threads must be at least 1"):
        ThreadPool(max_threads, name="test")


def test_no_thread_starts_before_the_first_job() -> None:
    pool = ThreadPool(4, name="test")
    assert pool.threads == 0
    assert pool.pid == os.getpid()


def test_threads_start_on_demand_up_to_max_threads_and_jobs_queue_beyond() -> None:
    pool = ThreadPool(2, name="test pool")
    gate = threading.Event()
    jobs = [Recorder(gate) for _ in range(4)]
    for job in jobs:
        pool.submit(job)
    assert jobs[0].started.wait(WAIT)
    assert jobs[1].started.wait(WAIT)
    # Two threads, both busy: the other two jobs wait for one of them, not for a third.
    assert pool.threads == 2
    assert not jobs[2].started.is_set()
    assert not jobs[3].started.is_set()
    gate.set()
    for job in jobs:
        assert job.finished.wait(WAIT)
    assert pool.threads == 2
    threads = {job.thread for job in jobs}
    assert len(threads) == 2
    assert {t.name for t in threads if t is not None} == {"test pool 1", "test pool 2"}
    assert all(t is not None and t.daemon for t in threads)
    assert [job.done_calls for job in jobs] == [1, 1, 1, 1]


def test_pools_do_not_share_their_bound() -> None:
    gate = threading.Event()
    first, second = ThreadPool(1, name="first"), ThreadPool(1, name="second")
    a, b = Recorder(gate), Recorder(gate)
    first.submit(a)
    second.submit(b)
    # Each pool has its own thread: neither waits for the other's.
    assert a.started.wait(WAIT)
    assert b.started.wait(WAIT)
    gate.set()
    assert a.finished.wait(WAIT)
    assert b.finished.wait(WAIT)


def test_the_thread_that_went_idle_last_takes_the_next_job() -> None:
    pool = ThreadPool(3, name="test")
    gate = threading.Event()
    a, b = Recorder(gate), Recorder(gate)
    pool.submit(a)
    pool.submit(b)
    assert a.started.wait(WAIT)
    assert b.started.wait(WAIT)
    gate.set()
    assert a.finished.wait(WAIT)
    assert b.finished.wait(WAIT)
    # Whichever of the two threads went idle last, a lone job now runs there: no third
    # thread starts while one is idle.
    c = Recorder()
    run_all(pool, c)
    assert c.thread in (a.thread, b.thread)
    assert pool.threads == 2
    d = Recorder()
    run_all(pool, d)
    assert d.thread is c.thread


def test_done_is_called_once_the_thread_is_ready_for_the_next_job() -> None:
    pool = ThreadPool(2, name="test")
    follow_up = Recorder()

    class SubmitsFromDone(Recorder):
        def done(self) -> None:
            # Whoever waits for this job may submit the next at once: it finds this thread
            # idle instead of starting a second one.
            pool.submit(follow_up)
            super().done()

    first = SubmitsFromDone()
    run_all(pool, first)
    assert follow_up.finished.wait(WAIT)
    assert follow_up.thread is first.thread
    assert pool.threads == 1


def test_withdraw_takes_back_only_a_job_no_thread_has_started() -> None:
    pool = ThreadPool(1, name="test")
    gate = threading.Event()
    running, queued = Recorder(gate), Recorder()
    pool.submit(running)
    assert running.started.wait(WAIT)
    pool.submit(queued)
    assert not pool.withdraw(running)  # started: it runs to its end
    assert pool.withdraw(queued)
    assert not pool.withdraw(queued)  # gone already
    gate.set()
    assert running.finished.wait(WAIT)
    after = Recorder()
    run_all(pool, after)  # the thread went on to the next job, not to the withdrawn one
    assert not queued.started.is_set()
    assert queued.done_calls == 0


def test_idle_threads_end_after_idle_timeout() -> None:
    pool = ThreadPool(2, name="test", idle_timeout=0.05)
    gate = threading.Event()
    a, b = Recorder(gate), Recorder(gate)
    pool.submit(a)
    pool.submit(b)
    assert a.started.wait(WAIT)
    assert b.started.wait(WAIT)
    gate.set()
    assert a.finished.wait(WAIT)
    assert b.finished.wait(WAIT)
    assert pool.threads == 2
    time.sleep(0.1)  # both idle for longer than idle_timeout
    # The next thread to go idle ends the one idle longest, which is not itself.
    c = Recorder()
    run_all(pool, c)
    ended = b.thread if c.thread is a.thread else a.thread
    assert ended is not None
    ended.join(WAIT)
    assert not ended.is_alive()
    assert c.thread is not None
    assert c.thread.is_alive()
    assert pool.threads == 1
    # The pool goes on with the thread it kept, and starts another on demand.
    gate = threading.Event()
    d, e = Recorder(gate), Recorder(gate)
    pool.submit(d)
    pool.submit(e)
    assert d.started.wait(WAIT)
    assert e.started.wait(WAIT)
    assert pool.threads == 2
    gate.set()
    assert d.finished.wait(WAIT)
    assert e.finished.wait(WAIT)


def test_threads_idle_for_less_than_idle_timeout_stay() -> None:
    pool = ThreadPool(2, name="test", idle_timeout=WAIT)
    gate = threading.Event()
    a, b = Recorder(gate), Recorder(gate)
    pool.submit(a)
    pool.submit(b)
    assert a.started.wait(WAIT)
    assert b.started.wait(WAIT)
    gate.set()
    assert a.finished.wait(WAIT)
    assert b.finished.wait(WAIT)
    run_all(pool, Recorder())
    assert pool.threads == 2
    assert a.thread is not None
    assert a.thread.is_alive()
    assert b.thread is not None
    assert b.thread.is_alive()


def test_a_thread_that_cannot_start_is_not_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = ThreadPool(1, name="test")

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    with monkeypatch.context() as patched:
        patched.setattr(threading.Thread, "start", refuse)
        with pytest.raises(RuntimeError, match="can't start new thread"):
            pool.submit(Recorder())
    assert pool.threads == 0
    job = Recorder()
    run_all(pool, job)  # the slot it had taken is free again
    assert pool.threads == 1


def test_a_job_waits_on_its_threads_doorbell_for_an_answer() -> None:
    """How WSGI2ASGI uses it: the job hands its doorbell out and waits for a ring."""
    pool = ThreadPool(1, name="test")
    handed: list[Doorbell] = []
    answer: list[str] = []
    asked = threading.Event()
    got: list[str] = []

    class Asks(Recorder):
        def run(self, doorbell: Doorbell) -> None:
            handed.append(doorbell)
            asked.set()
            while not answer:
                doorbell.wait()
            got.append(answer[0])

    job = Asks()
    pool.submit(job)
    assert asked.wait(WAIT)
    answer.append("yes")
    handed[0].ring()
    assert job.finished.wait(WAIT)
    assert got == ["yes"]


# --- Doorbell -------------------------------------------------------------------------


def waiter(doorbell: Doorbell) -> threading.Thread:
    thread = threading.Thread(target=doorbell.wait, daemon=True)
    thread.start()
    return thread


def test_doorbell_wait_blocks_until_a_ring() -> None:
    doorbell = Doorbell()
    try:
        thread = waiter(doorbell)
        thread.join(0.05)
        assert thread.is_alive()
        doorbell.ring()
        thread.join(WAIT)
        assert not thread.is_alive()
    finally:
        doorbell.close()


def test_doorbell_counts_rings_that_come_before_the_wait() -> None:
    doorbell = Doorbell()
    try:
        # Rung twice before anyone waits: the rings are kept, and the next wait returns
        # at once, taking both (a waiter checks what it waits for in a loop).
        doorbell.ring()
        doorbell.ring()
        first = waiter(doorbell)
        first.join(WAIT)
        assert not first.is_alive()
        second = waiter(doorbell)
        second.join(0.05)
        assert second.is_alive()  # both rings were taken by the first wait
        doorbell.ring()
        second.join(WAIT)
        assert not second.is_alive()
    finally:
        doorbell.close()


def test_doorbell_close_releases_its_descriptor_once() -> None:
    doorbell = Doorbell()
    closed: list[int] = []

    def close(fd: int) -> None:
        closed.append(fd)
        os.close(fd)

    fd = doorbell._read_fd
    doorbell.close(close)
    doorbell.close(close)  # a second close (or the finaliser after close()) does nothing
    assert closed == [fd]
