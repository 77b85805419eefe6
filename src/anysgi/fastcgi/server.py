"""The FastCGI server: :func:`serve` (async, any anyio backend) and :func:`run` (blocking).

Structure (structured concurrency from accept to response):

* one accept loop per listening socket, all sharing a semaphore of ``max_connections``
  slots: a loop takes a slot *before* it accepts, so at the cap the server stops accepting
  and the kernel's backlog holds new connections;
* one task per connection (:class:`~._handler.ConnectionHandler`), in the connections'
  task group, which owns its stream and closes it in ``finally``;
* each request runs in its connection's task group, in the task that reads the
  connection (a small answer needs no task of its own); once its application waits, the
  reading moves to another task and the request keeps this one (see
  :mod:`anysgi.fastcgi._handler`).

Lifespan startup runs before the first accept; ``task_status.started()`` reports the bound
addresses after it. A graceful stop (the shutdown trigger, or SIGTERM/SIGINT under
:func:`run`) stops accepting, lets requests in flight finish for up to
``shutdown_timeout`` seconds, cancels what is left, and then runs lifespan shutdown.
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import logging
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal

import anyio
import anyio.abc

from anysgi._importer import Interface, detect_interface
from anysgi._lifespan import LifespanManager

from ._binds import OpenSocket, describe, fd_is_listening_socket, open_socket, parse_bind
from ._config import DEFAULT_BIND, LifespanMode, ServerConfig, web_server_addrs_from_env
from ._handler import ConnectionHandler, Promotions, tune_socket
from ._io import SocketIO
from .protocol import (
    DEFAULT_MAX_CONCURRENT_REQUESTS,
    DEFAULT_MAX_PARAMS_SIZE,
    FCGI_LISTENSOCK_FILENO,
)

if TYPE_CHECKING:
    from anysgi._types import ASGIApp

__all__ = ("run", "serve")

logger = logging.getLogger("anysgi.fastcgi")

#: accept() errors that mean "out of a resource for now": back off and try again rather
#: than spin (trio's serve_listeners does the same).
_ACCEPT_RESOURCE_ERRORS: Final = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
)
#: accept() errors that concern only the connection being accepted.
_ACCEPT_PEER_ERRORS: Final = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM})
#: Seconds to wait after an accept() resource error before trying again.
ACCEPT_BACKOFF: Final = 0.1

_UNSET: Any = object()


def _as_asgi(app: Any, interface: Literal["auto", "asgi", "wsgi"], max_threads: int) -> ASGIApp:
    kind: Interface = detect_interface(app) if interface == "auto" else interface
    if kind not in ("asgi", "wsgi"):
        raise ValueError(f"interface must be 'auto', 'asgi' or 'wsgi', not {interface!r}")
    if kind == "asgi":
        return app  # type: ignore[no-any-return]
    # DESIGN.md rule 6: the server speaks ASGI only; a WSGI app goes through WSGI2ASGI.
    from anysgi.wsgi2asgi import WSGI2ASGI

    return WSGI2ASGI(app, max_threads=max_threads)


def _peer_name(sock: socket.socket, address: Any) -> tuple[str, str | None]:
    """A printable name for the peer, and its IP address (None for a Unix socket)."""
    if sock.family == socket.AF_UNIX:
        try:
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
            pid = int.from_bytes(creds[:4], "little")
        except OSError:  # pragma: no cover (Linux has SO_PEERCRED)
            pid = 0
        local = sock.getsockname() or "?"
        return (f"unix:{local} (pid {pid})" if pid else f"unix:{local}"), None
    host, port = address[0], address[1]
    name = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return name, host


class _Server:
    def __init__(self, app: ASGIApp, config: ServerConfig, state: dict[str, Any] | None) -> None:
        self.app = app
        self.config = config
        self.state = state
        self.slots = anyio.Semaphore(config.max_connections)
        self.handlers: set[ConnectionHandler] = set()
        self.draining = False
        self.idle = anyio.Event()
        self.promotions = Promotions()
        allowed = config.web_server_addrs
        self.allowed: frozenset[str] | None = (
            None if allowed is None else frozenset(_normalise_ip(a) for a in allowed)
        )

    async def accept_loop(self, listening: socket.socket, task_group: anyio.abc.TaskGroup) -> None:
        """Accept connections on *listening* for ever, at most max_connections at once."""
        while True:
            # A slot first, then accept: at the cap, connections wait in the kernel's backlog.
            await self.slots.acquire()
            try:
                while True:
                    try:
                        sock, address = listening.accept()
                        break
                    except BlockingIOError:
                        await anyio.wait_readable(listening)
            except OSError as exc:
                self.slots.release()
                if exc.errno in _ACCEPT_RESOURCE_ERRORS:
                    logger.warning(
                        "accept() failed: %s; retrying in %ss (raise the file descriptor "
                        "limit or lower max_connections)",
                        exc.strerror or exc,
                        ACCEPT_BACKOFF,
                    )
                    await anyio.sleep(ACCEPT_BACKOFF)
                    continue
                if exc.errno in _ACCEPT_PEER_ERRORS:
                    continue
                raise
            except BaseException:
                self.slots.release()
                raise
            task_group.start_soon(self.handle, sock, address)

    async def handle(self, sock: socket.socket, address: Any) -> None:
        try:
            try:
                peer, host = _peer_name(sock, address)
                if host is not None:
                    if self.allowed is not None and _normalise_ip(host) not in self.allowed:
                        logger.warning(
                            "refusing the connection from %s: not in FCGI_WEB_SERVER_ADDRS",
                            peer,
                        )
                        sock.close()
                        return
                    tune_socket(sock)
            except OSError:  # the peer left between accept() and now
                sock.close()
                return
            handler = ConnectionHandler(
                SocketIO(sock), self.app, self.config, self.state, peer, self.promotions
            )
            self.handlers.add(handler)
            try:
                if self.draining:
                    handler.drain()
                await handler.run()
            except Exception:
                # A bug of ours in one connection must not take the others down: log it
                # with its traceback (DESIGN.md rule 4) and keep serving.
                logger.exception("internal error on the connection from %s", peer)
            finally:
                self.handlers.discard(handler)
                if self.draining and not self.handlers:
                    self.idle.set()
        finally:
            self.slots.release()

    async def reap_idle(self) -> None:
        """Close connections idle for longer than idle_timeout, checking a few times per it."""
        timeout = self.config.idle_timeout
        if timeout is None:
            return
        interval = min(1.0, timeout / 4)
        while True:
            await anyio.sleep(interval)
            now = time.monotonic()
            for handler in list(self.handlers):
                handler.check_idle(now)

    def drain(self) -> None:
        self.draining = True
        for handler in list(self.handlers):
            handler.drain()
        if not self.handlers:
            self.idle.set()


def _normalise_ip(text: str) -> str:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return text.strip()
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address)


def _open_sockets(config: ServerConfig) -> list[OpenSocket]:
    binds = config.binds
    if not binds:
        binds = (
            (f"fd://{FCGI_LISTENSOCK_FILENO}",)
            if fd_is_listening_socket(FCGI_LISTENSOCK_FILENO)
            else (DEFAULT_BIND,)
        )
    parsed = [parse_bind(text) for text in binds]
    opened: list[OpenSocket] = []
    try:
        opened.extend(
            open_socket(bind, backlog=config.backlog, unix_socket_mode=config.unix_socket_mode)
            for bind in parsed
        )
    except BaseException:
        for sock in opened:
            sock.close()
        raise
    return opened


async def _serve(
    app: ASGIApp,
    config: ServerConfig,
    shutdown_trigger: Callable[[], Awaitable[object]] | None,
    task_status: anyio.abc.TaskStatus[list[str]],
) -> None:
    sockets = _open_sockets(config)
    try:
        addresses = [describe(s.sock) for s in sockets]
        lifespan = LifespanManager(
            app,
            mode=config.lifespan,
            startup_timeout=config.startup_timeout,
            shutdown_timeout=config.shutdown_timeout,
        )
        async with lifespan as state:
            server = _Server(app, config, state if config.lifespan != "off" else None)
            async with anyio.create_task_group() as connections:
                # In the connections' group: requests in flight still need it while draining.
                connections.start_soon(server.promotions.run)
                async with anyio.create_task_group() as accepting:
                    accepting.start_soon(server.reap_idle)
                    for opened in sockets:
                        accepting.start_soon(server.accept_loop, opened.sock, connections)
                    logger.info("serving FastCGI on %s", ", ".join(addresses))
                    task_status.started(addresses)
                    if shutdown_trigger is None:
                        await anyio.sleep_forever()
                    else:
                        await shutdown_trigger()
                    accepting.cancel_scope.cancel()
                for opened in sockets:
                    opened.close()  # nothing waits on them: the accept loops are gone
                running = sum(h.running for h in server.handlers)
                logger.info(
                    "stopping: %d connection(s) open, %d request(s) in flight",
                    len(server.handlers),
                    running,
                )
                server.drain()
                with anyio.move_on_after(config.shutdown_deadline) as drained:
                    await server.idle.wait()
                if drained.cancelled_caught:
                    logger.warning(
                        "cancelling %d request(s) still running after shutdown_timeout=%ss",
                        sum(h.running for h in server.handlers),
                        config.shutdown_timeout,
                    )
                connections.cancel_scope.cancel()
    finally:
        for opened in sockets:
            opened.close()


def _config(
    bind: str | Sequence[str] | None,
    web_server_addrs: Sequence[str] | None,
    **options: Any,
) -> ServerConfig:
    return ServerConfig(
        binds=(bind,) if isinstance(bind, str) else tuple(bind or ()),
        web_server_addrs=(
            web_server_addrs_from_env()
            if web_server_addrs is _UNSET
            else (None if web_server_addrs is None else tuple(web_server_addrs))
        ),
        **options,
    )


async def serve(
    app: Any,
    *,
    bind: str | Sequence[str] | None = None,
    interface: Literal["auto", "asgi", "wsgi"] = "auto",
    root_path: str | None = None,
    lifespan: LifespanMode = "auto",
    max_connections: int = 1000,
    max_requests_per_connection: int = DEFAULT_MAX_CONCURRENT_REQUESTS,
    max_params_size: int = DEFAULT_MAX_PARAMS_SIZE,
    max_request_body: int | None = None,
    request_buffer_size: int = 64 * 1024,
    idle_timeout: float | None = 75.0,
    request_timeout: float | None = None,
    startup_timeout: float | None = 60.0,
    shutdown_timeout: float | None = 30.0,
    backlog: int = 1024,
    unix_socket_mode: int | None = None,
    web_server_addrs: Sequence[str] | None = _UNSET,
    access_log: bool = False,
    max_threads: int = 40,
    shutdown_trigger: Callable[[], Awaitable[object]] | None = None,
    task_status: anyio.abc.TaskStatus[list[str]] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve *app* over FastCGI until *shutdown_trigger* returns (or the task is cancelled).

    In a task group, ``start()`` returns once the server accepts connections, with the
    addresses it listens on::

        async with anyio.create_task_group() as tg:
            addresses = await tg.start(fastcgi.serve, app, bind="127.0.0.1:0")

    :param app: an ASGI 3 application, or a WSGI application (served through
        :class:`anysgi.WSGI2ASGI`).
    :param bind: where to listen: ``"host:port"``, ``"[::1]:port"``, ``"unix:/path"``,
        ``"fd://N"``, or a sequence of them. ``None``: fd 0 if it is a listening socket (the
        web server spawned us, as mod_fcgid does), else ``127.0.0.1:9000``.
    :param interface: ``"asgi"``, ``"wsgi"``, or ``"auto"`` to tell them apart (see
        :doc:`/reference/cli`).
    :param root_path: the mount point, used as the ASGI ``root_path`` whatever the web
        server puts in ``SCRIPT_NAME`` (``force_script_name``; ``""`` under mod_fcgid).
        ``None``: worked out from the params.
    :param lifespan: ``"auto"``: run the lifespan protocol if *app* supports it (an app
        that raises on the lifespan scope before sending anything does not);
        ``"on"``: *app* must support it; ``"off"``: never.
    :param max_connections: most open connections (default 1000); at the cap the server
        stops accepting until one closes.
    :param max_requests_per_connection: most multiplexed requests per connection, advertised
        as ``FCGI_MAX_REQS`` (default 100); a web server that starts more breaks the
        protocol and its connection is closed.
    :param max_params_size: most bytes of PARAMS per request (default 1 MiB); more closes
        the connection.
    :param max_request_body: most bytes of request body (default ``None``, no limit); a
        larger body gets a 413.
    :param request_buffer_size: bytes of unread body held per request before the server
        stops reading the connection (default 64 KiB).
    :param idle_timeout: seconds a connection with no request running stays open (default
        75); ``None`` for ever.
    :param request_timeout: seconds a request may run before it is cancelled with a 504
        (default ``None``, no limit).
    :param startup_timeout: seconds for lifespan startup (default 60).
    :param shutdown_timeout: seconds requests in flight get to finish on a graceful stop,
        and lifespan shutdown after them (default 30).
    :param backlog: accept queue length of the sockets the server opens (default 1024).
    :param unix_socket_mode: file mode of Unix sockets the server creates (``0o660``...);
        default: the umask decides.
    :param web_server_addrs: the IP addresses TCP peers must have; default: the
        ``FCGI_WEB_SERVER_ADDRS`` environment variable, else anyone.
    :param access_log: log each request to the ``anysgi.access`` logger (default off).
    :param max_threads: for a WSGI application, how many requests run at once in threads
        (default 40).
    :param shutdown_trigger: an async callable; when it returns, the server stops
        gracefully. ``None``: run until cancelled.
    :param task_status: ``task_status.started()`` gets the list of bound addresses as bind
        strings (``"127.0.0.1:40123"``, ``"unix:/run/app.sock"``), after lifespan startup.
    :raises OSError: if a bind cannot be opened (the message names the bind).
    :raises Exception: ``LifespanError`` if lifespan startup fails, with the application's
        message.
    """
    config = _config(
        bind,
        web_server_addrs,
        root_path=root_path,
        lifespan=lifespan,
        max_connections=max_connections,
        max_requests_per_connection=max_requests_per_connection,
        max_params_size=max_params_size,
        max_request_body=max_request_body,
        request_buffer_size=request_buffer_size,
        idle_timeout=idle_timeout,
        request_timeout=request_timeout,
        startup_timeout=startup_timeout,
        shutdown_timeout=shutdown_timeout,
        backlog=backlog,
        unix_socket_mode=unix_socket_mode,
        access_log=access_log,
    )
    await _serve(_as_asgi(app, interface, max_threads), config, shutdown_trigger, task_status)


