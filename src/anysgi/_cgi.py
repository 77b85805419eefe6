"""Pure translation between CGI params, the ASGI ``http`` scope and the WSGI environ.

Everything every adapter and the FastCGI server share, and nothing else: no I/O, and only
the standard library at run time (``tests/test_purity.py`` enforces it). Each function is a
single pass over its input, because it runs once per request on the hot path.

Three string worlds meet here:

* CGI/FastCGI params are bytes (RFC 3875 meta-variables, plus what nginx and Apache add).
* ASGI (HTTP spec, "Connection Scope"): ``path`` is a str "with percent-encoded sequences
  and UTF-8 byte sequences decoded into characters", ``raw_path`` and ``query_string`` are
  bytes, header names are lower-cased bytes, and ``path`` *includes* ``root_path``.
* WSGI (PEP 3333, "Unicode Issues"): every environ value is a native str holding bytes as
  latin-1 ("bytes-as-unicode"), and ``SCRIPT_NAME + PATH_INFO`` is the path.

Bytes that are not valid UTF-8 in a path are kept with ``surrogateescape`` rather than
replaced, so they survive any round trip (scope -> environ -> scope gives the same bytes)
and never crash a request.
"""

from __future__ import annotations

import http
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote_from_bytes, unquote_to_bytes

if TYPE_CHECKING:
    from ._types import Environ, HTTPScope

__all__ = (
    "ASGI_VERSIONS",
    "CGIResponseError",
    "cgi_response_head",
    "environ_from_scope",
    "http_version_from_protocol",
    "parse_cgi_response_head",
    "parse_status_line",
    "scope_from_environ",
    "scope_from_params",
    "split_cgi_response",
    "status_line",
)

#: The ``scope["asgi"]`` dict anysgi sends. spec_version 2.4 is the HTTP spec revision whose
#: keys we fill (a 3.x spec_version made Falcon refuse requests under a2wsgi, a2wsgi#76).
ASGI_VERSIONS = {"version": "3.0", "spec_version": "2.4"}

# RFC 3986 pchar without "%": what may stay unescaped when we must rebuild a raw path from
# already-decoded CGI variables. A literal "%" in a decoded path must become "%25" again.
_PATH_SAFE = "/!$&'()*+,;=:@-._~"

_HTTP_VERSIONS = {
    "HTTP/1.1": "1.1",
    "HTTP/1.0": "1.0",
    "HTTP/2": "2",
    "HTTP/2.0": "2",
    "HTTP/3": "3",
    "HTTP/3.0": "3",
    "HTTP/0.9": "1.0",
}
_SERVER_PROTOCOLS = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0", "2": "HTTP/2.0", "3": "HTTP/3.0"}


def http_version_from_protocol(server_protocol: str) -> str:
    """Normalise a CGI ``SERVER_PROTOCOL`` ("HTTP/2.0") to an ASGI ``http_version`` ("2").

    Anything unrecognised (absent, "INCLUDED", garbage) is taken as "1.1", the version every
    front end that omits or mangles the variable actually speaks to its backends.
    """
    return _HTTP_VERSIONS.get(server_protocol.upper(), "1.1")


# --- status lines --------------------------------------------------------------------------

_STATUS_LINES: dict[int, str] = {s.value: f"{s.value} {s.phrase}" for s in http.HTTPStatus}


def status_line(code: int) -> str:
    """``404`` -> ``"404 Not Found"``; a code Python does not know gets ``"Unknown"``.

    :raises ValueError: if *code* is not a three-digit status code (100 to 999).
    """
    # bool and float hash like ints: check the type before the table can match them.
    if not isinstance(code, bool) and isinstance(code, int):
        line = _STATUS_LINES.get(code)
        if line is not None:
            return line
        # PEP 3333: status is "a status code and reason phrase, separated by a single
        # space"; HTTP allows any three-digit code, so an unusual one still gets a line.
        if 100 <= code <= 999:
            return f"{int(code)} Unknown"
    raise ValueError(f"HTTP status must be an int from 100 to 999, not {code!r}")


