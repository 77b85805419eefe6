"""A minimal ASGI lifespan driver, until the shared ``anysgi._lifespan`` lands.

TEMPORARY: ``anysgi._lifespan.LifespanManager`` (shared with ASGI2WSGI) replaces this module
once it is merged; the interface here is the same subset (``LifespanManager(app, mode=...,
startup_timeout=..., shutdown_timeout=...)`` as an async context manager that yields the
state dict, and :class:`LifespanError` with ``message``), so the switch is an import.

Rules (ASGI lifespan spec 2.0): an application that raises before sending any lifespan
message does not support the protocol, and the server goes on without it (unless
``mode="on"``); ``lifespan.startup.failed`` raises :class:`LifespanError` with its message.
"""

from __future__ import annotations

import logging
import math
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.abc

if TYPE_CHECKING:
    from anysgi._types import ASGIApp, Message

__all__ = ("LifespanError", "LifespanManager")

logger = logging.getLogger("anysgi.lifespan")


class LifespanError(Exception):
    """Lifespan startup or shutdown did not succeed; :attr:`message` says why."""

    def __init__(self, message: str, *, phase: str = "startup") -> None:
        super().__init__(message)
        self.message = message
        self.phase = phase


class LifespanManager:
    """Run *app*'s lifespan around a block; ``async with`` gives the state dict."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        mode: Literal["auto", "on", "off"] = "auto",
        startup_timeout: float | None = 60.0,
        shutdown_timeout: float | None = 60.0,
    ) -> None:
        self.app = app
        self.mode = mode
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
        self.state: dict[str, Any] = {}
        self.supported: bool | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        self._sent_any = False
        self._outcome: tuple[str, str] | None = None

    async def __aenter__(self) -> dict[str, Any]:
        if self.mode == "off":
            self.supported = False
            return self.state
        self._to_app = anyio.Event()
        self._from_app = anyio.Event()
        self._done = anyio.Event()
        self._receives = 0
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._task_group.start_soon(self._main)
        timeout = math.inf if self.startup_timeout is None else self.startup_timeout
        with anyio.move_on_after(timeout) as scope:
            await self._from_app.wait()
        if scope.cancelled_caught:
            await self._stop()
            raise LifespanError(f"lifespan startup took longer than {timeout}s")
        kind, message = self._outcome or ("unsupported", "")
        if kind == "lifespan.startup.complete":
            self.supported = True
            return self.state
        await self._stop()
        if kind == "unsupported" and self.mode == "auto":
            self.supported = False
            return self.state
        if kind == "unsupported":
            raise LifespanError("the application does not support the lifespan protocol")
        raise LifespanError(message)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.supported:
            return
        self._outcome = None
        self._from_app = anyio.Event()
        self._to_app.set()
        timeout = math.inf if self.shutdown_timeout is None else self.shutdown_timeout
        with anyio.move_on_after(timeout, shield=True):
            await self._from_app.wait()
        await self._stop()
        outcome = self._last_outcome()
        if outcome is not None and outcome[0] == "lifespan.shutdown.failed":
            if exc is None:
                raise LifespanError(outcome[1], phase="shutdown")
            logger.error("lifespan shutdown failed: %s", outcome[1])

    def _last_outcome(self) -> tuple[str, str] | None:
        return self._outcome

    async def _stop(self) -> None:
        assert self._task_group is not None
        self._task_group.cancel_scope.cancel()
        await self._task_group.__aexit__(None, None, None)

    async def _main(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}
        scope["state"] = self.state
        try:
            await self.app(scope, self._receive, self._send)
        except Exception:
            if self._sent_any:
                logger.exception("the application's lifespan task raised")
            else:
                logger.debug("the application does not support lifespan", exc_info=True)
        finally:
            self._from_app.set()

    async def _receive(self) -> Message:
        self._receives += 1
        if self._receives == 1:
            return {"type": "lifespan.startup"}
        await self._to_app.wait()
        if self._receives == 2:
            return {"type": "lifespan.shutdown"}
        await anyio.sleep_forever()
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(self, message: Message) -> None:
        self._sent_any = True
        self._outcome = (message["type"], str(message.get("message", "")))
        self._from_app.set()
