"""``anysgi request``, through ``main([...])``, against scripted servers and php-fpm."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from anysgi.cli import main
from anysgi.fastcgi import protocol as p

from .fastcgi._fake_server import FakeConnection, fake_server
from .fastcgi._php_fpm import PhpFpm, php_fpm

__all__ = ("php_fpm",)


def split(output: bytes) -> tuple[list[bytes], bytes]:
    head, _, body = output.partition(b"\r\n\r\n")
    return head.split(b"\r\n"), body


def test_get_prints_status_headers_and_body(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    with fake_server() as server:
        status = main(["request", server.address, "/x?y=1", "-H", "X-Thing: a b"])
    assert status == 0
    head, body = split(capsysbinary.readouterr().out)
    assert head == [b"200 OK", b"Content-Type: application/json"]
    echoed = json.loads(body)
    params = echoed["params"]
    assert params["REQUEST_METHOD"] == "GET"
    assert params["REQUEST_URI"] == "/x?y=1"
    assert params["HTTP_X_THING"] == "a b"
    assert echoed["keep_conn"] is False


def test_post_data_params_and_body_only(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    with fake_server() as server:
        status = main(
            [
                "request",
                server.address,
                "/form",
                "-d",
                "a=1",
                "-p",
                "SCRIPT_FILENAME=/srv/form.php",
                "--script-name",
                "",
                "--body-only",
            ]
        )
    assert status == 0
    echoed = json.loads(capsysbinary.readouterr().out)
    assert echoed["body"] == "a=1"
    params = echoed["params"]
    assert params["REQUEST_METHOD"] == "POST"
    assert params["CONTENT_LENGTH"] == "3"
    assert params["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    assert params["SCRIPT_FILENAME"] == "/srv/form.php"
    assert params["PATH_INFO"] == "/form"


def test_data_from_a_file(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    upload = tmp_path / "upload.bin"
    upload.write_bytes(b"z" * 200_000)
    with fake_server() as server:
        status = main(
            [
                "request",
                server.address,
                "-X",
                "PUT",
                "-d",
                f"@{upload}",
                "-H",
                "Content-Type: x/y",
                "-b",
            ]
        )
    assert status == 0
    echoed = json.loads(capsysbinary.readouterr().out)
    assert echoed["params"]["REQUEST_METHOD"] == "PUT"
    assert echoed["params"]["CONTENT_LENGTH"] == "200000"
    assert echoed["params"]["CONTENT_TYPE"] == "x/y"
    assert echoed["body"] == "z" * 200_000


def test_error_status_and_stderr(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    def handler(connection: FakeConnection) -> None:
        request = connection.read_request()
        assert request is not None
        connection.send(p.Stderr(request.request_id, b"it broke\n"))
        connection.respond(request, b"oops", head=b"Status: 503 Service Unavailable\r\n")

    with fake_server(handler) as server:
        status = main(["request", server.address, "/"])
    captured = capsysbinary.readouterr()
    assert status == 1
    assert captured.out == b"503 Service Unavailable\r\n\r\noops"
    assert captured.err == b"FastCGI stderr: it broke\n"


def test_quiet(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    with fake_server() as server:
        assert main(["request", server.address, "-q"]) == 0
    assert capsysbinary.readouterr() == (b"", b"")


def test_nothing_listening(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
        assert main(["request", address, "/health"]) == 3
    err = capsysbinary.readouterr().err
    assert b"cannot connect" in err


def test_broken_server(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    def handler(connection: FakeConnection) -> None:
        connection.read_request()
        connection.send_raw(b"HTTP/1.1 200 OK\r\n\r\n")

    with fake_server(handler) as server:
        assert main(["request", server.address]) == 3
    assert b"version byte" in capsysbinary.readouterr().err


def test_timeout(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    def handler(connection: FakeConnection) -> None:
        while not isinstance(connection.next_event(), p.ConnectionClosed):
            pass  # never answers

    with fake_server(handler) as server:
        assert main(["request", server.address, "--timeout", "0.2"]) == 3
    assert b"sent nothing for 0.2 s" in capsysbinary.readouterr().err


def test_values(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    with fake_server(values={p.FCGI_MAX_CONNS: b"7", p.FCGI_MPXS_CONNS: b"1"}) as server:
        assert main(["request", server.address, "--values"]) == 0
    assert capsysbinary.readouterr().out == b"FCGI_MAX_CONNS=7\nFCGI_MPXS_CONNS=1\n"


@pytest.mark.parametrize(
    "argv",
    [
        ["-H", "no colon"],
        ["-p", "NOEQUALS"],
        ["-d", "@/nonexistent/file"],
    ],
)
def test_bad_arguments(argv: list[str], capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["request", "127.0.0.1:9", *argv]) == 2
    assert capsysbinary.readouterr().err.startswith(b"anysgi request: ")


def test_bad_address(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["request", "nowhere", "/"]) == 3
    assert b"expected 'host:port'" in capsysbinary.readouterr().err


def test_python_dash_m() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "anysgi", "request", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert "exit status" in result.stdout.lower()


@pytest.mark.servers
def test_against_php_fpm(php_fpm: PhpFpm, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["request", php_fpm.unix, "/ping", "-p", "SCRIPT_FILENAME=/ping"]) == 0
    head, body = split(capsysbinary.readouterr().out)
    assert head[0] == b"200 OK"
    assert body == b"pong"
    assert (
        main(["request", php_fpm.tcp, "/status?json", "-p", "SCRIPT_FILENAME=/status", "-b"]) == 0
    )
    assert json.loads(capsysbinary.readouterr().out)["pool"] == "tcp"
    assert (
        main(
            ["request", php_fpm.tcp, "/server.php", "--root", str(php_fpm.root), "-d", "x=1", "-b"]
        )
        == 0
    )
    assert json.loads(capsysbinary.readouterr().out)["post"] == {"x": "1"}
    assert main(["request", php_fpm.tcp, "/missing.php", "--root", str(php_fpm.root)]) == 1
    captured = capsysbinary.readouterr()
    assert captured.out.startswith(b"404 Not Found\r\n")
    assert captured.err == b"FastCGI stderr: Primary script unknown\n"