def parse_status_line(status: str) -> int:
    """``"404 Not Found"`` (or ``"404"``) -> ``404``.

    :raises ValueError: if *status* does not start with three digits followed by a space or
        the end of the string.
    """
    code = status[:3]
    if len(code) != 3 or not code.isdigit() or not code.isascii() or status[3:4] not in ("", " "):
        raise ValueError(f"malformed HTTP status {status!r}: expected e.g. '200 OK'")
    value = int(code)
    if value < 100:
        raise ValueError(f"malformed HTTP status {status!r}: codes start at 100")
    return value


# --- helpers -------------------------------------------------------------------------------


def _path_from_bytes(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _wsgi_str(value: str) -> str:
    """An ASGI (unicode) path to a PEP 3333 "bytes-as-latin-1" str."""
    return value.encode("utf-8", "surrogateescape").decode("latin-1")


def _unwsgi_str(value: str) -> str:
    """A PEP 3333 "bytes-as-latin-1" str back to the unicode text it encodes."""
    return value.encode("latin-1").decode("utf-8", "surrogateescape")


def _split_request_uri(uri: bytes) -> tuple[bytes, bytes | None]:
    """``REQUEST_URI`` -> (raw path, query or None); absolute-form loses scheme and host."""
    if uri[:1] != b"/" and b"://" in uri[:12]:
        # RFC 9112 3.2.2 absolute-form ("GET http://host/p HTTP/1.1"), sent to proxies.
        slash = uri.find(b"/", uri.index(b"://") + 3)
        uri = uri[slash:] if slash >= 0 else b"/"
    path, sep, query = uri.partition(b"?")
    return path, (query if sep else None)


def _port(value: bytes | str | None) -> int | None:
    if not value:
        return None
    try:
        port = int(value)
    except ValueError:
        return None
    return port if 0 <= port <= 65535 else None


# --- CGI params -> ASGI scope --------------------------------------------------------------


def scope_from_params(
    params: Mapping[bytes, bytes], *, force_script_name: str | None = None
) -> HTTPScope:
    """Build an ASGI ``http`` scope from FastCGI/CGI params (RFC 3875 meta-variables).

    Front ends disagree about ``SCRIPT_NAME`` and ``PATH_INFO``, so the path the client asked
    for is taken from ``REQUEST_URI`` whenever it is present (nginx and Apache always send
    it), and ``root_path`` is ``SCRIPT_NAME`` only when the request path really continues
    below it:

    =====================================  =================  ==============  ===========
    front end (stock configuration)        SCRIPT_NAME        PATH_INFO       root_path
    =====================================  =================  ==============  ===========
    nginx ``include fastcgi_params``       the whole path     (absent)        ``""``
    nginx ``fastcgi_split_path_info``      ``/app``           ``/x``          ``/app``
    Apache mod_proxy_fcgi (generic)        the whole path     ``""``          ``""``
    Apache mod_fcgid + ``.htaccess``       ``/index.fcgi``    ``/x``          ``""``
    =====================================  =================  ==============  ===========

    Without ``REQUEST_URI`` the CGI rule applies: path = SCRIPT_NAME + PATH_INFO and
    root_path = SCRIPT_NAME.

    :param params: the request's params (names and values are bytes).
    :param force_script_name: the mount point to use as ``root_path`` whatever the front end
        sent (for example ``""`` under mod_fcgid, whose SCRIPT_NAME is the ``.fcgi`` file).
    :return: a complete ASGI 3.0 http scope; the params themselves are kept in
        ``scope["extensions"]["fastcgi"]["params"]``.
    """
    get = params.get
    script_name = get(b"SCRIPT_NAME", b"")
    request_uri = get(b"REQUEST_URI")
    query: bytes | None = get(b"QUERY_STRING")

    if request_uri:
        raw_path, uri_query = _split_request_uri(request_uri)
        if query is None:
            query = uri_query
        path = _path_from_bytes(unquote_to_bytes(raw_path) if b"%" in raw_path else raw_path)
        mount = _path_from_bytes(script_name).rstrip("/")
        root_path = mount if mount and path.startswith(mount + "/") else ""
    else:
        full = script_name + get(b"PATH_INFO", b"")
        raw_path = quote_from_bytes(full, safe=_PATH_SAFE).encode("ascii")
        path = _path_from_bytes(full)
        root_path = _path_from_bytes(script_name).rstrip("/")
    if force_script_name is not None:
        root_path = force_script_name.rstrip("/")
    if not path:
        path = "/"
        raw_path = raw_path or b"/"

    headers: list[tuple[bytes, bytes]] = []
    append = headers.append
    header_names = _HEADER_NAMES
    for name, value in params.items():
        header = header_names.get(name)
        if header is None:
            header = _header_name(name)
        if header:
            append((header, value))
    # nginx sends both CONTENT_TYPE and HTTP_CONTENT_TYPE (and the same for the length), and
    # its stock fastcgi_params send CONTENT_TYPE and CONTENT_LENGTH as empty strings on a
    # GET: that means "no such header", not an empty header.
    content_type = get(b"CONTENT_TYPE") or get(b"HTTP_CONTENT_TYPE")
    if content_type:
        append((b"content-type", content_type))
    content_length = get(b"CONTENT_LENGTH") or get(b"HTTP_CONTENT_LENGTH")
    if content_length:
        append((b"content-length", content_length))

    https = get(b"HTTPS")
    if https and https.lower() in (b"on", b"1"):
        scheme = "https"
    else:
        request_scheme = get(b"REQUEST_SCHEME", b"http")
        scheme = _SCHEMES.get(request_scheme) or request_scheme.decode("latin-1").lower() or "http"

    remote_addr = get(b"REMOTE_ADDR")
    client = (
        (remote_addr.decode("latin-1"), _port(get(b"REMOTE_PORT")) or 0) if remote_addr else None
    )
    server_host = get(b"SERVER_ADDR") or get(b"SERVER_NAME")
    server = (server_host.decode("latin-1"), _port(get(b"SERVER_PORT"))) if server_host else None

    protocol = get(b"SERVER_PROTOCOL", b"HTTP/1.1")
    method = get(b"REQUEST_METHOD", b"GET")
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": _HTTP_VERSIONS_BYTES.get(protocol)
        or http_version_from_protocol(protocol.decode("latin-1")),
        "method": _METHODS.get(method) or method.decode("latin-1").upper(),
        "scheme": scheme,
        "path": path,
        "raw_path": raw_path,
        "query_string": query or b"",
        "root_path": root_path,
        "headers": headers,
        "client": client,
        "server": server,
        "extensions": {"fastcgi": {"params": dict(params)}},
    }


