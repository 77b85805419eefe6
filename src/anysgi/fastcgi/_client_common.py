"""The FastCGI client's knowledge, without I/O: shared by the async and the sync drivers.

Everything the two drivers (``_client_async.py`` and the ``_client_sync.py`` generated from it)
would otherwise write twice lives here: address strings, timeouts, the exceptions, the CGI
params of an HTTP request, and the per-connection bookkeeping that turns codec events into a
response (:class:`ConnectionState`, :class:`Exchange`). The drivers only move bytes between a
socket and these objects.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, TypeAlias
from urllib.parse import unquote_to_bytes, urlsplit

from anysgi._cgi import CGIResponseError, parse_cgi_response_head, split_cgi_response
from anysgi._version import __version__

from . import protocol as p

__all__ = (
    "DEFAULT_KEEPALIVE_EXPIRY",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_RESPONSE_HEAD",
    "DEFAULT_MAX_STDERR",
    "DEFAULT_TIMEOUTS",
    "USE_CLIENT_DEFAULT",
    "Address",
    "ClientError",
    "ClientTimeoutError",
    "ConnectError",
    "ConnectTimeoutError",
    "NetworkError",
    "PoolTimeoutError",
    "ReadError",
    "ReadTimeoutError",
    "RequestRejectedError",
    "ResponseError",
    "Timeouts",
    "UseDefault",
    "WriteError",
    "WriteTimeoutError",
    "cgi_params",
    "encode_params",
    "parse_address",
)

logger = logging.getLogger("anysgi.fastcgi.client")

#: Default ``max_connections``: 10. php-fpm gives each connection a worker of its own for as
#: long as it stays open (Debian's stock pool has ``pm.max_children = 5``), so a pool larger
#: than the server's workers only queues in the listen backlog: keep it at or below them.
DEFAULT_MAX_CONNECTIONS: Final = 10

#: Default ``keepalive_expiry``: 5 seconds, httpx's. An idle kept-alive connection pins a
#: php-fpm worker, so idle connections are closed soon rather than kept for minutes.
DEFAULT_KEEPALIVE_EXPIRY: Final = 5.0

#: Default ``max_response_head``: 64 KiB for the CGI header block. nginx refuses more than
#: ``fastcgi_buffer_size`` (4 or 8 KiB) with "upstream sent too big header"; eight times that
#: leaves room for large cookies and CSP headers while bounding what a broken app can make us
#: buffer before the first body byte.
DEFAULT_MAX_RESPONSE_HEAD: Final = 64 * 1024

#: Default ``max_stderr``: 1 MiB of STDERR kept per request; the rest is counted, logged as
#: dropped, and not stored. PHP sends every warning there, and a loop can send a lot.
DEFAULT_MAX_STDERR: Final = 1024 * 1024

#: How many bytes one read asks for. 64 KiB is one full record plus change, and what anyio's
#: streams return at most by default.
READ_SIZE: Final = 65536

#: Body bytes a multiplexed connection keeps for one request whose reader is slower than the
#: others before it stops reading for everyone (FastCGI has no flow control).
MUX_BUFFER_LIMIT: Final = 1024 * 1024

#: The variables :meth:`get_values` asks for by default (spec 4.1).
DEFAULT_VALUE_NAMES: Final = (p.FCGI_MAX_CONNS, p.FCGI_MAX_REQS, p.FCGI_MPXS_CONNS)

#: CGI params as callers give them: names and values as str or bytes.
Params: TypeAlias = (
    Mapping[str, str | bytes] | Mapping[bytes, str | bytes] | Mapping[str | bytes, str | bytes]
)


# --- addresses ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Address:
    """Where a FastCGI server listens: a TCP host and port, or a Unix socket path."""

    host: str = ""
    port: int = 0
    path: str | None = None

    def __str__(self) -> str:
        if self.path is not None:
            return f"unix:{self.path}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_address(address: str) -> Address:
    """``"127.0.0.1:9000"``, ``"[::1]:9000"``, ``"localhost:9000"`` or ``"unix:/run/x.sock"``.

    :raises ValueError: for anything else, with the forms that are accepted.
    """
    if not isinstance(address, str):
        raise TypeError(f"a FastCGI address is a str, not {type(address).__name__}")
    if address.startswith("unix:"):
        path = address[5:]
        if not path:
            raise ValueError(f"{address!r} has no socket path: expected 'unix:/path/to/socket'")
        return Address(path=path)
    host, sep, port_text = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        host = ""  # a bare IPv6 literal: its port is ambiguous
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(
            f"invalid FastCGI address {address!r}: expected 'host:port', '[::1]:port' "
            f"or 'unix:/path/to/socket'"
        )
    return Address(host=host, port=int(port_text))


# --- timeouts ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timeouts:
    """How long, in seconds, each step of a request may take; ``None`` waits forever.

    The defaults are nginx's for the same job (``fastcgi_connect_timeout``,
    ``fastcgi_read_timeout`` and ``fastcgi_send_timeout`` are 60 s each): a FastCGI
    application may legitimately think for a while before it answers.

    :param connect: to open a connection.
    :param read: between two reads that bring data (not for the whole response).
    :param write: to write one piece of the request.
    :param pool: to wait for a free connection when the pool is full.
    """

    connect: float | None = 60.0
    read: float | None = 60.0
    write: float | None = 60.0
    pool: float | None = 60.0

    @classmethod
    def coerce(cls, value: Timeouts | float | None) -> Timeouts:
        """A :class:`Timeouts` as is; a number or ``None`` for every step."""
        if isinstance(value, Timeouts):
            return value
        return cls(value, value, value, value)


#: The default :class:`Timeouts`: 60 seconds for each step.
DEFAULT_TIMEOUTS: Final = Timeouts()


class UseDefault(enum.Enum):
    """The type of :data:`USE_CLIENT_DEFAULT`."""

    USE_CLIENT_DEFAULT = "USE_CLIENT_DEFAULT"


#: A request's ``timeout`` when it takes the client's.
USE_CLIENT_DEFAULT: Final = UseDefault.USE_CLIENT_DEFAULT


# --- exceptions --------------------------------------------------------------------------------


class ClientError(Exception):
    """Base class of the FastCGI client's errors."""


