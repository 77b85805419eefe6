"""The pure translation core: CGI params <-> ASGI scope <-> WSGI environ, status, CGI heads."""

from __future__ import annotations

import ast
import io
import sys
import wsgiref.validate
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from anysgi import _cgi
from anysgi._cgi import (
    CGIResponseError,
    cgi_response_head,
    environ_from_scope,
    http_version_from_protocol,
    parse_cgi_response_head,
    parse_status_line,
    scope_from_environ,
    scope_from_params,
    split_cgi_response,
    status_line,
)

from . import captures

# --- purity --------------------------------------------------------------------------------


def test_cgi_imports_only_the_standard_library_at_run_time() -> None:
    tree = ast.parse(Path(_cgi.__file__).read_text())
    for node in tree.body:  # module level only: TYPE_CHECKING imports sit inside an `if`
        if isinstance(node, ast.Import):
            roots = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"relative import at line {node.lineno}"
            roots = [(node.module or "").split(".")[0]]
        else:
            continue
        for root in roots:
            assert root == "__future__" or root in sys.stdlib_module_names, root


# --- params -> scope, with what real front ends send ---------------------------------------


def header_dict(headers: Iterable[tuple[bytes, bytes]]) -> dict[bytes, list[bytes]]:
    out: dict[bytes, list[bytes]] = {}
    for name, value in headers:
        out.setdefault(name, []).append(value)
    return out


def test_nginx_stock_get() -> None:
    scope = scope_from_params(dict(captures.NGINX_GET))
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["method"] == "GET"
    assert scope["http_version"] == "1.1"
    assert scope["scheme"] == "http"
    # nginx puts the whole (decoded) path in SCRIPT_NAME: it is not a mount point.
    assert scope["path"] == "/café/a b"
    assert scope["root_path"] == ""
    assert scope["raw_path"] == b"/caf%C3%A9/a%20b"
    assert scope["query_string"] == b"x=1&y=%2F"
    assert scope["client"] == ("127.0.0.1", 53104)
    assert scope["server"] == ("127.0.0.1", 18080)
    # Empty CONTENT_TYPE/CONTENT_LENGTH mean "absent", not empty headers (fcgisgi's bug).
    assert scope["headers"] == [
        (b"host", b"127.0.0.1"),
        (b"user-agent", b"curl/7.88.1"),
        (b"accept", b"*/*"),
        (b"x-custom", b"one"),
        (b"cookie", b"a=1"),
    ]
    assert scope["extensions"]["fastcgi"]["params"] == dict(captures.NGINX_GET)


def test_nginx_stock_post_has_one_content_type_and_length() -> None:
    # nginx sends both CONTENT_LENGTH and HTTP_CONTENT_LENGTH (and the same for the type).
    scope = scope_from_params(dict(captures.NGINX_POST))
    headers = header_dict(scope["headers"])
    assert headers[b"content-type"] == [b"application/x-www-form-urlencoded"]
    assert headers[b"content-length"] == [b"11"]
    assert scope["method"] == "POST"
    assert scope["path"] == "/submit"
    assert scope["query_string"] == b""


def test_apache_mod_proxy_fcgi_get() -> None:
    scope = scope_from_params(dict(captures.APACHE_GET))
    assert scope["path"] == "/café/a b"
    assert scope["root_path"] == ""
    assert scope["raw_path"] == b"/caf%C3%A9/a%20b"
    assert scope["query_string"] == b"x=1&y=%2F"
    assert scope["server"] == ("127.0.0.1", 18081)
    assert header_dict(scope["headers"])[b"host"] == [b"127.0.0.1:18081"]
    assert b"content-type" not in header_dict(scope["headers"])


def test_apache_mod_proxy_fcgi_post() -> None:
    scope = scope_from_params(dict(captures.APACHE_POST))
    headers = header_dict(scope["headers"])
    assert headers[b"content-length"] == [b"11"]
    assert headers[b"content-type"] == [b"application/x-www-form-urlencoded"]


def test_mod_fcgid_script_name_is_not_the_mount() -> None:
    # .htaccess rewrites /foo/bar to /index.fcgi/foo/bar: the client asked for /foo/bar.
    params = {
        b"SCRIPT_NAME": b"/index.fcgi",
        b"PATH_INFO": b"/foo/bar",
        b"REQUEST_URI": b"/foo/bar?q=1",
        b"QUERY_STRING": b"q=1",
        b"REQUEST_METHOD": b"GET",
    }
    scope = scope_from_params(params)
    assert (scope["root_path"], scope["path"]) == ("", "/foo/bar")
    # The URL with the script in it still routes: the script is then the mount point.
    params[b"REQUEST_URI"] = b"/index.fcgi/foo/bar"
    scope = scope_from_params(params)
    assert (scope["root_path"], scope["path"]) == ("/index.fcgi", "/index.fcgi/foo/bar")


