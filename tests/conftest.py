"""Shared fixtures: every async test runs on asyncio and on trio (DESIGN.md rule 7)."""

from __future__ import annotations

import pytest


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