class NetworkError(ClientError):
    """The connection failed: the operating system reported an error."""


class ConnectError(NetworkError):
    """The connection could not be opened (refused, no such socket, unreachable)."""


class ReadError(NetworkError):
    """Reading from the server failed (reset by the peer, for instance)."""


class WriteError(NetworkError):
    """Writing to the server failed (it closed the connection, for instance)."""


class ClientTimeoutError(ClientError, TimeoutError):
    """A step of the request took longer than its :class:`Timeouts` allow."""


class ConnectTimeoutError(ClientTimeoutError):
    """Opening the connection took longer than ``Timeouts.connect``."""


class ReadTimeoutError(ClientTimeoutError):
    """The server sent nothing for ``Timeouts.read`` seconds."""


class WriteTimeoutError(ClientTimeoutError):
    """Writing the request stalled for ``Timeouts.write`` seconds."""


class PoolTimeoutError(ClientTimeoutError):
    """No connection of the pool became free within ``Timeouts.pool`` seconds."""


class ResponseError(ClientError):
    """The server broke the FastCGI protocol or sent a response that is not a CGI response:
    malformed records, a connection closed mid-response, a bad header block.
    """


class RequestRejectedError(ResponseError):
    """The server ended the request with a protocol status other than REQUEST_COMPLETE.

    :param protocol_status: :attr:`~anysgi.fastcgi.protocol.ProtocolStatus.OVERLOADED`,
        :attr:`~anysgi.fastcgi.protocol.ProtocolStatus.UNKNOWN_ROLE` or
        :attr:`~anysgi.fastcgi.protocol.ProtocolStatus.CANT_MPX_CONN`.
    """

    def __init__(self, message: str, protocol_status: int) -> None:
        super().__init__(message)
        #: Why the server refused the request.
        self.protocol_status = p.ProtocolStatus(protocol_status)