def test_force_script_name_overrides_the_mount() -> None:
    params = {
        b"SCRIPT_NAME": b"/~user/index.fcgi",
        b"PATH_INFO": b"/page",
        b"REQUEST_URI": b"/~user/page",
    }
    scope = scope_from_params(params, force_script_name="/~user/")
    assert (scope["root_path"], scope["path"]) == ("/~user", "/~user/page")
    scope = scope_from_params(params, force_script_name="")
    assert scope["root_path"] == ""


def test_nginx_split_path_info_gives_the_mount() -> None:
    params = {b"SCRIPT_NAME": b"/app", b"PATH_INFO": b"/x/y", b"REQUEST_URI": b"/app/x/y"}
    scope = scope_from_params(params)
    assert (scope["root_path"], scope["path"]) == ("/app", "/app/x/y")
    # A path that only shares a prefix with the mount is not below it.
    params = {b"SCRIPT_NAME": b"/app", b"REQUEST_URI": b"/application"}
    assert scope_from_params(params)["root_path"] == ""


def test_without_request_uri_the_cgi_rule_applies() -> None:
    params = {b"SCRIPT_NAME": b"/app", b"PATH_INFO": b"/caf\xc3\xa9 100%", b"QUERY_STRING": b"a=b"}
    scope = scope_from_params(params)
    assert scope["root_path"] == "/app"
    assert scope["path"] == "/app/café 100%"
    assert scope["raw_path"] == b"/app/caf%C3%A9%20100%25"
    assert scope["query_string"] == b"a=b"


def test_empty_params_give_a_usable_scope() -> None:
    scope = scope_from_params({})
    assert scope["method"] == "GET"
    assert scope["path"] == "/"
    assert scope["raw_path"] == b"/"
    assert scope["client"] is None
    assert scope["server"] is None
    assert scope["headers"] == []


def test_invalid_utf8_in_the_path_does_not_crash_and_survives() -> None:
    scope = scope_from_params({b"REQUEST_URI": b"/a%FFb%C3"})
    assert scope["path"] == "/a\udcffb\udcc3"
    environ = environ_from_scope(scope)
    assert environ["PATH_INFO"] == "/a\xffb\xc3"
    assert scope_from_environ(environ)["path"] == scope["path"]


def test_query_from_request_uri_when_query_string_is_missing() -> None:
    scope = scope_from_params({b"REQUEST_URI": b"/p?x=%20"})
    assert scope["query_string"] == b"x=%20"
    assert scope["raw_path"] == b"/p"


def test_absolute_form_request_uri() -> None:
    scope = scope_from_params({b"REQUEST_URI": b"http://example.com/a/b?c"})
    assert (scope["path"], scope["raw_path"], scope["query_string"]) == ("/a/b", b"/a/b", b"c")
    scope = scope_from_params({b"REQUEST_URI": b"https://example.com"})
    assert scope["path"] == "/"


@pytest.mark.parametrize(
    ("params", "scheme"),
    [
        ({b"HTTPS": b"on"}, "https"),
        ({b"HTTPS": b"ON", b"REQUEST_SCHEME": b"http"}, "https"),
        ({b"HTTPS": b"1"}, "https"),
        ({b"HTTPS": b"off"}, "http"),  # IIS sends "off"
        ({b"HTTPS": b"off", b"REQUEST_SCHEME": b"https"}, "https"),
        ({b"REQUEST_SCHEME": b"HTTPS"}, "https"),
        ({b"REQUEST_SCHEME": b""}, "http"),
        ({}, "http"),
    ],
)
def test_scheme(params: dict[bytes, bytes], scheme: str) -> None:
    assert scope_from_params(params)["scheme"] == scheme


@pytest.mark.parametrize(
    ("protocol", "version"),
    [
        ("HTTP/1.1", "1.1"),
        ("HTTP/1.0", "1.0"),
        ("HTTP/2.0", "2"),
        ("HTTP/2", "2"),
        ("http/2.0", "2"),
        ("HTTP/3", "3"),
        ("HTTP/0.9", "1.0"),
        ("INCLUDED", "1.1"),
        ("", "1.1"),
    ],
)
def test_http_version(protocol: str, version: str) -> None:
    assert http_version_from_protocol(protocol) == version


