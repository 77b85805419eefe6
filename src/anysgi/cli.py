"""The ``anysgi`` command line (also ``python -m anysgi``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from . import _cli_request, _cli_serve
from ._version import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anysgi",
        description="Run any Python web app behind any server: ASGI, WSGI and FastCGI.",
    )
    parser.add_argument("--version", action="version", version=f"anysgi {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _cli_request.add_parser(subparsers)
    _cli_serve.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with *argv* (default: ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    handler = getattr(args, "handler", None)
    if handler is not None:
        return int(handler(args))
    raise AssertionError(f"unhandled command {args.command!r}")  # pragma: no cover
