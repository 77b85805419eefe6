"""The lifespan driver shared by ASGI2WSGI and the FastCGI server (asyncio and trio)."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

from anysgi._errors import AnysgiError, LifespanError
from anysgi._lifespan import LifespanManager
from anysgi._types import ASGIReceive, ASGISend, Scope

pytestmark = pytest.mark.anyio


class App:
    """A scripted lifespan application that records what it receives."""

    def __init__(self, script: str = "ok", **options: Any) -> None:
        self.script = script
        self.options = options
        self.received: list[str] = []
        self.returned = False

    async def __call__(self, scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        assert scope["type"] == "lifespan"
        assert scope["asgi"]["version"] == "3.0"
        script = self.script
        if script == "raise-at-once":
            raise RuntimeError("lifespan? never heard of it")
        if script == "return-at-once":
            return
        if script == "http-app":
            await send({"type": "http.response.start", "status": 404, "headers": []})
        self.received.append((await receive())["type"])
        if script == "startup-failed":
            await send({"type": "lifespan.startup.failed", "message": "no database"})
            raise RuntimeError("the reason, already sent")
        if script == "hang-startup":
            await anyio.sleep_forever()
        scope["state"]["answer"] = 42
        await send({"type": "lifespan.startup.complete"})
        if script == "crash-after-startup":
            raise ValueError("crashed while serving")
        if script == "return-after-startup":
            self.returned = True
            return
        self.received.append((await receive())["type"])
        if script == "shutdown-failed":
            await send({"type": "lifespan.shutdown.failed", "message": "could not flush"})
            return
        if script == "hang-shutdown":
            await anyio.sleep_forever()
        if script == "linger-after-shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            await anyio.sleep_forever()
        await send({"type": "lifespan.shutdown.complete"})
        self.returned = True


async def test_startup_and_shutdown_with_state() -> None:
    app = App()
    manager = LifespanManager(app)
    async with manager as state:
        assert state == {"answer": 42}
        assert app.received == ["lifespan.startup"]
        assert manager.supported is True
    assert app.received == ["lifespan.startup", "lifespan.shutdown"]
    assert app.returned


async def test_state_given_is_the_state_returned() -> None:
    mine: dict[str, Any] = {"preset": 1}
    async with LifespanManager(App(), state=mine) as state:
        assert state is mine
        assert mine == {"preset": 1, "answer": 42}


async def test_startup_failed_raises_with_the_apps_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with pytest.raises(LifespanError) as info:
        async with LifespanManager(App("startup-failed")):
            pytest.fail("the block must not run")
    assert info.value.message == "no database"
    assert info.value.phase == "startup"
    assert isinstance(info.value, AnysgiError)
    # The exception the app raised after reporting failure is logged, not at error level.
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("script", ["raise-at-once", "return-at-once", "http-app"])
async def test_auto_goes_on_without_an_app_that_does_not_support_it(
    script: str, caplog: pytest.LogCaptureFixture
) -> None:
    manager = LifespanManager(App(script), mode="auto")
    with caplog.at_level(logging.DEBUG, logger="anysgi.lifespan"):
        async with manager as state:
            assert state == {}
    assert manager.supported is False
    (record,) = [r for r in caplog.records if "unsupported" in r.getMessage()]
    assert record.levelno == logging.DEBUG


@pytest.mark.parametrize("script", ["raise-at-once", "return-at-once"])
async def test_on_requires_support(script: str) -> None:
    with pytest.raises(LifespanError, match="does not support"):
        async with LifespanManager(App(script), mode="on"):
            pytest.fail("the block must not run")


async def test_off_never_calls_the_app() -> None:
    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        raise AssertionError("called")

    manager = LifespanManager(app, mode="off")
    async with manager as state:
        assert state == {}
    assert manager.supported is False


async def test_startup_timeout() -> None:
    with pytest.raises(LifespanError, match=r"within 0\.05 s"):
        async with LifespanManager(App("hang-startup"), startup_timeout=0.05):
            pytest.fail("the block must not run")


async def test_shutdown_failed_raises_on_exit() -> None:
    with pytest.raises(LifespanError) as info:
        async with LifespanManager(App("shutdown-failed")):
            pass
    assert info.value.message == "could not flush"
    assert info.value.phase == "shutdown"


async def test_shutdown_timeout_raises_on_exit() -> None:
    with pytest.raises(LifespanError, match=r"shutdown did not complete within 0\.05 s"):
        async with LifespanManager(App("hang-shutdown"), shutdown_timeout=0.05):
            pass


async def test_app_lingering_after_shutdown_complete_is_cancelled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with LifespanManager(App("linger-after-shutdown"), shutdown_timeout=0.05):
        pass
    assert any("still running" in r.getMessage() for r in caplog.records)


async def test_exception_after_startup_is_logged_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with LifespanManager(App("crash-after-startup")):
        await anyio.sleep(0.01)
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "crashed while serving"


async def test_app_returning_after_startup_is_tolerated() -> None:
    app = App("return-after-startup")
    async with LifespanManager(app) as state:
        assert state == {"answer": 42}
    assert app.returned


async def test_an_error_in_the_block_propagates_after_shutdown() -> None:
    app = App()
    with pytest.raises(KeyError):
        async with LifespanManager(app):
            raise KeyError("from the block")
    assert app.received == ["lifespan.startup", "lifespan.shutdown"]


async def test_cancellation_is_re_raised_and_shutdown_still_runs() -> None:
    app = App()
    with anyio.CancelScope() as scope:
        async with LifespanManager(app):
            scope.cancel()
            await anyio.sleep_forever()
    assert scope.cancelled_caught
    assert app.received == ["lifespan.startup", "lifespan.shutdown"]


async def test_cancelled_during_startup() -> None:
    with anyio.move_on_after(0.05) as scope:
        async with LifespanManager(App("hang-startup")):
            pytest.fail("the block must not run")
    assert scope.cancelled_caught


async def test_app_crashing_during_shutdown_is_a_failure() -> None:
    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        raise OSError("disk gone")

    with pytest.raises(LifespanError, match="raised instead of completing shutdown") as info:
        async with LifespanManager(app):
            pass
    assert isinstance(info.value.__cause__, OSError)


async def test_out_of_order_message_is_an_error_in_the_app(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.startup.complete"})

    async with LifespanManager(app):
        await anyio.sleep(0.01)
    assert any("unexpected ASGI lifespan message" in str(r.exc_info) for r in caplog.records)


def test_bad_mode() -> None:
    with pytest.raises(ValueError, match="mode"):
        LifespanManager(App(), mode="sometimes")  # type: ignore[arg-type]