_REJECTIONS: Final = {
    p.ProtocolStatus.CANT_MPX_CONN: "it cannot multiplex requests on one connection",
    p.ProtocolStatus.OVERLOADED: "it is overloaded (out of workers or other resources)",
    p.ProtocolStatus.UNKNOWN_ROLE: "it does not play the role asked for",
}


# --- CGI params --------------------------------------------------------------------------------


def _to_bytes(value: str | bytes) -> bytes:
    # Params are bytes on the wire. Text is UTF-8, with surrogateescape so that a file name
    # that came from os.fsdecode() (SCRIPT_FILENAME) gets its original bytes back.
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")


def encode_params(params: Params | None) -> dict[bytes, bytes]:
    """*params* with every name and value as bytes (text is encoded as UTF-8)."""
    if not params:
        return {}
    return {_to_bytes(name): _to_bytes(value) for name, value in params.items()}


_DEFAULT_PORTS: Final = {b"http": b"80", b"https": b"443"}
_SERVER_SOFTWARE: Final = f"anysgi/{__version__}".encode("ascii")


def request_params(
    method: bytes,
    scheme: bytes,
    host: bytes,
    port: int | None,
    target: bytes,
    headers: Iterable[tuple[bytes, bytes]],
    *,
    script_name: bytes | None = None,
    document_root: bytes | None = None,
    remote_addr: bytes = b"127.0.0.1",
) -> dict[bytes, bytes]:
    """The CGI/1.1 params (RFC 3875 4.1) nginx would send for this HTTP request.

    *target* is the request target as sent (``/a%20b?x=1``). See :func:`cgi_params` for the
    rules.
    """
    raw_path, _, query = target.partition(b"?")
    path = unquote_to_bytes(raw_path) or b"/"
    if script_name is None:
        # nginx's stock fastcgi_params: SCRIPT_NAME is the whole path, no PATH_INFO. PHP
        # expects this, and anysgi's server reads the path from REQUEST_URI anyway.
        pairs = [(b"SCRIPT_NAME", path)]
        script = path
    else:
        mount = script_name.rstrip(b"/")
        if mount and (path == mount or path.startswith(mount + b"/")):
            pairs = [(b"SCRIPT_NAME", mount), (b"PATH_INFO", path[len(mount) :])]
        else:
            pairs = [(b"SCRIPT_NAME", b""), (b"PATH_INFO", path)]
            mount = b""
        script = mount
    params: dict[bytes, bytes] = dict(pairs)
    if document_root is not None:
        # nginx: fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
        root = document_root.rstrip(b"/")
        params[b"DOCUMENT_ROOT"] = root
        params[b"SCRIPT_FILENAME"] = root + script
    scheme = scheme.lower()
    params.update(
        {
            b"REQUEST_METHOD": method.upper(),
            b"REQUEST_URI": target or b"/",
            b"QUERY_STRING": query,
            b"SERVER_PROTOCOL": b"HTTP/1.1",
            b"GATEWAY_INTERFACE": b"CGI/1.1",
            b"SERVER_SOFTWARE": _SERVER_SOFTWARE,
            b"REQUEST_SCHEME": scheme,
            b"SERVER_NAME": host,
            b"SERVER_PORT": str(port).encode() if port else _DEFAULT_PORTS.get(scheme, b"80"),
            b"REMOTE_ADDR": remote_addr,
        }
    )
    if scheme == b"https":
        params[b"HTTPS"] = b"on"
    has_host = False
    for name, value in headers:
        key = name.upper()
        if b"_" in key or key == b"TRANSFER-ENCODING":
            # Underscores: "X_Forwarded_For" would arrive as the same HTTP_X_FORWARDED_FOR as
            # "X-Forwarded-For" and let a caller spoof it; nginx and Apache drop such names.
            # Transfer-Encoding: STDIN carries the body unchunked, whatever HTTP did.
            continue
        if key == b"CONTENT-TYPE":
            params[b"CONTENT_TYPE"] = value
            continue
        if key == b"CONTENT-LENGTH":
            params[b"CONTENT_LENGTH"] = value
            continue
        key = b"HTTP_" + key.replace(b"-", b"_")
        has_host = has_host or key == b"HTTP_HOST"
        previous = params.get(key)
        if previous is not None:
            # RFC 9110 5.3: repeated fields join with ", "; cookies with "; " (RFC 6265 5.4).
            value = previous + (b"; " if key == b"HTTP_COOKIE" else b", ") + value
        params[key] = value
    if not has_host:
        params[b"HTTP_HOST"] = host if port is None else host + b":" + str(port).encode()
    return params