def test_bad_ports_are_tolerated() -> None:
    scope = scope_from_params(
        {
            b"REMOTE_ADDR": b"::1",
            b"REMOTE_PORT": b"x",
            b"SERVER_NAME": b"h",
            b"SERVER_PORT": b"99999",
        }
    )
    assert scope["client"] == ("::1", 0)
    assert scope["server"] == ("h", None)


# --- scope -> environ ----------------------------------------------------------------------


def base_scope(**overrides: Any) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": [],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    scope.update(overrides)
    return scope


def run_validated(environ: dict[str, Any]) -> dict[str, Any]:
    """Call a wsgiref.validate-wrapped app with *environ*: it checks PEP 3333 compliance."""
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.update(environ)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    environ = {**environ, "wsgi.input": io.BytesIO(b""), "wsgi.errors": io.StringIO()}
    body = wsgiref.validate.validator(app)(environ, lambda s, h, e=None: lambda d: None)
    assert list(body) == [b"ok"]
    body.close()  # type: ignore[attr-defined]
    return seen


def test_environ_is_pep3333_valid_and_complete() -> None:
    scope = base_scope(
        method="POST",
        path="/app/caf\u00e9",
        raw_path=b"/app/caf%C3%A9",
        root_path="/app",
        query_string=b"a=1&b=%20",
        headers=[
            (b"host", b"example.com"),
            (b"content-type", b"text/plain"),
            (b"content-length", b"5"),
            (b"x-forwarded-for", b"1.1.1.1"),
            (b"x-forwarded-for", b"2.2.2.2"),
            (b"cookie", b"a=1"),
            (b"cookie", b"b=2"),
        ],
        http_version="2",
        scheme="https",
    )
    environ = run_validated(environ_from_scope(scope))
    assert environ["REQUEST_METHOD"] == "POST"
    assert environ["SCRIPT_NAME"] == "/app"
    assert environ["PATH_INFO"] == "/caf\xc3\xa9"  # PEP 3333 bytes-as-latin-1
    assert environ["QUERY_STRING"] == "a=1&b=%20"
    assert environ["REQUEST_URI"] == "/app/caf%C3%A9?a=1&b=%20"
    assert environ["CONTENT_TYPE"] == "text/plain"
    assert environ["CONTENT_LENGTH"] == "5"
    assert "HTTP_CONTENT_TYPE" not in environ
    assert environ["HTTP_HOST"] == "example.com"
    assert environ["HTTP_X_FORWARDED_FOR"] == "1.1.1.1, 2.2.2.2"
    assert environ["HTTP_COOKIE"] == "a=1; b=2"
    assert environ["SERVER_PROTOCOL"] == "HTTP/2.0"
    assert environ["SERVER_NAME"] == "127.0.0.1"
    assert environ["SERVER_PORT"] == "8000"
    assert environ["REMOTE_ADDR"] == "127.0.0.1"
    assert environ["REMOTE_PORT"] == "5000"
    assert environ["wsgi.url_scheme"] == "https"
    assert environ["wsgi.multithread"] is True
    assert environ["asgi.scope"] is scope


def test_environ_path_info_excludes_the_mount_only_at_a_segment_boundary() -> None:
    environ = environ_from_scope(base_scope(path="/application", root_path="/app"))
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == ("/app", "/application")
    environ = environ_from_scope(base_scope(path="/app", root_path="/app"))
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == ("/app", "")


def test_underscore_headers_are_dropped() -> None:
    scope = base_scope(headers=[(b"x-real-ip", b"good"), (b"x_real_ip", b"spoofed")])
    environ = environ_from_scope(scope)
    assert environ["HTTP_X_REAL_IP"] == "good"


@pytest.mark.parametrize(
    ("server", "headers", "scheme", "expected"),
    [
        (None, [(b"host", b"example.com:8443")], "https", ("example.com", "8443")),
        (None, [(b"host", b"example.com")], "https", ("example.com", "443")),
        (None, [(b"host", b"[::1]")], "http", ("[::1]", "80")),
        (None, [(b"host", b"[::1]:81")], "http", ("[::1]", "81")),
        (None, [], "http", ("localhost", "80")),
        (("unix.sock", None), [], "http", ("unix.sock", "80")),
    ],
)
def test_server_name_and_port_always_present(
    server: Any, headers: Any, scheme: str, expected: tuple[str, str]
) -> None:
    environ = run_validated(
        environ_from_scope(base_scope(server=server, headers=headers, scheme=scheme))
    )
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == expected


