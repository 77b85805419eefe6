"""The ASGI lifespan protocol, driven from the server side.

Shared by :class:`~anysgi.ASGI2WSGI` and the FastCGI server: both run an application's
lifespan once per process (per event loop), around everything else they do::

    async with LifespanManager(app, mode="auto") as state:
        ...  # serve requests; each request scope gets a shallow copy of ``state``

The rules, in one place (ASGI "Lifespan Protocol" 2.0):

* ``mode="off"``: the application is never called with the lifespan scope; ``state`` is
  an empty dict.
* An application that raises, or returns, before it has sent any lifespan message (a
  message of another type, such as ``http.response.start``, does not count) does not
  support the protocol. With ``mode="auto"`` that is logged at debug level and serving goes
  on without it; with ``mode="on"`` it is a :class:`~anysgi._errors.LifespanError`.
* ``lifespan.startup.failed`` (or no answer within ``startup_timeout``) raises
  :class:`~anysgi._errors.LifespanError` from ``__aenter__``, carrying the application's
  message.
* On exit, ``lifespan.shutdown`` is sent and the manager waits up to ``shutdown_timeout``
  for ``lifespan.shutdown.complete``, then for the application to return; it is cancelled
  if it has not. ``lifespan.shutdown.failed`` raises :class:`~anysgi._errors.LifespanError`
  (unless the block is already exiting with an exception).
* An exception the application raises after ``lifespan.startup.complete`` is logged with
  its traceback; one raised after it reported ``*.failed`` is logged at debug level (its
  message already says what went wrong). Cancellation is always re-raised.
"""

from __future__ import annotations

import logging
import math
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.abc

from ._errors import LifespanError

if TYPE_CHECKING:
    from ._types import ASGIApp, Message, Scope

__all__ = ("LifespanManager", "LifespanMode")

LifespanMode = Literal["auto", "on", "off"]

logger = logging.getLogger("anysgi.lifespan")

_MODES = ("auto", "on", "off")
_MESSAGE_TYPES = frozenset(
    {
        "lifespan.startup.complete",
        "lifespan.startup.failed",
        "lifespan.shutdown.complete",
        "lifespan.shutdown.failed",
    }
)