def cgi_params(
    method: str,
    url: str,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    *,
    script_name: str | None = None,
    document_root: str | None = None,
    remote_addr: str = "127.0.0.1",
) -> dict[bytes, bytes]:
    """The CGI/1.1 params for an HTTP request, as nginx would send them to FastCGI.

    ``cgi_params("GET", "/ping")`` gives REQUEST_METHOD, SCRIPT_NAME, REQUEST_URI,
    QUERY_STRING, SERVER_PROTOCOL, GATEWAY_INTERFACE, SERVER_SOFTWARE, REQUEST_SCHEME,
    SERVER_NAME, SERVER_PORT, REMOTE_ADDR, HTTPS (for ``https`` URLs), CONTENT_TYPE and
    CONTENT_LENGTH (from those headers) and an ``HTTP_*`` param for every other header.

    :param method: the HTTP method.
    :param url: ``"/path?query"`` (host ``localhost``) or an absolute ``http://`` or
        ``https://`` URL, still percent-encoded.
    :param headers: the request's headers. Names with an underscore and Transfer-Encoding are
        dropped, as nginx does; repeated names are joined with ``", "`` (cookies ``"; "``).
    :param script_name: the mount point. ``None`` (the default) sends the whole path as
        SCRIPT_NAME and no PATH_INFO, like nginx's stock ``fastcgi_params``, which is what PHP
        expects. A path such as ``"/app"`` sends SCRIPT_NAME ``/app`` and the rest of the path
        as PATH_INFO (a path outside the mount gets SCRIPT_NAME ``""``); ``""`` sends the whole
        path as PATH_INFO, which is what a WSGI or ASGI application mounted at the root wants.
    :param document_root: if given, DOCUMENT_ROOT, and SCRIPT_FILENAME = document root +
        SCRIPT_NAME, as nginx's ``$document_root$fastcgi_script_name``. php-fpm needs
        SCRIPT_FILENAME to find the script.
    :param remote_addr: REMOTE_ADDR, the address of the HTTP client you stand in for.
    """
    parts = urlsplit(url)
    scheme = parts.scheme or "http"
    host = parts.hostname or "localhost"
    target = parts.path or "/"
    if parts.query or url.endswith("?"):
        target += "?" + parts.query
    items = headers.items() if isinstance(headers, Mapping) else headers
    return request_params(
        method.encode("ascii"),
        scheme.encode("ascii"),
        host.encode("idna"),
        parts.port,
        target.encode("utf-8"),
        [(_to_bytes(name), _to_bytes(value)) for name, value in items],
        script_name=None if script_name is None else _to_bytes(script_name),
        document_root=None if document_root is None else _to_bytes(document_root),
        remote_addr=_to_bytes(remote_addr),
    )


# --- one request's response -----------------------------------------------------------------