def test_environ_without_client() -> None:
    environ = run_validated(environ_from_scope(base_scope(client=None)))
    assert "REMOTE_ADDR" not in environ


# --- environ -> scope ----------------------------------------------------------------------


def test_scope_from_a_wsgi_server_environ() -> None:
    environ = {
        "REQUEST_METHOD": "put",
        "SCRIPT_NAME": "/mount",
        "PATH_INFO": "/caf\xc3\xa9",
        "QUERY_STRING": "x=%2F",
        "SERVER_NAME": "example.com",
        "SERVER_PORT": "8080",
        "SERVER_PROTOCOL": "HTTP/1.0",
        "REMOTE_ADDR": "10.0.0.1",
        "REMOTE_PORT": "4000",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": "",
        "HTTP_HOST": "example.com:8080",
        "HTTP_X_A_B": "c",
        "wsgi.url_scheme": "https",
        "wsgi.input": io.BytesIO(),
    }
    scope = scope_from_environ(environ)
    assert scope["method"] == "PUT"
    assert scope["root_path"] == "/mount"
    assert scope["path"] == "/mount/café"
    assert scope["raw_path"] == b"/mount/caf%C3%A9"
    assert scope["query_string"] == b"x=%2F"
    assert scope["http_version"] == "1.0"
    assert scope["scheme"] == "https"
    assert scope["client"] == ("10.0.0.1", 4000)
    assert scope["server"] == ("example.com", 8080)
    assert scope["headers"] == [
        (b"host", b"example.com:8080"),
        (b"x-a-b", b"c"),
        (b"content-type", b"application/json"),
    ]
    assert scope["extensions"]["wsgi"]["environ"] is environ


def test_scope_from_environ_prefers_the_raw_uri() -> None:
    # gunicorn's RAW_URI keeps %2F that PATH_INFO has decoded into a slash.
    environ = {"PATH_INFO": "/a/b", "RAW_URI": "/a%2Fb?q", "SERVER_NAME": "h", "SERVER_PORT": "80"}
    scope = scope_from_environ(environ)
    assert (scope["path"], scope["raw_path"]) == ("/a/b", b"/a%2Fb")


def test_scope_from_a_minimal_environ() -> None:
    scope = scope_from_environ({"REQUEST_METHOD": "GET"})
    assert (scope["path"], scope["raw_path"], scope["client"], scope["server"]) == (
        "/",
        b"/",
        None,
        None,
    )


# --- status lines --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "line"),
    [(200, "200 OK"), (404, "404 Not Found"), (418, "418 I'm a Teapot"), (799, "799 Unknown")],
)
def test_status_line(code: int, line: str) -> None:
    assert status_line(code) == line
    assert parse_status_line(line) == code


@pytest.mark.parametrize("code", [99, 1000, -1, True, 200.0])
def test_status_line_rejects_non_codes(code: Any) -> None:
    with pytest.raises(ValueError, match="HTTP status"):
        status_line(code)


@pytest.mark.parametrize("line", ["", "20", "200OK", "abc OK", "099 Low", "\uff12\uff10\uff10 OK"])
def test_parse_status_line_rejects_garbage(line: str) -> None:
    with pytest.raises(ValueError, match="malformed HTTP status"):
        parse_status_line(line)


def test_parse_status_line_without_reason() -> None:
    assert parse_status_line("204") == 204


# --- CGI response heads --------------------------------------------------------------------


def test_cgi_response_head_puts_status_first() -> None:
    head = cgi_response_head(404, [(b"content-type", b"text/plain"), (b"x-a", b"")])
    assert head == b"Status: 404 Not Found\r\ncontent-type: text/plain\r\nx-a: \r\n\r\n"


@pytest.mark.parametrize(
    "header",
    [(b"x", b"a\r\nInjected: 1"), (b"x", b"a\nb"), (b"", b"v"), (b"a:b", b"v"), (b"a\r", b"v")],
)
def test_cgi_response_head_refuses_injection(header: tuple[bytes, bytes]) -> None:
    with pytest.raises(CGIResponseError):
        cgi_response_head(200, [header])


