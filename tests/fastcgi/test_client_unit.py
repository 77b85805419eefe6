"""The client's pure parts (addresses, params) and its packaging (unasync, optional httpx)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from anysgi.fastcgi._client_common import Address, parse_address
from anysgi.fastcgi.client import Timeouts, cgi_params

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("127.0.0.1:9000", Address("127.0.0.1", 9000)),
        ("localhost:1", Address("localhost", 1)),
        ("[::1]:9000", Address("::1", 9000)),
        ("unix:/run/php/php-fpm.sock", Address(path="/run/php/php-fpm.sock")),
        ("unix:relative.sock", Address(path="relative.sock")),
    ],
)
def test_addresses(text: str, address: Address) -> None:
    assert parse_address(text) == address
    assert str(address) == text


@pytest.mark.parametrize(
    "text", ["", "9000", ":9000", "host:", "host:0", "host:65536", "::1:9000", "unix:", "host:x"]
)
def test_bad_addresses(text: str) -> None:
    with pytest.raises(ValueError, match="expected"):
        parse_address(text)


def test_address_must_be_text() -> None:
    with pytest.raises(TypeError):
        parse_address(("127.0.0.1", 9000))  # type: ignore[arg-type]


def test_cgi_params_defaults() -> None:
    params = cgi_params("get", "/a%20b/c?x=1")
    assert params == {
        b"SCRIPT_NAME": b"/a b/c",
        b"REQUEST_METHOD": b"GET",
        b"REQUEST_URI": b"/a%20b/c?x=1",
        b"QUERY_STRING": b"x=1",
        b"SERVER_PROTOCOL": b"HTTP/1.1",
        b"GATEWAY_INTERFACE": b"CGI/1.1",
        b"SERVER_SOFTWARE": params[b"SERVER_SOFTWARE"],
        b"REQUEST_SCHEME": b"http",
        b"SERVER_NAME": b"localhost",
        b"SERVER_PORT": b"80",
        b"REMOTE_ADDR": b"127.0.0.1",
        b"HTTP_HOST": b"localhost",
    }
    assert params[b"SERVER_SOFTWARE"].startswith(b"anysgi/")


def test_cgi_params_https_headers_and_body() -> None:
    params = cgi_params(
        "POST",
        "https://example.org/form",
        [
            ("Host", "example.org"),
            ("Content-Type", "text/plain"),
            ("Content-Length", "3"),
            ("Transfer-Encoding", "chunked"),
            ("X-Forwarded-For", "a"),
            ("X-Forwarded-For", "b"),
            ("X_Forwarded_For", "spoof"),
        ],
        remote_addr="192.0.2.1",
    )
    assert params[b"HTTPS"] == b"on"
    assert params[b"SERVER_PORT"] == b"443"
    assert params[b"CONTENT_TYPE"] == b"text/plain"
    assert params[b"CONTENT_LENGTH"] == b"3"
    assert params[b"HTTP_X_FORWARDED_FOR"] == b"a, b"
    assert params[b"HTTP_HOST"] == b"example.org"
    assert params[b"REMOTE_ADDR"] == b"192.0.2.1"
    assert b"HTTP_TRANSFER_ENCODING" not in params
    assert b"HTTP_CONTENT_TYPE" not in params


@pytest.mark.parametrize(
    ("script_name", "url", "expected"),
    [
        (None, "/app/x", {b"SCRIPT_NAME": b"/app/x"}),
        ("/app", "/app/x/y", {b"SCRIPT_NAME": b"/app", b"PATH_INFO": b"/x/y"}),
        ("/app/", "/app", {b"SCRIPT_NAME": b"/app", b"PATH_INFO": b""}),
        ("/app", "/application", {b"SCRIPT_NAME": b"", b"PATH_INFO": b"/application"}),
        ("", "/x", {b"SCRIPT_NAME": b"", b"PATH_INFO": b"/x"}),
    ],
)
def test_mount_point(script_name: str | None, url: str, expected: dict[bytes, bytes]) -> None:
    params = cgi_params("GET", url, script_name=script_name)
    assert {k: params[k] for k in (b"SCRIPT_NAME", b"PATH_INFO") if k in params} == expected


def test_document_root() -> None:
    params = cgi_params("GET", "/index.php", document_root="/var/www/")
    assert params[b"DOCUMENT_ROOT"] == b"/var/www"
    assert params[b"SCRIPT_FILENAME"] == b"/var/www/index.php"
    mounted = cgi_params("GET", "/x/y", script_name="/x", document_root="/srv")
    assert mounted[b"SCRIPT_FILENAME"] == b"/srv/x"


def test_timeouts() -> None:
    assert Timeouts.coerce(3) == Timeouts(3, 3, 3, 3)
    assert Timeouts.coerce(None) == Timeouts(None, None, None, None)
    assert Timeouts.coerce(Timeouts(read=1)).read == 1


def test_sync_client_is_generated_from_the_async_one() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "unasync.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_transport_says_how_to_install_httpx() -> None:
    code = (
        "import sys; sys.modules['httpx'] = None\n"
        "from anysgi.fastcgi.client import FastCGIClient, AsyncFastCGIClient\n"
        "try:\n"
        "    from anysgi.fastcgi.client import FastCGITransport\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert 'pip install "anysgi[httpx]"' in result.stdout


def test_public_names() -> None:
    import anysgi.fastcgi.client as client

    for name in client.__all__:
        assert getattr(client, name) is not None
    with pytest.raises(AttributeError):
        _ = client.Nothing