class _Ready:
    """A task status that hands the bound addresses to a callback."""

    def __init__(self, callback: Callable[[list[str]], object] | None) -> None:
        self.callback = callback

    def started(self, value: list[str] | None = None) -> None:
        if self.callback is not None and value is not None:
            self.callback(value)


async def serve_until_signalled(
    app: ASGIApp, config: ServerConfig, ready: Callable[[list[str]], object] | None = None
) -> None:
    """Serve until SIGTERM or SIGINT: the first stops gracefully, a second at once."""
    stop = anyio.Event()
    error: Exception | None = None
    async with anyio.create_task_group() as task_group:

        async def watch_signals() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                # run_config (and a pre-fork worker, see _workers.py) starts with both
                # blocked: from here on they are ours, including one that came meanwhile.
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
                async for signum in signals:
                    name = signal.Signals(signum).name
                    if not stop.is_set():
                        logger.info("%s: stopping gracefully", name)
                        stop.set()
                    else:
                        logger.warning("%s again: stopping now", name)
                        task_group.cancel_scope.cancel()
                        return

        task_group.start_soon(watch_signals)
        try:
            await _serve(app, config, stop.wait, _Ready(ready))
        except Exception as exc:  # noqa: BLE001 (re-raised below, outside the task group)
            # Raised as itself (LifespanError, BindError), not wrapped in an exception group.
            error = exc
        task_group.cancel_scope.cancel()
    if error is not None:
        raise error


