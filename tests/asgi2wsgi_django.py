"""Django's ASGI handler under ASGI2WSGI, run in a process of its own.

``python -m tests.asgi2wsgi_django`` exits 0 when every check passes. Django's settings
are global to a process, and other tests configure them their own way: this module
configures them for itself, in a fresh interpreter started by
``tests/test_asgi2wsgi_frameworks.py``. asyncio only: Django's ASGI handler is built on
asyncio (asgiref), not on anyio.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from django.conf import settings  # type: ignore[import-untyped]
from django.http import HttpResponse, StreamingHttpResponse  # type: ignore[import-untyped]
from django.urls import path  # type: ignore[import-untyped]

from anysgi import ASGI2WSGI

from .wsgi_client import request

settings.configure(
    DEBUG=False,
    SECRET_KEY="not-secret",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[],
    MIDDLEWARE=[],
    DATABASES={},
    USE_TZ=True,
)


async def async_view(request: Any) -> Any:
    return HttpResponse(f"async {request.method} {request.path} {request.GET.get('q')}")


def sync_view(request: Any) -> Any:  # Django runs it in a thread (sync_to_async)
    return HttpResponse(b"sync " + request.body, content_type="text/plain")


def stream_view(request: Any) -> Any:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(3):
            yield f"part{i} ".encode()

    return StreamingHttpResponse(chunks(), content_type="text/plain")


urlpatterns = [
    path("async/", async_view),
    path("sync/", sync_view),
    path("stream/", stream_view),
]


def main() -> None:
    from django.core.asgi import get_asgi_application  # type: ignore[import-untyped]

    with ASGI2WSGI(get_asgi_application(), backend="asyncio") as wsgi:
        response = request(wsgi, "GET", "/async/", query="q=1")
        assert response.status_code == 200, response
        assert response.body == b"async GET /async/ 1", response
        response = request(wsgi, "POST", "/sync/", body=b"payload")
        assert response.body == b"sync payload", response
        response = request(wsgi, "GET", "/stream/")
        assert response.body == b"part0 part1 part2 ", response
        assert request(wsgi, "GET", "/nowhere/").status_code == 404
    print("django ok")


if __name__ == "__main__":
    main()
