"""anysgi: run any Python web app behind any server.

ASGI <-> WSGI <-> FastCGI, on one portable async core written against anyio,
so every async part runs on asyncio or trio.
"""

from __future__ import annotations

from ._version import __version__ as __version__
from .wsgi2asgi import WSGI2ASGI as WSGI2ASGI

__all__ = ("WSGI2ASGI", "__version__")
