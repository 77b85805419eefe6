"""Run a coroutine inside the current task until it first suspends.

Starting a task costs more than a small request costs to serve (about 20 us on asyncio
through anyio's task group, against ~15 us to decode a whole FastCGI request). Most
requests to a hello-world-sized handler never suspend at all: the body is already read and
the response fits the socket buffer. :func:`run_inline` lets the caller run such a
coroutine in its own task, and learn, through ``on_suspend``, the moment the coroutine
first has to wait, so that the caller can hand its own duties (reading the connection) to a
new task at that point. Until then nothing else could have run anyway: a cooperative loop
runs one task at a time, so running the coroutine here and running it in a task of its own
are the same to everyone else, minus the cost of the task.

It is backend neutral: it passes every suspension (an asyncio future, a trio trap) up to
the event loop unchanged, and every resumption (a value sent, an exception thrown) down to
the coroutine unchanged, exactly as ``await`` does. Cancellation behaves as if the
coroutine were awaited directly (it runs in the caller's task); context variables too,
unless a context of its own is given, which makes them behave as in a task of its own.
"""

from __future__ import annotations

import contextvars
import types
from collections.abc import Callable, Coroutine, Generator
from typing import Any, TypeVar

__all__ = ("run_inline",)

T = TypeVar("T")


@types.coroutine
def run_inline(
    coro: Coroutine[Any, Any, T],
    on_suspend: Callable[[], object],
    context: contextvars.Context | None = None,
) -> Generator[Any, Any, T]:
    """Await *coro*, calling ``on_suspend()`` once, just before its first suspension.

    If *coro* finishes without suspending, ``on_suspend`` is never called. If
    ``on_suspend`` raises, *coro* is closed and the exception propagates.

    :param context: if given, every step of *coro* runs in it, as every step of a task
        runs in the task's own context: pass ``contextvars.copy_context()`` to keep the
        context variables *coro* sets from leaking into the caller, as they would not
        from a task of its own.
    """
    run: Callable[..., Any] = _call if context is None else context.run
    try:
        suspension = run(coro.send, None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    try:
        on_suspend()
    except BaseException:
        run(coro.close)
        raise
    # From here on this is what ``yield from coro`` does for an already started coroutine.
    while True:
        try:
            resumption = yield suspension
        except GeneratorExit:  # noqa: PERF203 (one try per suspension, as yield from has)
            run(coro.close)
            raise
        except BaseException as exc:  # noqa: BLE001 (a cancellation, KeyboardInterrupt: passed on)
            try:
                suspension = run(coro.throw, exc)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
        else:
            try:
                suspension = run(coro.send, resumption)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)