class Exchange:
    """One request on one connection: what came back for it so far.

    Filled by :class:`ConnectionState` as records arrive and emptied by the driver as the
    caller reads. Body chunks are kept only until they are read: in the one-request-per-
    connection case that is at most one read's worth (:data:`READ_SIZE` plus one record).
    """

    __slots__ = (
        "abandoned",
        "app_status",
        "buffered",
        "chunks",
        "ended",
        "error",
        "head",
        "headers",
        "keep_conn",
        "max_head",
        "max_stderr",
        "request_id",
        "started",
        "status",
        "stderr",
        "stderr_dropped",
    )

    def __init__(self, request_id: int, keep_conn: bool, max_head: int, max_stderr: int) -> None:
        self.request_id = request_id
        self.keep_conn = keep_conn
        self.max_head = max_head
        self.max_stderr = max_stderr
        #: The CGI header block as it arrives; None once parsed.
        self.head: bytearray | None = bytearray()
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        #: Everything the server sent on STDERR for this request (up to max_stderr bytes).
        self.stderr = bytearray()
        self.stderr_dropped = 0
        #: True once END_REQUEST with REQUEST_COMPLETE arrived after a whole response.
        self.ended = False
        self.app_status: int | None = None
        self.error: ClientError | None = None
        #: Whether any record for this request arrived (a stale connection sends none).
        self.started = False
        #: The caller went away before the end; records still coming are dropped.
        self.abandoned = False

    # Called by ConnectionState as events arrive.

    def on_stdout(self, data: bytes) -> None:
        self.started = True
        head = self.head
        if head is None:
            self.chunks.append(data)
            self.buffered += len(data)
            return
        head += data
        split = split_cgi_response(bytes(head))
        if split is None:
            if len(head) > self.max_head:
                self.fail(
                    ResponseError(
                        f"the CGI header block is longer than max_response_head="
                        f"{self.max_head} bytes"
                    )
                )
            return
        block, rest = split
        if len(block) > self.max_head:
            self.fail(
                ResponseError(
                    f"the CGI header block is {len(block)} bytes long, more than "
                    f"max_response_head={self.max_head}"
                )
            )
            return
        try:
            self.status, self.headers = parse_cgi_response_head(block)
        except CGIResponseError as exc:
            self.fail(ResponseError(f"the server sent an invalid CGI response: {exc}"))
            return
        self.head = None
        if rest:
            self.chunks.append(rest)
            self.buffered += len(rest)

    def on_stdout_end(self) -> None:
        self.started = True
        if self.head is not None:
            self._headless()

    def _headless(self) -> None:
        if self.head:
            self.fail(
                ResponseError(
                    f"the response ended inside its CGI header block (no empty line after "
                    f"{bytes(self.head[:200])!r})"
                )
            )
        else:
            self.fail(ResponseError("the server ended the request without a CGI response"))

    def on_stderr(self, data: bytes) -> None:
        self.started = True
        room = self.max_stderr - len(self.stderr)
        if room >= len(data):
            self.stderr += data
        else:
            self.stderr += data[: max(room, 0)]
            self.stderr_dropped += len(data) - max(room, 0)

    def on_end(self, app_status: int, protocol_status: p.ProtocolStatus) -> None:
        self.started = True
        self.app_status = app_status
        if protocol_status is not p.ProtocolStatus.REQUEST_COMPLETE:
            self.fail(
                RequestRejectedError(
                    f"the server rejected the request with {protocol_status.name}: "
                    f"{_REJECTIONS[protocol_status]}",
                    protocol_status,
                )
            )
        elif self.head is not None:
            self._headless()
        else:
            self.ended = True

    def fail(self, error: ClientError) -> None:
        """Record *error* for the reader, unless the response is already complete."""
        if self.error is None and not self.ended:
            self.error = error

    # Called by the driver for the reader.

    @property
    def has_head(self) -> bool:
        """Whether the status and headers are in; raises the error that stopped them."""
        if self.head is None:
            return True
        if self.error is not None:
            raise self.error
        return False

    def next_chunk(self) -> bytes | None:
        """The next body chunk, ``b""`` at the end, ``None`` if more must be read first.

        Chunks that arrived before an error are delivered before it is raised.
        """
        if self.chunks:
            chunk = self.chunks.popleft()
            self.buffered -= len(chunk)
            return chunk
        if self.error is not None:
            raise self.error
        return b"" if self.ended else None

    def ready(self, head: bool) -> bool:
        """Whether the reader can go on without reading: the head (if *head*), a body chunk,
        the end or an error is in.
        """
        return (
            (self.head is None if head else bool(self.chunks))
            or self.error is not None
            or self.ended
        )

    @property
    def finished(self) -> bool:
        """Whether END_REQUEST was received (or the request failed)."""
        return self.ended or self.error is not None

    def log_stderr(self, address: Address) -> None:
        """Log what the server wrote on STDERR for this request, if anything."""
        if self.stderr:
            text = bytes(self.stderr).decode("utf-8", "replace").rstrip()
            dropped = f" (and {self.stderr_dropped} bytes more)" if self.stderr_dropped else ""
            logger.warning(
                "FastCGI server %s wrote on stderr for request %d%s: %s",
                address,
                self.request_id,
                dropped,
                text,
            )


