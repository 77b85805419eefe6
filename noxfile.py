"""Developer tasks: ``nox -s tests lint typecheck docs bench``.

Every session installs what it needs itself, from the dependency groups in
pyproject.toml (PEP 735), so a fresh machine with only Python can run them.
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.needs_version = ">=2024.10.9"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["lint", "typecheck", "docs", "tests"]

ROOT = Path(__file__).parent
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]

# The pure core is held to a coverage floor of its own (issue 2's bar).
PURE_CORE = "src/anysgi/fastcgi/protocol/*,src/anysgi/_cgi.py"


def groups(*names: str) -> tuple[str, ...]:
    return nox.project.dependency_groups(PYPROJECT, *names)


@nox.session
def tests(session: nox.Session) -> None:
    """Full test suite (asyncio and trio) with branch coverage, on the running Python."""
    session.install("-e", ".[trio,httpx]", *groups("test"))
    session.run("coverage", "erase")
    session.run("coverage", "run", "-m", "pytest", *session.posargs)
    session.run("coverage", "combine", "--quiet")
    session.run("coverage", "report", "--fail-under=90")
    session.run("coverage", "report", f"--include={PURE_CORE}", "--fail-under=95")


@nox.session(python=PYTHONS)
def tests_matrix(session: nox.Session) -> None:
    """The test suite on every supported Python (no coverage)."""
    session.install("-e", ".[trio,httpx]", *groups("test"))
    session.run("pytest", *session.posargs)


@nox.session
def tests_only_asyncio(session: nox.Session) -> None:
    """Without trio installed: nothing may need it unless the trio backend is asked for."""
    without_trio = [req for req in groups("test") if not req.startswith("trio")]
    session.install("-e", ".[httpx]", *without_trio)
    session.run(
        "pytest",
        "-p",
        "no:cacheprovider",
        "tests/test_public_api.py",
        "tests/test_cgi.py",
        "tests/fastcgi/protocol",
        *session.posargs,
    )


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install(*groups("lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over src, tests, bench."""
    session.install("-e", ".[trio,httpx]", *groups("typecheck"))
    session.run("mypy", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Sphinx, nitpicky, warnings as errors."""
    session.install("-e", ".[trio,httpx]", *groups("docs"))
    out = ROOT / "docs" / "_build" / "html"
    session.run("sphinx-build", "-n", "-W", "--keep-going", "-b", "html", "docs", str(out))


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against the peers, in one run; prints ratios. Args select benchmarks."""
    session.install("-e", ".[trio,httpx]", *groups("bench"))
    session.env["PYTHONHASHSEED"] = "0"
    session.run("python", "-m", "bench", *session.posargs, env={"PYTHONPATH": os.fspath(ROOT)})
