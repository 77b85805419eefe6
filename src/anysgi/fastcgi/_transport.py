"""FastCGITransport: httpx requests over FastCGI, through the sync or the async client."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import Any, Final

try:
    import httpx
except ImportError as exc:  # pragma: no cover - tested in a subprocess without httpx
    raise ImportError(
        'FastCGITransport needs httpx, which is not installed: pip install "anysgi[httpx]"'
    ) from exc

from . import protocol as p
from ._client_async import AsyncFastCGIClient, AsyncFastCGIResponse
from ._client_common import (
    DEFAULT_KEEPALIVE_EXPIRY,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_RESPONSE_HEAD,
    DEFAULT_MAX_STDERR,
    DEFAULT_VALUE_NAMES,
    ClientError,
    ConnectError,
    ConnectTimeoutError,
    Params,
    PoolTimeoutError,
    ReadError,
    ReadTimeoutError,
    ResponseError,
    Timeouts,
    WriteError,
    WriteTimeoutError,
    encode_params,
    request_params,
)
from ._client_sync import FastCGIClient, FastCGIResponse

__all__ = ("FastCGITransport",)

# The one place where the client's errors become httpx's; most specific first.
_HTTPX_ERRORS: Final[tuple[tuple[type[ClientError], type[httpx.TransportError]], ...]] = (
    (ConnectTimeoutError, httpx.ConnectTimeout),
    (ReadTimeoutError, httpx.ReadTimeout),
    (WriteTimeoutError, httpx.WriteTimeout),
    (PoolTimeoutError, httpx.PoolTimeout),
    (ConnectError, httpx.ConnectError),
    (ReadError, httpx.ReadError),
    (WriteError, httpx.WriteError),
    (ResponseError, httpx.RemoteProtocolError),
)


@contextlib.contextmanager
def _httpx_errors() -> Iterator[None]:
    """Raise httpx's exception for the client's; the original stays as ``__cause__``."""
    try:
        yield
    except ClientError as exc:
        for ours, theirs in _HTTPX_ERRORS:
            if isinstance(exc, ours):
                raise theirs(str(exc)) from exc
        raise httpx.TransportError(str(exc)) from exc
    except ValueError as exc:  # params that cannot be encoded
        raise httpx.LocalProtocolError(str(exc)) from exc


def _timeouts(request: httpx.Request) -> Timeouts:
    timeout: Mapping[str, float | None] = request.extensions.get("timeout", {})
    return Timeouts(
        connect=timeout.get("connect"),
        read=timeout.get("read"),
        write=timeout.get("write"),
        pool=timeout.get("pool"),
    )


class _SyncStream(httpx.SyncByteStream):
    def __init__(self, response: FastCGIResponse, discard: bool) -> None:
        self._response = response
        self._discard = discard

    def __iter__(self) -> Iterator[bytes]:
        with _httpx_errors(), contextlib.closing(self._response.iter_bytes()) as chunks:
            for chunk in chunks:
                if not self._discard:
                    yield chunk

    def close(self) -> None:
        with _httpx_errors():
            self._response.close()


class _AsyncStream(httpx.AsyncByteStream):
    def __init__(self, response: AsyncFastCGIResponse, discard: bool) -> None:
        self._response = response
        self._discard = discard

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors():
            async with contextlib.aclosing(self._response.aiter_bytes()) as chunks:
                async for chunk in chunks:
                    if not self._discard:
                        yield chunk

    async def aclose(self) -> None:
        with _httpx_errors():
            await self._response.aclose()


class FastCGITransport(httpx.AsyncBaseTransport, httpx.BaseTransport):
    """An httpx transport that sends requests to a FastCGI server, as a web server would.

    One instance serves ``httpx.Client`` (:meth:`handle_request`, blocking sockets) and
    ``httpx.AsyncClient`` (:meth:`handle_async_request`, anyio: asyncio or trio)::

        transport = FastCGITransport("unix:/run/php/php-fpm.sock", document_root="/var/www")
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            r = await client.post("/api.php", json={"a": 1})

    Each request becomes CGI params as nginx would send them (see
    :func:`~anysgi.fastcgi.client.cgi_params`), then *params*, then the request's
    ``extensions["fastcgi_params"]`` if it has any. The body goes out as STDIN records while
    it is produced; the response body streams back as it arrives, and the response holds its
    connection until it is read or closed. ``response.extensions["fastcgi_stderr"]`` is what
    the server wrote on STDERR (a bytearray, complete once the body is read); it is also
    logged as a warning on the ``anysgi.fastcgi.client`` logger. Timeouts are httpx's.

    :param address: ``"host:port"``, ``"[::1]:port"`` or ``"unix:/path/to/socket"``.
    :param params: params added to every request, overriding the generated ones, such as
        ``{"SCRIPT_FILENAME": "/var/www/index.php"}`` for a front controller.
    :param script_name: the mount point: SCRIPT_NAME, with the rest of the path in PATH_INFO.
        ``None`` (default) sends the whole path as SCRIPT_NAME, as nginx does; ``""`` sends
        it all as PATH_INFO.
    :param document_root: if given, SCRIPT_FILENAME = document root + SCRIPT_NAME (nginx's
        ``$document_root$fastcgi_script_name``), which is how php-fpm finds the script.
    :param remote_addr: REMOTE_ADDR, the address of the client you stand in for.
    :param max_connections: see :class:`~anysgi.fastcgi.client.AsyncFastCGIClient`, and
        the other parameters too.
    """

    def __init__(
        self,
        address: str,
        *,
        params: Params | None = None,
        script_name: str | None = None,
        document_root: str | None = None,
        remote_addr: str = "127.0.0.1",
        role: int = p.Role.RESPONDER,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        keepalive_expiry: float = DEFAULT_KEEPALIVE_EXPIRY,
        keep_conn: bool = True,
        multiplex: bool = False,
        max_response_head: int = DEFAULT_MAX_RESPONSE_HEAD,
        max_stderr: int = DEFAULT_MAX_STDERR,
    ) -> None:
        options: dict[str, Any] = {
            "max_connections": max_connections,
            "keepalive_expiry": keepalive_expiry,
            "keep_conn": keep_conn,
            "multiplex": multiplex,
            "max_response_head": max_response_head,
            "max_stderr": max_stderr,
        }
        self._sync = FastCGIClient(address, **options)
        self._async = AsyncFastCGIClient(address, **options)
        self._params = encode_params(params)
        self._script_name = None if script_name is None else script_name.encode()
        self._document_root = None if document_root is None else document_root.encode()
        self._remote_addr = remote_addr.encode()
        self._role = role

    def __repr__(self) -> str:
        return f"<FastCGITransport {self._sync.address}>"

    def _request_params(self, request: httpx.Request) -> dict[bytes, bytes]:
        url = request.url
        params = request_params(
            request.method.encode("ascii"),
            url.raw_scheme,
            url.raw_host,
            url.port,
            url.raw_path,
            request.headers.raw,
            script_name=self._script_name,
            document_root=self._document_root,
            remote_addr=self._remote_addr,
        )
        params.update(self._params)
        extra = request.extensions.get("fastcgi_params")
        if extra:
            params.update(encode_params(extra))
        return params

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send *request* over blocking sockets; the response body streams."""
        stream = request.stream
        body = request.content if isinstance(stream, httpx.ByteStream) else stream
        assert isinstance(body, (bytes, httpx.SyncByteStream))
        with _httpx_errors():
            response = self._sync.send(
                self._request_params(request), body, role=self._role, timeout=_timeouts(request)
            )
        return httpx.Response(
            response.status,
            headers=response.headers,
            stream=_SyncStream(response, discard=request.method == "HEAD"),
            extensions={"http_version": b"HTTP/1.1", "fastcgi_stderr": response.stderr},
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send *request* over anyio (asyncio or trio); the response body streams."""
        stream = request.stream
        body = request.content if isinstance(stream, httpx.ByteStream) else stream
        assert isinstance(body, (bytes, httpx.AsyncByteStream))
        with _httpx_errors():
            response = await self._async.send(
                self._request_params(request), body, role=self._role, timeout=_timeouts(request)
            )
        return httpx.Response(
            response.status,
            headers=response.headers,
            stream=_AsyncStream(response, discard=request.method == "HEAD"),
            extensions={"http_version": b"HTTP/1.1", "fastcgi_stderr": response.stderr},
        )

    def get_values(self, names: Iterable[str | bytes] = DEFAULT_VALUE_NAMES) -> dict[str, str]:
        """The server's FCGI_MAX_CONNS, FCGI_MAX_REQS and FCGI_MPXS_CONNS (or *names*), as
        :meth:`FastCGIClient.get_values <anysgi.fastcgi.client.FastCGIClient.get_values>`.
        """
        with _httpx_errors():
            return self._sync.get_values(names)

    async def aget_values(
        self, names: Iterable[str | bytes] = DEFAULT_VALUE_NAMES
    ) -> dict[str, str]:
        """:meth:`get_values` for async code."""
        with _httpx_errors():
            return await self._async.get_values(names)

    def close(self) -> None:
        """Close the sync client's connections."""
        self._sync.close()

    async def aclose(self) -> None:
        """Close the async client's connections."""
        await self._async.aclose()