# Per-request work is cut by remembering what each param name means: the params a front end
# sends are the same few dozen names on every request.
_SCHEMES: Final = {b"http": "http", b"https": "https"}
_METHODS: Final = {
    m: m.decode("ascii")
    for m in (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS")
}
_HTTP_VERSIONS_BYTES: Final = {k.encode("ascii"): v for k, v in _HTTP_VERSIONS.items()}
#: Param name -> ASGI header name (``b""``: not a header). Bounded: a client cannot grow it
#: past this many names by sending headers with ever new names.
_HEADER_NAMES: Final[dict[bytes, bytes]] = {}


def _header_name(name: bytes) -> bytes:
    """``HTTP_X_FORWARDED_FOR`` -> ``x-forwarded-for``; other params (and the content
    headers, taken from ``CONTENT_TYPE``/``CONTENT_LENGTH``) -> ``b""``."""
    if name[:5] != b"HTTP_" or name in (b"HTTP_CONTENT_TYPE", b"HTTP_CONTENT_LENGTH"):
        header = b""
    else:
        header = name[5:].lower().replace(b"_", b"-")
    if len(_HEADER_NAMES) < _NAME_CACHE_MAX:
        _HEADER_NAMES[name] = header
    return header


# --- ASGI scope -> WSGI environ ------------------------------------------------------------


def environ_from_scope(scope: Mapping[str, Any]) -> Environ:
    """Build a PEP 3333 environ from an ASGI ``http`` scope.

    The result holds every CGI variable PEP 3333 requires (all values ``str``) and the
    ``wsgi.*`` keys that do not depend on I/O: the caller adds ``wsgi.input``,
    ``wsgi.errors`` and, where it offers them, ``wsgi.input_terminated`` and
    ``wsgi.file_wrapper``. ``asgi.scope`` holds the original scope.

    * ``SCRIPT_NAME`` is ``root_path`` and ``PATH_INFO`` the rest of ``path`` (asgiref#442:
      PATH_INFO must not repeat the mount point).
    * Repeated headers are joined with ``", "`` (RFC 9110 5.3), cookies with ``"; "``
      (RFC 9113 8.2.3). Header names holding ``_`` are dropped, as nginx and Apache do:
      ``X_Forwarded_For`` would otherwise arrive as the same ``HTTP_X_FORWARDED_FOR`` as
      ``X-Forwarded-For`` and let a client spoof it.
    * ``SERVER_NAME``/``SERVER_PORT`` come from ``scope["server"]``, else from the Host
      header, else ``localhost`` and the scheme's default port: PEP 3333 requires both.
    """
    root_path: str = scope.get("root_path", "") or ""
    path: str = scope.get("path", "/")
    if root_path and (path == root_path or path.startswith(root_path + "/")):
        path_info = path[len(root_path) :]
    else:
        path_info = path
    scheme: str = scope.get("scheme", "http")
    query_string: bytes = scope.get("query_string", b"")

    environ: Environ = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": _wsgi_str(root_path),
        "PATH_INFO": _wsgi_str(path_info),
        "QUERY_STRING": query_string.decode("latin-1"),
        "SERVER_PROTOCOL": _SERVER_PROTOCOLS.get(scope.get("http_version", "1.1"), "HTTP/1.1"),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scheme,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "asgi.scope": scope,
    }
    raw_path = scope.get("raw_path")
    if raw_path:
        uri = raw_path + b"?" + query_string if query_string else raw_path
        environ["REQUEST_URI"] = uri.decode("latin-1")

    keys = _ENVIRON_KEYS
    for name, value in scope.get("headers", ()):
        key = keys.get(name)
        if key is None:
            key = _environ_key(name)
        if not key:
            continue
        text = value.decode("latin-1")
        previous = environ.get(key)
        if previous is not None:
            text = previous + ("; " if key == "HTTP_COOKIE" else ", ") + text
        environ[key] = text

    server = scope.get("server")
    host_text = environ.get("HTTP_HOST")
    if server:
        host, port = server[0], server[1]
    elif host_text:
        host, sep, port_text = host_text.rpartition(":")
        if not sep or "]" in port_text:  # no port, or a bare IPv6 literal
            host, port = host_text, None
        else:
            port = _port(port_text)
    else:
        host, port = "localhost", None
    environ["SERVER_NAME"] = host
    environ["SERVER_PORT"] = str(port if port is not None else (443 if scheme == "https" else 80))

    client = scope.get("client")
    if client:
        environ["REMOTE_ADDR"] = client[0]
        environ["REMOTE_PORT"] = str(client[1])
    return environ