class LifespanManager:
    """Run an ASGI application's lifespan around a block of code.

    :param app: the ASGI application.
    :param mode: ``"auto"`` (use the protocol if the application supports it), ``"on"``
        (the application must support it) or ``"off"`` (never call the application with
        the lifespan scope).
    :param startup_timeout: seconds to wait for ``lifespan.startup.complete``; ``None``
        waits for ever.
    :param shutdown_timeout: seconds to wait, on exit, for ``lifespan.shutdown.complete``
        and then for the application to return; ``None`` waits for ever.
    :param state: the dict to hand the application as ``scope["state"]`` (a new empty one
        by default). ``async with`` returns it.
    :raises LifespanError: from ``async with`` when startup fails, and on exit when
        shutdown fails.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        mode: LifespanMode = "auto",
        startup_timeout: float | None = 60.0,
        shutdown_timeout: float | None = 60.0,
        state: dict[str, Any] | None = None,
    ) -> None:
        if mode not in _MODES:
            raise ValueError(f"lifespan mode must be one of {_MODES}, not {mode!r}")
        self.app = app
        self.mode: LifespanMode = mode
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
        #: The lifespan state shared with the application.
        self.state: dict[str, Any] = {} if state is None else state
        #: ``True`` once the application has completed startup, ``False`` if it does not
        #: use the protocol (or mode is "off"), ``None`` before ``async with``.
        self.supported: bool | None = None

        self._task_group: anyio.abc.TaskGroup | None = None
        self._sent_any = False
        self._startup_complete = False
        self._startup_failed: str | None = None
        self._shutdown_complete = False
        self._shutdown_failed: str | None = None
        self._app_error: BaseException | None = None
        self._receives = 0

    # Events belong to an event loop: they are made in __aenter__, inside it.
    def _make_events(self) -> None:
        self._startup_done = anyio.Event()
        self._shutdown_requested = anyio.Event()
        self._shutdown_done = anyio.Event()
        self._app_exited = anyio.Event()
        self._app_scope = anyio.CancelScope(shield=True)

    # --- the application's side ----------------------------------------------------------

    async def _receive(self) -> Message:
        self._receives += 1
        if self._receives == 1:
            return {"type": "lifespan.startup"}
        if self._receives == 2:
            await self._shutdown_requested.wait()
            return {"type": "lifespan.shutdown"}
        # A third receive() has nothing left to wait for.
        await anyio.sleep_forever()
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(self, message: Message) -> None:
        kind = message.get("type")
        if kind in _MESSAGE_TYPES:
            # Only a lifespan message counts: an application that ignores the scope type
            # and answers with http.response.start does not support the protocol.
            self._sent_any = True
        if kind == "lifespan.startup.complete" and not self._startup_done.is_set():
            self._startup_complete = True
            self._startup_done.set()
        elif kind == "lifespan.startup.failed" and not self._startup_done.is_set():
            self._startup_failed = str(message.get("message", ""))
            self._startup_done.set()
        elif kind == "lifespan.shutdown.complete" and self._shutdown_requested.is_set():
            self._shutdown_complete = True
            self._shutdown_done.set()
        elif kind == "lifespan.shutdown.failed" and self._shutdown_requested.is_set():
            self._shutdown_failed = str(message.get("message", ""))
            self._shutdown_done.set()
        else:
            raise RuntimeError(f"unexpected ASGI lifespan message {kind!r} at this point")

    async def _run_app(self) -> None:
        scope: Scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        try:
            # Shielded: the lifespan outlives a cancellation of the block it wraps, so that
            # shutdown still runs; the manager cancels this scope itself when it is done.
            with self._app_scope:
                await self.app(scope, self._receive, self._send)
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:
            self._app_error = exc
            if not self._sent_any:
                pass  # "unsupported": reported by __aenter__
            elif self._startup_failed is not None or self._shutdown_failed is not None:
                logger.debug("ASGI lifespan task raised after reporting failure", exc_info=exc)
            else:
                logger.error("Exception in ASGI lifespan task", exc_info=exc)
        finally:
            self._app_exited.set()
            # Whoever waits for startup or shutdown must not wait for an application
            # that is gone.
            self._startup_done.set()
            self._shutdown_done.set()

    # --- the server's side ---------------------------------------------------------------

    async def __aenter__(self) -> dict[str, Any]:
        if self.mode == "off":
            self.supported = False
            return self.state
        self._make_events()
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        try:
            task_group.start_soon(self._run_app, name=f"ASGI lifespan of {self.app!r}")
            with anyio.move_on_after(_timeout(self.startup_timeout)) as scope:
                await self._startup_done.wait()
            if scope.cancelled_caught:
                raise LifespanError(
                    f"lifespan startup did not complete within {self.startup_timeout} s"
                )
            if self._startup_failed is not None:
                raise LifespanError(self._startup_failed)
            if not self._sent_any:
                error = self._app_error
                if self.mode == "on":
                    detail = f": {error!r}" if error is not None else ""
                    raise LifespanError(
                        "the application does not support the ASGI lifespan protocol"
                        f" (it returned or raised before sending anything{detail})"
                    ) from error
                logger.debug(
                    "ASGI lifespan protocol unsupported by %r: going on without it",
                    self.app,
                    exc_info=error,
                )
                self.supported = False
                return self.state
            if not self._startup_complete:
                raise LifespanError(
                    "the application's lifespan task ended before lifespan.startup.complete"
                ) from self._app_error
        except BaseException as exc:
            self._task_group = None
            self._app_scope.cancel()
            await _close_task_group(task_group, exc)
            raise
        self.supported = True
        return self.state

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task_group, self._task_group = self._task_group, None
        if task_group is None:
            return
        app_was_running = not self._app_exited.is_set()
        # Shielded: shutdown must run even when the block is left by cancellation, but it
        # is bounded by shutdown_timeout.
        with (
            anyio.CancelScope(shield=True),
            anyio.move_on_after(_timeout(self.shutdown_timeout)) as scope,
        ):
            self._shutdown_requested.set()
            await self._shutdown_done.wait()
            await self._app_exited.wait()
        completed = self._shutdown_complete
        if scope.cancelled_caught and completed:
            logger.warning(
                "ASGI lifespan task still running %s s after lifespan.shutdown.complete: cancelled",
                self.shutdown_timeout,
            )
        self._app_scope.cancel()
        await _close_task_group(task_group, exc)
        if exc_type is not None:
            return
        if self._shutdown_failed is not None:
            raise LifespanError(self._shutdown_failed, phase="shutdown")
        if completed or not app_was_running:
            return
        if scope.cancelled_caught:
            raise LifespanError(
                f"lifespan shutdown did not complete within {self.shutdown_timeout} s",
                phase="shutdown",
            )
        if self._app_error is not None:
            raise LifespanError(
                "the application's lifespan task raised instead of completing shutdown",
                phase="shutdown",
            ) from self._app_error
        logger.debug("ASGI lifespan task returned without lifespan.shutdown.complete")


async def _close_task_group(task_group: anyio.abc.TaskGroup, exc: BaseException | None) -> None:
    """Leave *task_group* (its children already cancelled) while *exc* propagates.

    Only a cancellation is handed to the task group, which must see it to do its
    bookkeeping; any other exception would come back wrapped in an exception group, and it
    is the caller's to re-raise as it is.
    """
    if isinstance(exc, anyio.get_cancelled_exc_class()):
        await task_group.__aexit__(type(exc), exc, exc.__traceback__)
    else:
        await task_group.__aexit__(None, None, None)


def _timeout(seconds: float | None) -> float:
    return math.inf if seconds is None else seconds
