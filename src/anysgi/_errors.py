"""Exceptions anysgi raises. Every one derives from :class:`AnysgiError`."""

from __future__ import annotations

__all__ = ("AnysgiError", "ClientDisconnectedError", "LifespanError")


class AnysgiError(Exception):
    """Base class of the exceptions anysgi raises itself."""


class LifespanError(AnysgiError):
    """The application's lifespan startup or shutdown did not succeed.

    Raised when the application sends ``lifespan.startup.failed`` or
    ``lifespan.shutdown.failed`` (:attr:`message` holds the message it sent), when startup
    or shutdown takes longer than its timeout, and, with ``lifespan="on"``, when the
    application does not support the lifespan protocol at all.
    """

    def __init__(self, message: str, *, phase: str = "startup") -> None:
        super().__init__(message)
        #: The application's message (empty if it sent none).
        self.message = message
        #: ``"startup"`` or ``"shutdown"``.
        self.phase = phase


class ClientDisconnectedError(AnysgiError, OSError):
    """``send()`` was called after the client went away.

    The ASGI HTTP spec (2.4) asks servers to raise a subclass of :class:`OSError` here, so
    frameworks such as Starlette stop streaming a response nobody will read.
    """
