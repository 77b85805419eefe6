"""anysgi: run any Python web app behind any server.

ASGI <-> WSGI <-> FastCGI, on one portable async core written against anyio,
so every async part runs on asyncio or trio.
"""

from __future__ import annotations

from ._version import __version__ as __version__
from .asgi2wsgi import ASGI2WSGI as ASGI2WSGI
from .wsgi2asgi import WSGI2ASGI as WSGI2ASGI

__all__ = ("ASGI2WSGI", "WSGI2ASGI", "__version__")
