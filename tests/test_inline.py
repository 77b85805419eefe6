"""anysgi._inline.run_inline: a coroutine run in the caller's task until it first waits.

Every test runs on asyncio and on trio: the helper passes each backend's suspensions through
unchanged, so what is checked here is that awaiting through it is indistinguishable from
awaiting the coroutine directly (results, exceptions, cancellation, context) and that
``on_suspend`` is called exactly when the coroutine first has to wait.
"""

from __future__ import annotations

import contextvars
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from anysgi._inline import run_inline

pytestmark = pytest.mark.anyio

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


class Suspend:
    """An awaitable that suspends once, for tests that drive run_inline by hand."""

    def __await__(self) -> Any:
        yield "suspended"


class Calls:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


async def test_a_coroutine_that_never_waits_does_not_call_on_suspend() -> None:
    calls = Calls()

    async def quick() -> int:
        return 42

    assert await run_inline(quick(), calls) == 42
    assert calls.count == 0


async def test_on_suspend_is_called_once_before_the_first_wait() -> None:
    calls = Calls()
    seen: list[int] = []

    async def waits_twice() -> str:
        seen.append(calls.count)  # before any wait: not called yet
        await anyio.lowlevel.checkpoint()
        seen.append(calls.count)
        await anyio.sleep(0.01)
        seen.append(calls.count)
        return "done"

    assert await run_inline(waits_twice(), calls) == "done"
    assert seen == [0, 1, 1]


async def test_runs_in_the_callers_task_and_context() -> None:
    outer_task = anyio.get_current_task().id
    VAR.set("outer")

    async def body() -> tuple[int, str]:
        VAR.set("inner")  # the same context: visible to the caller afterwards, as with await
        await anyio.lowlevel.checkpoint()
        return anyio.get_current_task().id, VAR.get()

    task_id, value = await run_inline(body(), Calls())
    assert (task_id, value) == (outer_task, "inner")
    assert VAR.get() == "inner"


async def test_with_a_context_of_its_own_its_variables_stay_inside() -> None:
    # As in a task of its own: it starts with a copy of the caller's variables, keeps what
    # it sets across its waits, and what it sets does not reach the caller.
    VAR.set("outer")
    seen: list[str] = []

    async def body() -> str:
        seen.append(VAR.get())
        VAR.set("inner")
        await anyio.lowlevel.checkpoint()
        seen.append(VAR.get())
        return "done"

    context = contextvars.copy_context()
    assert await run_inline(body(), Calls(), context) == "done"
    assert seen == ["outer", "inner"]
    assert VAR.get() == "outer"
    assert context[VAR] == "inner"


async def test_exceptions_propagate_before_and_after_the_first_wait() -> None:
    async def fails_at_once() -> None:
        raise KeyError("now")

    async def fails_later() -> None:
        await anyio.lowlevel.checkpoint()
        raise ValueError("later")

    with pytest.raises(KeyError):
        await run_inline(fails_at_once(), Calls())
    with pytest.raises(ValueError, match="later"):
        await run_inline(fails_later(), Calls())


async def test_results_of_waits_reach_the_coroutine() -> None:
    send, receive = anyio.create_memory_object_stream[str](1)

    async def reader() -> str:
        return await receive.receive()

    async with anyio.create_task_group() as task_group:

        async def writer() -> None:
            await anyio.sleep(0.01)
            await send.send("value")

        task_group.start_soon(writer)
        assert await run_inline(reader(), Calls()) == "value"
    send.close()
    receive.close()


async def test_cancellation_reaches_the_coroutine_and_its_cleanup_runs() -> None:
    cleaned = anyio.Event()

    async def sleeper() -> None:
        try:
            await anyio.sleep(10)
        finally:
            cleaned.set()

    with anyio.move_on_after(0.05) as scope:
        await run_inline(sleeper(), Calls())
    assert scope.cancelled_caught
    assert cleaned.is_set()


async def test_cancel_scopes_inside_the_coroutine_work() -> None:
    async def inner_timeout() -> bool:
        with anyio.move_on_after(0.01) as scope:
            await anyio.sleep(10)
        await anyio.lowlevel.checkpoint()
        return scope.cancelled_caught

    assert await run_inline(inner_timeout(), Calls()) is True


async def test_on_suspend_raising_closes_the_coroutine() -> None:
    closed: list[str] = []

    async def body() -> None:
        try:
            await anyio.lowlevel.checkpoint()
        finally:
            closed.append("finally")

    def refuse() -> None:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError, match="no"):
        await run_inline(body(), refuse)
    assert closed == ["finally"]


def test_closing_the_outer_coroutine_closes_the_inner_one() -> None:
    # Driven by hand, without an event loop: what happens to a task that is never resumed.
    closed: list[str] = []

    async def body() -> None:
        try:
            await Suspend()
        finally:
            closed.append("inner")

    outer = run_inline(body(), Calls())
    assert outer.send(None) == "suspended"
    outer.close()
    assert closed == ["inner"]


def test_a_thrown_exception_is_passed_on() -> None:
    caught: list[BaseException] = []

    async def body() -> str:
        try:
            await Suspend()
        except LookupError as exc:
            caught.append(exc)
        return "recovered"

    outer = run_inline(body(), Calls())
    assert outer.send(None) == "suspended"
    with pytest.raises(StopIteration) as stop:
        outer.throw(KeyError("thrown"))
    assert stop.value.value == "recovered"
    assert isinstance(caught[0], KeyError)
