"""FastCGI for anysgi: a server for ASGI (and, through WSGI2ASGI, WSGI) applications.

:func:`serve` runs in any anyio event loop (asyncio or trio); :func:`run` starts one and
blocks; ``anysgi serve`` is the command line. :mod:`anysgi.fastcgi.protocol` is the sans-IO
FastCGI 1.0 codec they are built on, and :mod:`anysgi.fastcgi.client` the client side.
"""

from __future__ import annotations

from .server import run as run
from .server import serve as serve

__all__ = ("run", "serve")