# --- one connection ----------------------------------------------------------------------------


class ConnectionState:
    """The sans-IO side of one client connection: the codec plus the exchanges on it.

    :param capacity: how many requests may be active at once: 1, or what the server
        advertised with FCGI_MAX_REQS when it multiplexes.
    """

    __slots__ = ("broken", "capacity", "closed", "conn", "exchanges", "values")

    def __init__(self, capacity: int = 1) -> None:
        self.conn = p.Connection(p.CLIENT, max_concurrent_requests=capacity)
        self.capacity = capacity
        self.exchanges: dict[int, Exchange] = {}
        #: The server closed its end.
        self.closed = False
        #: Why this connection can no longer be used, if it cannot.
        self.broken: ClientError | None = None
        #: The answer to get_values(), once it came.
        self.values: dict[bytes, bytes] | None = None

    # Requests.

    def begin(
        self,
        params: dict[bytes, bytes],
        *,
        role: int,
        keep_conn: bool,
        max_head: int,
        max_stderr: int,
        body: bytes | None,
    ) -> tuple[Exchange, bytes]:
        """Start a request: its exchange and the bytes to write (the whole request if *body*
        is given, else BEGIN_REQUEST and PARAMS).
        """
        if self.broken is not None:
            raise self.broken
        conn = self.conn
        active = conn.active_requests
        request_id = 1
        while request_id in active:
            request_id += 1
        exchange = Exchange(request_id, keep_conn, max_head, max_stderr)
        data = conn.send(p.BeginRequest(request_id, role, keep_conn))
        try:
            data += conn.send(p.Params(request_id, params))
        except p.LocalProtocolError as exc:
            # The request is begun in the codec and cannot be taken back: drop the connection.
            self.broken = ClientError(f"a request on this connection had invalid params: {exc}")
            raise ValueError(f"cannot send these params: {exc}") from None
        self.exchanges[request_id] = exchange
        if body is not None:
            data += self.body(exchange, body) + self.end_of_body(exchange)
        return exchange, data

    def body(self, exchange: Exchange, data: bytes) -> bytes:
        """The STDIN records for *data*; nothing if the request is already over (spec 6.2
        lets the application answer before it has read all of STDIN).
        """
        if not data or not self._open(exchange):
            return b""
        return self.conn.send(p.Stdin(exchange.request_id, data))

    def end_of_body(self, exchange: Exchange) -> bytes:
        """The records that end the request's input."""
        if not self._open(exchange):
            return b""
        request_id = exchange.request_id
        data = self.conn.send(p.StdinEnd(request_id))
        state = self.conn.request_state(request_id)
        if state is not None and state.input is p.State.FILTER_DATA:
            # A Filter also reads a DATA stream; this client sends it empty.
            data += self.conn.send(p.DataEnd(request_id))
        return data

    def _open(self, exchange: Exchange) -> bool:
        if self.exchanges.get(exchange.request_id) is exchange:
            return True
        if exchange.error is not None:
            raise exchange.error
        return False

    def abandon(self, exchange: Exchange) -> bytes:
        """Forget *exchange* (its reader went away): the ABORT_REQUEST to send, if any."""
        exchange.abandoned = True
        request_id = exchange.request_id
        self.exchanges.pop(request_id, None)
        if self.broken is not None or request_id not in self.conn.active_requests:
            return b""
        state = self.conn.request_state(request_id)
        if state is None or state.input in (p.State.ABORTED, p.State.ABORTED_EARLY):
            return b""
        return self.conn.send(p.AbortRequest(request_id))

    def backlogged(self, exchange: Exchange) -> bool:
        """Whether another request holds so much unread body that reading must wait."""
        return any(
            other.buffered >= MUX_BUFFER_LIMIT
            for other in self.exchanges.values()
            if other is not exchange
        )

    @property
    def reusable(self) -> bool:
        """Whether a new request may be sent here: alive, idle and with nothing stray."""
        if self.broken is not None or self.closed or self.exchanges:
            return False
        if self.conn.active_requests:
            return False  # a request still waits for its END_REQUEST
        try:
            event = self.conn.next_event()
        except p.RemoteProtocolError as exc:
            self.fail(ResponseError(f"the server broke the FastCGI protocol: {exc}"))
            return False
        if event is not p.NEED_DATA:
            self.fail(ResponseError(f"unexpected {type(event).__name__} from an idle server"))
            return False
        return True

    # Management.

    def get_values(self, names: Iterable[bytes]) -> bytes:
        """The GET_VALUES record asking for *names*."""
        return self.conn.send(p.GetValues(tuple(names)))

    # Receiving.

    def receive(self, data: bytes) -> None:
        """Feed what was read (``b""``: the server closed) and hand out every event."""
        if self.broken is not None:
            return
        conn = self.conn
        conn.receive_data(data)
        exchanges = self.exchanges
        try:
            while True:
                event = conn.next_event()
                if event is p.NEED_DATA:
                    return
                exchange = exchanges.get(event.request_id)
                if isinstance(event, p.Stdout):
                    if exchange is not None:
                        exchange.on_stdout(event.data)
                elif isinstance(event, p.Stderr):
                    if exchange is not None:
                        exchange.on_stderr(event.data)
                elif isinstance(event, p.StdoutEnd):
                    if exchange is not None:
                        exchange.on_stdout_end()
                elif isinstance(event, p.EndRequest):
                    if exchange is not None:
                        exchange.on_end(event.app_status, event.protocol_status)
                        del exchanges[event.request_id]
                elif isinstance(event, p.StderrEnd):
                    pass
                elif isinstance(event, p.GetValuesResult):
                    self.values = event.values
                elif isinstance(event, p.ConnectionClosed):
                    self.closed = True
                    self.fail(
                        ResponseError("the server closed the connection before the response ended")
                    )
                    return
                else:  # UnknownType: we never send unknown management records.
                    raise p.RemoteProtocolError(f"unexpected {type(event).__name__}")
        except p.RemoteProtocolError as exc:
            self.fail(ResponseError(f"the server broke the FastCGI protocol: {exc}"))

    def fail(self, error: ClientError) -> None:
        """The connection is unusable: every request on it fails with *error*."""
        if self.broken is None:
            self.broken = error
        for exchange in self.exchanges.values():
            exchange.fail(error)
        self.exchanges.clear()