# --- WSGI environ -> ASGI scope ------------------------------------------------------------


def scope_from_environ(environ: Mapping[str, Any]) -> HTTPScope:
    """Build an ASGI ``http`` scope from a PEP 3333 environ.

    ``root_path`` is ``SCRIPT_NAME`` and ``path`` is ``SCRIPT_NAME + PATH_INFO``, both
    decoded from latin-1 "bytes-as-unicode" to the UTF-8 text they carry. ``raw_path`` comes
    from ``REQUEST_URI`` (or gunicorn's ``RAW_URI``) when the server gives it, else it is
    rebuilt by percent-encoding the path. ``scope["extensions"]["wsgi"]["environ"]`` holds
    the original environ.
    """
    script_name: str = environ.get("SCRIPT_NAME", "")
    path_info: str = environ.get("PATH_INFO", "")
    root_path = _unwsgi_str(script_name)
    path = root_path + _unwsgi_str(path_info)

    request_uri: str | None = environ.get("REQUEST_URI") or environ.get("RAW_URI")
    if request_uri:
        raw_path = _split_request_uri(request_uri.encode("latin-1"))[0]
    else:
        full = (script_name + path_info).encode("latin-1")
        raw_path = quote_from_bytes(full, safe=_PATH_SAFE).encode("ascii")
    if not path:
        path = "/"
        raw_path = raw_path or b"/"

    headers: list[tuple[bytes, bytes]] = []
    append = headers.append
    names = _WSGI_HEADER_NAMES
    for key, value in environ.items():
        name = names.get(key)
        if name is None:
            name = _wsgi_header_name(key)
        if name:
            append((name, value.encode("latin-1")))
    content_type = environ.get("CONTENT_TYPE") or environ.get("HTTP_CONTENT_TYPE")
    if content_type:
        append((b"content-type", content_type.encode("latin-1")))
    content_length = environ.get("CONTENT_LENGTH") or environ.get("HTTP_CONTENT_LENGTH")
    if content_length:
        append((b"content-length", content_length.encode("latin-1")))

    remote_addr = environ.get("REMOTE_ADDR")
    server_name = environ.get("SERVER_NAME")
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": http_version_from_protocol(environ.get("SERVER_PROTOCOL", "HTTP/1.1")),
        "method": environ.get("REQUEST_METHOD", "GET").upper(),
        "scheme": environ.get("wsgi.url_scheme", "http"),
        "path": path,
        "raw_path": raw_path,
        "query_string": environ.get("QUERY_STRING", "").encode("latin-1"),
        "root_path": root_path,
        "headers": headers,
        "client": (remote_addr, _port(environ.get("REMOTE_PORT")) or 0) if remote_addr else None,
        "server": (server_name, _port(environ.get("SERVER_PORT"))) if server_name else None,
        "extensions": {"wsgi": {"environ": environ}},
    }


