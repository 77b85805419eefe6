"""Bind strings to listening sockets.

Syntax (one or several binds per server):

``host:port``
    TCP on an IPv4 address or a host name (``127.0.0.1:9000``, ``localhost:9000``,
    ``0.0.0.0:9000``). Port 0 picks a free port.
``[v6addr]:port``
    TCP on an IPv6 address (``[::1]:9000``); the socket is IPv6 only.
``unix:/path``
    A Unix socket file. A stale socket file (nothing accepts on it) is replaced; any other
    file, or a socket some process still listens on, is refused.
``fd://N``
    A listening socket inherited as file descriptor *N* (systemd, a supervisor, the pre-fork
    master of ``anysgi serve --workers``, or a web server that spawns us: FastCGI puts its
    listening socket on fd 0, ``FCGI_LISTENSOCK_FILENO``).

Sockets are opened with the :mod:`socket` module, synchronously, so the pre-fork master can
bind before it forks and a bad bind fails before anything else starts.
"""

from __future__ import annotations

import os
import socket
import stat
from dataclasses import dataclass
from typing import Literal

from .protocol import FCGI_LISTENSOCK_FILENO

__all__ = (
    "Bind",
    "BindError",
    "OpenSocket",
    "describe",
    "fd_is_listening_socket",
    "open_socket",
    "parse_bind",
)


class BindError(OSError):
    """A bind string that is malformed, or a socket that cannot be opened for it."""


@dataclass(frozen=True, slots=True)
class Bind:
    """A parsed bind string."""

    kind: Literal["tcp", "unix", "fd"]
    text: str
    host: str = ""
    port: int = 0
    path: str = ""
    fd: int = -1


def parse_bind(text: str) -> Bind:
    """Parse one bind string (see the module documentation).

    :raises BindError: if *text* is not one of the forms above.
    """
    if text.startswith("unix:"):
        path = text[5:]
        if path.startswith("//"):
            path = path[2:]  # unix:///run/app.sock
        if not path:
            raise BindError(f"bind {text!r}: no path after 'unix:'")
        return Bind("unix", text, path=path)
    if text.startswith("fd://"):
        number = text[5:]
        if not number.isdigit():
            raise BindError(f"bind {text!r}: expected fd://N with N a file descriptor number")
        return Bind("fd", text, fd=int(number))
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise BindError(f"bind {text!r}: expected [IPv6 address]:port")
    else:
        host, sep, port = text.rpartition(":")
        if not sep:
            raise BindError(f"bind {text!r}: expected host:port, [::1]:port, unix:/path or fd://N")
        if ":" in host:
            raise BindError(f"bind {text!r}: write IPv6 addresses in brackets, [{host}]:{port}")
    if not port.isdigit() or int(port) > 65535:
        raise BindError(f"bind {text!r}: port must be a number from 0 to 65535, not {port!r}")
    return Bind("tcp", text, host=host, port=int(port))


@dataclass(slots=True)
class OpenSocket:
    """A listening socket and what is needed to clean up after it."""

    sock: socket.socket
    bind: Bind
    #: The Unix socket file this process created (removed on close), if any.
    unix_path: str | None = None
    unix_inode: int | None = None

    def close(self) -> None:
        """Close the socket, and remove the Unix socket file if it is still ours."""
        self.sock.close()
        if self.unix_path is not None:
            try:
                if os.stat(self.unix_path).st_ino == self.unix_inode:
                    os.unlink(self.unix_path)
            except OSError:
                pass  # already gone: nothing to clean up


def _error(bind: Bind, exc: OSError) -> BindError:
    error = BindError(f"cannot listen on {bind.text}: {exc.strerror or exc}")
    error.errno = exc.errno
    return error


def fd_is_listening_socket(fd: int = FCGI_LISTENSOCK_FILENO) -> bool:
    """Whether *fd* is a listening stream socket (what a spawning web server passes as fd 0)."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    if not stat.S_ISSOCK(mode):
        return False
    # A duplicate, so that closing our object never closes the caller's descriptor.
    try:
        probe = socket.socket(fileno=os.dup(fd))
    except OSError:
        return False
    with probe:
        try:
            return probe.type == socket.SOCK_STREAM and bool(
                probe.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
            )
        except OSError:
            return False


def _remove_stale_unix_socket(bind: Bind) -> None:
    path = bind.path
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise BindError(f"cannot listen on {bind.text}: {path} exists and is not a socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            pass  # nobody listens: a stale file left by a server that died
        else:
            raise BindError(f"cannot listen on {bind.text}: another process is listening on {path}")
    os.unlink(path)


def open_socket(
    bind: Bind, *, backlog: int = 1024, unix_socket_mode: int | None = None
) -> OpenSocket:
    """Open a listening socket for *bind*.

    :raises BindError: with a one-line message naming the bind, if it cannot be opened.
    """
    if bind.kind == "fd":
        if not fd_is_listening_socket(bind.fd):
            raise BindError(f"cannot listen on {bind.text}: fd {bind.fd} is not a listening socket")
        sock = socket.socket(fileno=bind.fd)
        sock.setblocking(False)
        return OpenSocket(sock, bind)
    if bind.kind == "unix":
        _remove_stale_unix_socket(bind)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(bind.path)
            st = os.stat(bind.path)
            if unix_socket_mode is not None:
                os.chmod(bind.path, unix_socket_mode)
            sock.listen(backlog)
        except OSError as exc:
            sock.close()
            raise _error(bind, exc) from None
        sock.setblocking(False)
        return OpenSocket(sock, bind, unix_path=bind.path, unix_inode=st.st_ino)
    family = socket.AF_INET6 if bind.text.startswith("[") else socket.AF_UNSPEC
    try:
        infos = socket.getaddrinfo(
            bind.host or None, bind.port, family, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise BindError(f"cannot listen on {bind.text}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise _error(bind, exc) from None
    sock.setblocking(False)
    return OpenSocket(sock, bind)


def describe(sock: socket.socket) -> str:
    """The bind string for a listening socket's actual address (``127.0.0.1:40123``)."""
    address = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        if isinstance(address, bytes):
            address = address.decode(errors="replace")
        return f"unix:{address}" if address else f"fd://{sock.fileno()}"
    if sock.family == socket.AF_INET6:
        return f"[{address[0]}]:{address[1]}"
    return f"{address[0]}:{address[1]}"