_HEADER_BYTES = st.binary(max_size=12) | st.sampled_from(
    [b"content-type", b"x", b"a:b", b"\r", b"\n", b"v\r\nx: 1", b"", b"ok"]
)


@given(
    status=st.sampled_from([200, 404, 299, 999]),
    headers=st.lists(st.tuples(_HEADER_BYTES, _HEADER_BYTES), max_size=5),
)
def test_cgi_response_head_matches_a_plain_construction(
    status: int, headers: list[tuple[bytes, bytes]]
) -> None:
    # The fast path checks values by counting line ends over the whole block and caches
    # the names it has checked: it must refuse and accept exactly what a check of every
    # name and value would, whatever was cached by earlier examples.
    def bad(name: bytes, value: bytes) -> bool:
        return not name or any(c in name for c in b":\r\n") or b"\r" in value or b"\n" in value

    if any(bad(name, value) for name, value in headers):
        with pytest.raises(CGIResponseError):
            cgi_response_head(status, headers)
        return
    expected = b"Status: " + status_line(status).encode() + b"\r\n"
    expected += b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    assert cgi_response_head(status, headers) == expected + b"\r\n"


def test_cgi_response_head_takes_bytearray_names() -> None:
    head = cgi_response_head(200, [(cast(bytes, bytearray(b"x-a")), b"1")])
    assert head == b"Status: 200 OK\r\nx-a: 1\r\n\r\n"
    with pytest.raises(CGIResponseError):
        cgi_response_head(200, [(cast(bytes, bytearray(b"x:a")), b"1")])


def test_split_and_parse_a_php_fpm_style_response() -> None:
    data = (
        b"Status: 201 Created\r\nContent-type: text/html; charset=UTF-8\r\nX-A:  b \r\n"
        b"\r\nbody\r\n\r\nmore"
    )
    split = split_cgi_response(data)
    assert split is not None
    head, body = split
    assert body == b"body\r\n\r\nmore"
    status, headers = parse_cgi_response_head(head)
    assert status == 201
    assert headers == [(b"Content-type", b"text/html; charset=UTF-8"), (b"X-A", b"b")]


@pytest.mark.parametrize(
    ("data", "head", "body"),
    [
        (b"A: 1\n\nx", b"A: 1", b"x"),
        (b"A: 1\r\n\nx", b"A: 1", b"x"),
        (b"A: 1\n\r\nx", b"A: 1", b"x"),
        (b"\r\nx", b"", b"x"),
        (b"\nx", b"", b"x"),
    ],
)
def test_split_accepts_lf_and_crlf(data: bytes, head: bytes, body: bytes) -> None:
    assert split_cgi_response(data) == (head, body)


def test_split_waits_for_the_blank_line() -> None:
    assert split_cgi_response(b"Status: 200 OK\r\nA: b\r\n") is None
    assert split_cgi_response(b"") is None


def test_location_without_status_is_a_redirect() -> None:
    assert parse_cgi_response_head(b"Location: /elsewhere")[0] == 302
    assert parse_cgi_response_head(b"Location: /x\r\nStatus: 301")[0] == 301
    assert parse_cgi_response_head(b"Content-Type: text/plain")[0] == 200
    assert parse_cgi_response_head(b"") == (200, [])


@pytest.mark.parametrize("head", [b"no colon here", b"Status: abc", b": empty", b" A: folded"])
def test_parse_refuses_malformed_heads(head: bytes) -> None:
    with pytest.raises(CGIResponseError):
        parse_cgi_response_head(head)


# --- properties ----------------------------------------------------------------------------

# Path segments: unicode text, characters that need escaping, and raw bytes that are not
# UTF-8 (kept through surrogateescape).
segment_bytes = st.one_of(
    st.text(min_size=1, max_size=8).map(lambda s: s.encode("utf-8")),
    st.binary(min_size=1, max_size=4),
    st.sampled_from([b"%", b"%2F", b" ", b"?", b"#", b";"]),
).map(lambda b: b.replace(b"/", b"_"))
path_bytes = st.lists(segment_bytes, max_size=4).map(lambda segs: b"/" + b"/".join(segs))
token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12).filter(
    lambda s: s not in ("content-type", "content-length") and not s.startswith("-")
)
header_value = st.binary(max_size=20).filter(lambda v: b"\r" not in v and b"\n" not in v)
query = st.binary(max_size=20).map(lambda b: quote_from_bytes(b, safe="=&").encode("ascii"))


