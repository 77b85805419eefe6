"""Every limit and timeout of the FastCGI server, in one frozen object.

:func:`anysgi.fastcgi.serve`, :func:`anysgi.fastcgi.run` and ``anysgi serve`` take each field
as a keyword argument or a flag of the same name and build one :class:`ServerConfig`; nothing
else in the server reads an option from anywhere. The defaults and the reasons for them are
on :doc:`/discussion/limits`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Final, Literal

from .protocol import DEFAULT_MAX_CONCURRENT_REQUESTS, DEFAULT_MAX_PARAMS_SIZE

__all__ = (
    "DEFAULT_BIND",
    "KiB",
    "LifespanMode",
    "MiB",
    "ServerConfig",
    "web_server_addrs_from_env",
)

KiB: Final = 1024
MiB: Final = 1024 * KiB

#: Where the server listens when no bind is given and fd 0 is not a listening socket.
DEFAULT_BIND: Final = "127.0.0.1:9000"

LifespanMode = Literal["auto", "on", "off"]
_LIFESPAN_MODES: Final = ("auto", "on", "off")


def _optional_seconds(name: str, value: object) -> None:
    if value is not None and not (isinstance(value, (int, float)) and value > 0):
        raise ValueError(f"{name} must be a positive number of seconds or None, not {value!r}")


def _positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")


def web_server_addrs_from_env(
    environ: os._Environ[str] | dict[str, str] | None = None,
) -> tuple[str, ...] | None:
    """``FCGI_WEB_SERVER_ADDRS`` as a tuple of addresses, or ``None`` when unset or empty.

    The FastCGI specification (section 3.2) has a web server that spawns the application pass
    the addresses it connects from, comma-separated; "the application should close the
    connection" from any other address.
    """
    value = (os.environ if environ is None else environ).get("FCGI_WEB_SERVER_ADDRS", "")
    addrs = tuple(a.strip() for a in value.split(",") if a.strip())
    return addrs or None


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """The FastCGI server's options. Frozen: build a new one to change anything.

    :param binds: where to listen (see :doc:`/reference/server` for the syntax). Empty means
        fd 0 when it is a listening socket (a web server spawned us), else
        :data:`DEFAULT_BIND`.
    :param root_path: the mount point given to the application as ``root_path`` whatever the
        web server says in ``SCRIPT_NAME`` (``force_script_name``); ``None`` keeps the
        web server's.
    :param lifespan: ``"auto"``, ``"on"`` or ``"off"``: whether to run the ASGI lifespan
        protocol (see :func:`anysgi.fastcgi.serve`).
    :param max_connections: most connections open at once; the server stops accepting at
        the cap and resumes when one closes. Default 1000.
    :param max_requests_per_connection: most requests multiplexed at once on one connection
        (advertised as ``FCGI_MAX_REQS``). Default 100.
    :param max_params_size: most bytes of PARAMS (the request's CGI variables and headers)
        per request. Default 1 MiB.
    :param max_request_body: most bytes of request body; a larger body gets a 413 response.
        Default ``None``: no limit here, the web server's (``client_max_body_size``,
        ``LimitRequestBody``) applies and the body is streamed in bounded memory anyway.
    :param request_buffer_size: bytes of request body held for a request whose application
        has not read them yet; past it the server stops reading the connection. 64 KiB.
    :param idle_timeout: seconds a connection may stay open with no request running before
        it is closed. Default 75: longer than nginx's upstream ``keepalive_timeout`` (60 s),
        so nginx, not us, ends an idle kept-alive connection.
    :param request_timeout: seconds a request may run; past it the application is cancelled
        and the client gets a 504 (or, if the response had started, the connection is
        closed). Default ``None``: no limit (the web server's read timeout applies).
    :param startup_timeout: seconds for the lifespan startup. Default 60.
    :param shutdown_timeout: seconds, on a graceful stop, that requests in flight get to
        finish before they are cancelled; the lifespan shutdown gets as long again.
        Default 30.
    :param backlog: the listening sockets' accept queue length. Default 1024.
    :param unix_socket_mode: permissions of a Unix socket file the server creates (such as
        ``0o660``); ``None`` leaves them to the umask.
    :param web_server_addrs: the only peer IP addresses TCP connections are accepted from;
        ``None`` accepts any. Defaults to ``FCGI_WEB_SERVER_ADDRS`` from the environment.
    :param access_log: log one line per request to the ``anysgi.access`` logger. Off by
        default: the web server logs requests already.
    :raises ValueError: if an option is out of range.
    """

    binds: tuple[str, ...] = ()
    root_path: str | None = None
    lifespan: LifespanMode = "auto"
    max_connections: int = 1000
    max_requests_per_connection: int = DEFAULT_MAX_CONCURRENT_REQUESTS
    max_params_size: int = DEFAULT_MAX_PARAMS_SIZE
    max_request_body: int | None = None
    request_buffer_size: int = 64 * KiB
    idle_timeout: float | None = 75.0
    request_timeout: float | None = None
    startup_timeout: float | None = 60.0
    shutdown_timeout: float | None = 30.0
    backlog: int = 1024
    unix_socket_mode: int | None = None
    web_server_addrs: tuple[str, ...] | None = field(default_factory=web_server_addrs_from_env)
    access_log: bool = False

    def __post_init__(self) -> None:
        binds: object = self.binds  # checked at run time, whatever the annotation says
        if isinstance(binds, str):
            raise TypeError("binds must be a sequence of bind strings, not one string")
        if self.lifespan not in _LIFESPAN_MODES:
            raise ValueError(f"lifespan must be one of {_LIFESPAN_MODES}, not {self.lifespan!r}")
        for name in (
            "max_connections",
            "max_requests_per_connection",
            "max_params_size",
            "request_buffer_size",
            "backlog",
        ):
            _positive(name, getattr(self, name))
        if self.max_requests_per_connection > 0xFFFF:
            raise ValueError("max_requests_per_connection is at most 65535 (request ids)")
        body: object = self.max_request_body
        if body is not None and (isinstance(body, bool) or not isinstance(body, int) or body < 0):
            raise ValueError(
                f"max_request_body must be a non-negative integer or None, "
                f"not {self.max_request_body!r}"
            )
        for name in ("idle_timeout", "request_timeout", "startup_timeout", "shutdown_timeout"):
            _optional_seconds(name, getattr(self, name))
        if self.unix_socket_mode is not None and not 0 <= self.unix_socket_mode <= 0o7777:
            raise ValueError(f"unix_socket_mode must be a file mode, not {self.unix_socket_mode!r}")

    @property
    def shutdown_deadline(self) -> float:
        """:attr:`shutdown_timeout` as seconds for :func:`anyio.move_on_after` (inf if None)."""
        return math.inf if self.shutdown_timeout is None else self.shutdown_timeout