# --- name caches ---------------------------------------------------------------------------
# Every request carries the same few dozen header names, so what each one becomes is worked
# out once. The caches are bounded: a client sending ever new names only stops them growing.

_NAME_CACHE_MAX: Final = 1024
#: ASGI header name -> environ key (``""``: dropped).
_ENVIRON_KEYS: Final[dict[bytes, str]] = {}
#: environ key -> ASGI header name (``b""``: not a header, or a content header).
_WSGI_HEADER_NAMES: Final[dict[str, bytes]] = {}


def _environ_key(name: bytes) -> str:
    """``b"x-forwarded-for"`` -> ``"HTTP_X_FORWARDED_FOR"``; ``b"content-type"`` ->
    ``"CONTENT_TYPE"``; a name holding ``_`` -> ``""`` (see :func:`environ_from_scope`)."""
    if b"_" in name:
        key = ""
    else:
        key = name.decode("latin-1").upper().replace("-", "_")
        if key != "CONTENT_TYPE" and key != "CONTENT_LENGTH":
            key = "HTTP_" + key
    if len(_ENVIRON_KEYS) < _NAME_CACHE_MAX:
        _ENVIRON_KEYS[name] = key
    return key


def _wsgi_header_name(key: str) -> bytes:
    """``"HTTP_X_A"`` -> ``b"x-a"``; any other key (and the HTTP_CONTENT_* pair) -> ``b""``."""
    if key[:5] != "HTTP_" or key == "HTTP_CONTENT_TYPE" or key == "HTTP_CONTENT_LENGTH":
        name = b""
    else:
        name = key[5:].lower().replace("_", "-").encode("latin-1")
    if len(_WSGI_HEADER_NAMES) < _NAME_CACHE_MAX:
        _WSGI_HEADER_NAMES[key] = name
    return name


