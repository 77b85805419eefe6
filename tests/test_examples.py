"""README's first command runs examples/demo.py: it must keep working, on both backends."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.py"


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_demo_runs_every_bridge(backend: str) -> None:
    done = subprocess.run(
        [sys.executable, str(DEMO), "--backend", backend],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"anysgi demo on {backend}" in out
    assert "-> 200 OK, 'Hello, world!\\n'" in out
    assert "-> 200 OK, 'ping'" in out  # POST /echo came back through FastCGI
    assert out.count("/stream chunk after") == 5
    assert "Hello from WSGI, POST /form" in out
    assert "GET /scope?via=wsgi -> 200 OK" in out
    assert "All bridges work." in out


def test_readme_demo_command_is_this_demo() -> None:
    readme = (DEMO.parent.parent / "README.md").read_text()
    assert "python examples/demo.py" in readme