@st.composite
def nginx_style_params(draw: st.DrawFn) -> dict[bytes, bytes]:
    """Params as nginx sends them, for a request that may sit below a mount point."""
    mount = draw(st.sampled_from([b"", b"/app", b"/caf\xc3\xa9"]))
    path = mount + draw(path_bytes)
    q = draw(query)
    params = {
        b"REQUEST_METHOD": draw(st.sampled_from([b"GET", b"POST", b"DELETE", b"PATCH"])),
        b"REQUEST_URI": quote_from_bytes(path, safe="/").encode("ascii") + (b"?" + q if q else b""),
        b"QUERY_STRING": q,
        b"SCRIPT_NAME": mount,
        b"PATH_INFO": path[len(mount) :],
        b"SERVER_PROTOCOL": draw(st.sampled_from([b"HTTP/1.0", b"HTTP/1.1", b"HTTP/2.0"])),
        b"REMOTE_ADDR": b"10.1.2.3",
        b"REMOTE_PORT": b"40000",
        b"SERVER_NAME": b"example.org",
        b"SERVER_PORT": b"443",
        b"HTTPS": draw(st.sampled_from([b"on", b""])),
        b"CONTENT_TYPE": draw(st.sampled_from([b"", b"text/plain"])),
        b"CONTENT_LENGTH": draw(st.sampled_from([b"", b"0", b"12"])),
    }
    for name in draw(st.lists(token, unique=True, max_size=5)):
        params[b"HTTP_" + name.upper().replace("-", "_").encode()] = draw(header_value)
    return params


@given(nginx_style_params())
@example(
    {
        b"REQUEST_URI": b"/caf%C3%A9/%FF%20x?a=%2F",
        b"SCRIPT_NAME": b"/caf\xc3\xa9",
        b"PATH_INFO": b"/\xff x",
    }
)
def test_params_scope_environ_scope_round_trip(params: dict[bytes, bytes]) -> None:
    scope = scope_from_params(params)
    environ = environ_from_scope(scope)
    again = scope_from_environ(environ)
    for key in ("method", "path", "raw_path", "query_string", "root_path", "scheme", "client"):
        assert again[key] == scope[key], key
    assert again["http_version"] == scope["http_version"]
    assert sorted(again["headers"]) == sorted(scope["headers"])
    # The WSGI view of the path is the same bytes the client sent, split at the mount.
    full = (environ["SCRIPT_NAME"] + environ["PATH_INFO"]).encode("latin-1")
    assert full == scope["path"].encode("utf-8", "surrogateescape")


@st.composite
def asgi_scopes(draw: st.DrawFn) -> dict[str, Any]:
    mount = draw(st.sampled_from(["", "/app", "/ünï"]))
    path = mount + draw(path_bytes).decode("utf-8", "surrogateescape")
    headers = draw(st.lists(st.tuples(token.map(str.encode), header_value), max_size=6))
    return base_scope(
        path=path,
        raw_path=quote_from_bytes(path.encode("utf-8", "surrogateescape"), safe="/").encode(),
        root_path=mount,
        query_string=draw(query),
        headers=headers,
        method=draw(st.sampled_from(["GET", "PUT"])),
    )


@given(asgi_scopes())
def test_scope_environ_scope_round_trip(scope: dict[str, Any]) -> None:
    environ = environ_from_scope(scope)
    again = scope_from_environ(environ)
    for key in ("method", "path", "raw_path", "query_string", "root_path", "client", "server"):
        assert again[key] == scope[key], key
    # Repeated headers come back joined, in first-seen order.
    joined: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        sep = b"; " if name == b"cookie" else b", "
        joined[name] = joined[name] + sep + value if name in joined else value
    assert sorted(again["headers"]) == sorted(joined.items())


def test_name_caches_stay_bounded_and_correct() -> None:
    # A client sending ever new header names must not grow the caches without bound.
    for i in range(1500):
        name = f"x-h{i}".encode()
        scope = scope_from_params({b"HTTP_X_H%d" % i: b"v"})
        assert scope["headers"] == [(name, b"v")]
        environ = environ_from_scope(base_scope(headers=[(name, b"v")]))
        assert environ[f"HTTP_X_H{i}"] == "v"
        assert scope_from_environ(environ)["headers"] == [(name, b"v")]
    for cache in (_cgi._HEADER_NAMES, _cgi._ENVIRON_KEYS, _cgi._WSGI_HEADER_NAMES):
        assert 0 < len(cache) <= _cgi._NAME_CACHE_MAX