# --- CGI response header blocks ------------------------------------------------------------


class CGIResponseError(ValueError):
    """A CGI response header block that cannot be parsed or built."""


def cgi_response_head(status: int, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The CGI response header block for an ASGI ``http.response.start``.

    RFC 3875 6.3.3: the ``Status`` header field "contains a 3-digit integer result code ...
    and a reason phrase"; anysgi always sends it first. The block ends with the empty line.

    :raises CGIResponseError: if a header name or value holds CR or LF (header injection), or
        a name is empty or holds a colon.
    """
    first = _STATUS_HEADS.get(status) if type(status) is int else None
    if first is None:
        first = b"Status: %s\r\n" % status_line(status).encode("ascii")
        if type(status) is int and len(_STATUS_HEADS) < _NAME_CACHE_MAX:
            _STATUS_HEADS[status] = first
    parts = [first]
    good_names = _GOOD_HEADER_NAMES
    for name, value in headers:
        try:
            known = name in good_names
        except TypeError:  # unhashable: a bytearray
            known = False
        if not known:
            _check_header_name(name)
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    head = b"".join(parts)
    # The names are checked and every line added ends in CR LF, so a CR or LF beyond those
    # can only come from a value: two counts over the block instead of two tests per value.
    lines = len(parts) // 4 + 2
    if head.count(b"\n") != lines or head.count(b"\r") != lines:
        for name, value in headers:
            if b"\r" in value or b"\n" in value:
                raise CGIResponseError(f"response header {name!r} has a CR or LF in its value")
    return head


def _check_header_name(name: bytes) -> None:
    if not name or b":" in name or b"\r" in name or b"\n" in name:
        raise CGIResponseError(f"invalid response header name {name!r}")
    if type(name) is bytes and len(_GOOD_HEADER_NAMES) < _NAME_CACHE_MAX:
        _GOOD_HEADER_NAMES.add(name)


#: ``200`` -> ``b"Status: 200 OK\r\n"``, filled as codes are used.
_STATUS_HEADS: dict[int, bytes] = {}
#: Response header names already checked by _check_header_name.
_GOOD_HEADER_NAMES: set[bytes] = set()


_HEAD_END = re.compile(rb"\r?\n\r?\n")
_LINE_END = re.compile(rb"\r?\n")


def split_cgi_response(data: bytes) -> tuple[bytes, bytes] | None:
    """Split *data* into (header block, start of body) once the empty line has arrived.

    Returns ``None`` while the header block is incomplete. RFC 3875 lets lines end in LF or
    CR LF; both are accepted. The head returned excludes its terminating empty line.
    """
    if data[:2] == b"\r\n":
        return b"", data[2:]
    if data[:1] == b"\n":
        return b"", data[1:]
    match = _HEAD_END.search(data)
    if match is None:
        return None
    return data[: match.start()], data[match.end() :]


def parse_cgi_response_head(head: bytes) -> tuple[int, list[tuple[bytes, bytes]]]:
    """Parse a CGI response header block into (status code, headers without Status).

    RFC 3875 6.2.3: a ``Location`` with no ``Status`` is a redirect, reported as 302; no
    ``Status`` otherwise means 200. Header names are returned as sent.

    :raises CGIResponseError: on a line without a colon or an invalid ``Status``.
    """
    status: int | None = None
    headers: list[tuple[bytes, bytes]] = []
    has_location = False
    for line in _LINE_END.split(head) if head else ():
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise CGIResponseError(f"malformed CGI response header line {line[:100]!r}")
        value = value.strip(b" \t")
        lowered = name.lower()
        if lowered == b"status":
            try:
                status = parse_status_line(value.decode("latin-1"))
            except ValueError as exc:
                raise CGIResponseError(str(exc)) from None
            continue
        if lowered == b"location":
            has_location = True
        headers.append((name, value))
    if status is None:
        status = 302 if has_location else 200
    return status, headers
