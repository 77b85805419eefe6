"""Shared fixtures: every async test runs on asyncio and on trio (DESIGN.md rule 7)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from anysgi import ASGI2WSGI


@pytest.fixture(
    params=[
        pytest.param("asyncio", id="asyncio"),
        pytest.param("trio", id="trio"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Picked up by anyio's pytest plugin for every ``@pytest.mark.anyio`` test."""
    return str(request.param)


@pytest.fixture(params=["asyncio", "trio"])
def portal_backend(request: pytest.FixtureRequest) -> str:
    """For synchronous tests that start an event loop themselves (ASGI2WSGI, run())."""
    return str(request.param)


@pytest.fixture
def make_asgi2wsgi(portal_backend: str) -> Iterator[Callable[..., ASGI2WSGI]]:
    """Build ASGI2WSGI instances on the test's backend; all are closed at the end."""
    made: list[ASGI2WSGI] = []

    def factory(app: Any, **kwargs: Any) -> ASGI2WSGI:
        instance = ASGI2WSGI(app, backend=portal_backend, **kwargs)  # type: ignore[arg-type]
        made.append(instance)
        return instance

    yield factory
    for instance in made:
        instance.close()
