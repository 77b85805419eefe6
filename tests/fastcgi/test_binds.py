"""Bind strings and the sockets they open."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from anysgi.fastcgi._binds import (
    Bind,
    BindError,
    describe,
    fd_is_listening_socket,
    open_socket,
    parse_bind,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9000", Bind("tcp", "127.0.0.1:9000", host="127.0.0.1", port=9000)),
        ("localhost:0", Bind("tcp", "localhost:0", host="localhost", port=0)),
        (":9000", Bind("tcp", ":9000", host="", port=9000)),
        ("[::1]:9000", Bind("tcp", "[::1]:9000", host="::1", port=9000)),
        ("unix:/run/app.sock", Bind("unix", "unix:/run/app.sock", path="/run/app.sock")),
        ("unix:///run/app.sock", Bind("unix", "unix:///run/app.sock", path="/run/app.sock")),
        ("fd://0", Bind("fd", "fd://0", fd=0)),
    ],
)
def test_parse(text: str, expected: Bind) -> None:
    assert parse_bind(text) == expected


@pytest.mark.parametrize(
    "text", ["9000", "host:port", "::1:9000", "[::1]9000", "unix:", "fd://x", "h:70000"]
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(BindError, match="bind"):
        parse_bind(text)


def test_tcp_ipv4_and_ipv6() -> None:
    opened = open_socket(parse_bind("127.0.0.1:0"))
    try:
        assert describe(opened.sock).startswith("127.0.0.1:")
    finally:
        opened.close()
    if not socket.has_ipv6:
        return
    try:
        opened = open_socket(parse_bind("[::1]:0"))
    except BindError:
        pytest.skip("no IPv6 loopback here")
    try:
        assert describe(opened.sock).startswith("[::1]:")
        assert opened.sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
    finally:
        opened.close()


def test_port_in_use_is_a_one_line_error() -> None:
    first = open_socket(parse_bind("127.0.0.1:0"))
    try:
        with pytest.raises(BindError, match=r"^cannot listen on 127\.0\.0\.1:\d+: Address"):
            open_socket(parse_bind(describe(first.sock)))
    finally:
        first.close()


def test_unix_socket_mode_stale_file_and_cleanup(tmp_path: Path) -> None:
    path = tmp_path / "app.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # a socket file nobody listens on any more
    opened = open_socket(parse_bind(f"unix:{path}"), unix_socket_mode=0o660)
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
        assert describe(opened.sock) == f"unix:{path}"
        with pytest.raises(BindError, match="another process is listening"):
            open_socket(parse_bind(f"unix:{path}"))
    finally:
        opened.close()
    assert not path.exists()


def test_unix_refuses_to_replace_a_regular_file(tmp_path: Path) -> None:
    path = tmp_path / "important.txt"
    path.write_text("keep me")
    with pytest.raises(BindError, match="exists and is not a socket"):
        open_socket(parse_bind(f"unix:{path}"))
    assert path.read_text() == "keep me"


def test_fd_bind_and_fd_zero_detection() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    fd = listener.detach()
    assert fd_is_listening_socket(fd)
    opened = open_socket(parse_bind(f"fd://{fd}"))
    try:
        assert describe(opened.sock).startswith("127.0.0.1:")
    finally:
        opened.close()
    with open(os.devnull) as not_a_socket:
        assert not fd_is_listening_socket(not_a_socket.fileno())
        with pytest.raises(BindError, match="not a listening socket"):
            open_socket(parse_bind(f"fd://{not_a_socket.fileno()}"))
    connected_pair = socket.socketpair()
    with connected_pair[0], connected_pair[1]:
        assert not fd_is_listening_socket(connected_pair[0].fileno())