def run_config(
    app: ASGIApp,
    config: ServerConfig,
    *,
    backend: str = "asyncio",
    backend_options: dict[str, Any] | None = None,
    ready: Callable[[list[str]], object] | None = None,
) -> None:
    """:func:`run` for an ASGI application and a ready :class:`ServerConfig`."""
    # SIGTERM and SIGINT wait (blocked) until the signal receiver is installed, which
    # unblocks them: a stop asked for while the loop and the app start up is not lost.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    ignored = _unignore(stop_signals)
    try:
        anyio.run(
            functools.partial(serve_until_signalled, app, config, ready),
            backend=backend,
            backend_options=backend_options,
        )
    finally:
        for signum in ignored:
            signal.signal(signum, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _unignore(signals: set[signal.Signals]) -> list[signal.Signals]:
    """Give the default action back to those of *signals* that are ignored (blocked, they
    wait); return which ones were.

    A process started in the background by a non-interactive shell (``cmd &`` in a
    script), and everything it starts in turn, inherits SIGINT ignored. The server stops
    on it all the same once its receiver is installed, but until then it must stay
    pending, and an ignored signal does not: POSIX, sigaction(): "Setting a signal action
    to SIG_IGN for a signal that is pending shall cause the pending signal to be
    discarded", and trio does that while it starts (it probes for the main thread with
    ``signal.signal(SIGINT, signal.getsignal(SIGINT))``). A pre-fork worker that was told
    to stop while it started would then never stop.
    """
    if threading.current_thread() is not threading.main_thread():
        return []  # signal.signal() is for the main thread; so is the signal receiver
    ignored = sorted(s for s in signals if signal.getsignal(s) == signal.SIG_IGN)
    for signum in ignored:
        signal.signal(signum, signal.SIG_DFL)  # blocked: it cannot act before the receiver
    return ignored


def run(
    app: Any,
    *,
    backend: Literal["asyncio", "trio"] = "asyncio",
    backend_options: dict[str, Any] | None = None,
    bind: str | Sequence[str] | None = None,
    interface: Literal["auto", "asgi", "wsgi"] = "auto",
    root_path: str | None = None,
    lifespan: LifespanMode = "auto",
    max_connections: int = 1000,
    max_requests_per_connection: int = DEFAULT_MAX_CONCURRENT_REQUESTS,
    max_params_size: int = DEFAULT_MAX_PARAMS_SIZE,
    max_request_body: int | None = None,
    request_buffer_size: int = 64 * 1024,
    idle_timeout: float | None = 75.0,
    request_timeout: float | None = None,
    startup_timeout: float | None = 60.0,
    shutdown_timeout: float | None = 30.0,
    backlog: int = 1024,
    unix_socket_mode: int | None = None,
    web_server_addrs: Sequence[str] | None = _UNSET,
    access_log: bool = False,
    max_threads: int = 40,
) -> None:
    """Serve *app* over FastCGI in a new event loop until SIGTERM or SIGINT.

    The first signal stops the server gracefully (see :func:`serve`); a second one stops
    it at once. Returns normally after a graceful stop::

        from anysgi import fastcgi
        fastcgi.run(app, bind="unix:/run/app.sock", backend="trio")

    :param backend: ``"asyncio"`` or ``"trio"``.
    :param backend_options: passed to :func:`anyio.run`, such as ``{"use_uvloop": True}``.

    Every other parameter is :func:`serve`'s, with the same default.
    """
    config = _config(
        bind,
        web_server_addrs,
        root_path=root_path,
        lifespan=lifespan,
        max_connections=max_connections,
        max_requests_per_connection=max_requests_per_connection,
        max_params_size=max_params_size,
        max_request_body=max_request_body,
        request_buffer_size=request_buffer_size,
        idle_timeout=idle_timeout,
        request_timeout=request_timeout,
        startup_timeout=startup_timeout,
        shutdown_timeout=shutdown_timeout,
        backlog=backlog,
        unix_socket_mode=unix_socket_mode,
        access_log=access_log,
    )
    run_config(
        _as_asgi(app, interface, max_threads),
        config,
        backend=backend,
        backend_options=backend_options,
    )
