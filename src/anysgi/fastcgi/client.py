"""A FastCGI client, sync and async, and an httpx transport over it.

Talk to any FastCGI server (php-fpm, anysgi's own, flup...) the way a web server does:

* :class:`FastCGITransport` plugs into httpx, so ``httpx.Client`` and ``httpx.AsyncClient``
  send their requests over FastCGI. It needs httpx (``pip install "anysgi[httpx]"``).
* :class:`AsyncFastCGIClient` (anyio: asyncio or trio) and :class:`FastCGIClient` (blocking
  sockets, thread-safe) are the pools below it, which speak in CGI params and need nothing
  but anysgi. :func:`cgi_params` builds the params of an HTTP request.

Every error is a :class:`ClientError`; the transport turns them into httpx's exceptions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._client_async import AsyncFastCGIClient as AsyncFastCGIClient
from ._client_async import AsyncFastCGIResponse as AsyncFastCGIResponse
from ._client_common import DEFAULT_KEEPALIVE_EXPIRY as DEFAULT_KEEPALIVE_EXPIRY
from ._client_common import DEFAULT_MAX_CONNECTIONS as DEFAULT_MAX_CONNECTIONS
from ._client_common import DEFAULT_MAX_RESPONSE_HEAD as DEFAULT_MAX_RESPONSE_HEAD
from ._client_common import DEFAULT_MAX_STDERR as DEFAULT_MAX_STDERR
from ._client_common import DEFAULT_TIMEOUTS as DEFAULT_TIMEOUTS
from ._client_common import USE_CLIENT_DEFAULT as USE_CLIENT_DEFAULT
from ._client_common import ClientError as ClientError
from ._client_common import ClientTimeoutError as ClientTimeoutError
from ._client_common import ConnectError as ConnectError
from ._client_common import ConnectTimeoutError as ConnectTimeoutError
from ._client_common import NetworkError as NetworkError
from ._client_common import PoolTimeoutError as PoolTimeoutError
from ._client_common import ReadError as ReadError
from ._client_common import ReadTimeoutError as ReadTimeoutError
from ._client_common import RequestRejectedError as RequestRejectedError
from ._client_common import ResponseError as ResponseError
from ._client_common import Timeouts as Timeouts
from ._client_common import UseDefault as UseDefault
from ._client_common import WriteError as WriteError
from ._client_common import WriteTimeoutError as WriteTimeoutError
from ._client_common import cgi_params as cgi_params
from ._client_sync import FastCGIClient as FastCGIClient
from ._client_sync import FastCGIResponse as FastCGIResponse

if TYPE_CHECKING:
    from ._transport import FastCGITransport as FastCGITransport

__all__ = (
    "DEFAULT_KEEPALIVE_EXPIRY",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_RESPONSE_HEAD",
    "DEFAULT_MAX_STDERR",
    "DEFAULT_TIMEOUTS",
    "USE_CLIENT_DEFAULT",
    "AsyncFastCGIClient",
    "AsyncFastCGIResponse",
    "ClientError",
    "ClientTimeoutError",
    "ConnectError",
    "ConnectTimeoutError",
    "FastCGIClient",
    "FastCGIResponse",
    "FastCGITransport",
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
)


# Public classes say where to find them (reprs, tracebacks, the docs' cross-references).
for _public in (
    AsyncFastCGIClient,
    AsyncFastCGIResponse,
    ClientError,
    ClientTimeoutError,
    ConnectError,
    ConnectTimeoutError,
    FastCGIClient,
    FastCGIResponse,
    NetworkError,
    PoolTimeoutError,
    ReadError,
    ReadTimeoutError,
    RequestRejectedError,
    ResponseError,
    Timeouts,
    UseDefault,
    WriteError,
    WriteTimeoutError,
    cgi_params,
):
    _public.__module__ = __name__
del _public


def __getattr__(name: str) -> Any:
    # The transport is the one part that needs httpx: import it (and fail, saying how to
    # install httpx) only when it is asked for.
    if name == "FastCGITransport":
        from ._transport import FastCGITransport

        FastCGITransport.__module__ = __name__
        return FastCGITransport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
