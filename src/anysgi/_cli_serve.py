"""``anysgi serve``: run an ASGI or WSGI application as a FastCGI server.

See :doc:`/reference/cli` for every flag. Exit status: 0 after a graceful stop, 1 for a bad
application path, a bind that cannot be opened or another error, 2 for a bad command line,
3 when the application cannot start (lifespan ``startup.failed``).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from typing import Any

from ._version import __version__

__all__ = ("add_parser", "run")

EXIT_ERROR = 1
EXIT_STARTUP_FAILED = 3

_SIZE_SUFFIXES = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def _size(text: str) -> int:
    """``65536``, ``64k``, ``1m``, ``1g`` (powers of 1024)."""
    value = text.strip().lower().removesuffix("ib").removesuffix("b")
    suffix = value[-1:] if value[-1:] in "kmg" else ""
    number = value[: len(value) - len(suffix)]
    if not number.isdigit():
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: expected e.g. 65536, 64k, 1m")
    return int(number) * _SIZE_SUFFIXES[suffix]


def _optional_size(text: str) -> int | None:
    return None if text.lower() in ("none", "0", "off") else _size(text)


def _seconds(text: str) -> float | None:
    """A positive number of seconds, or ``none``/``off`` for no limit."""
    if text.lower() in ("none", "off", "inf"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: seconds or 'none'") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: must be positive")
    return value


def _mode(text: str) -> int:
    try:
        return int(text, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid file mode {text!r}: expected e.g. 660") from None


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}")
    return int(text)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``serve`` subcommand to the ``anysgi`` parser's *subparsers*."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="run an ASGI or WSGI application as a FastCGI server",
        description=(
            "Serve APP (module:attribute) over FastCGI to nginx, Apache or any FastCGI web "
            "server. With no --bind, a listening socket on fd 0 (mod_fcgid, lighttpd spawn) "
            "is used, else 127.0.0.1:9000."
        ),
    )
    parser.add_argument("app", metavar="APP", help="the application, as module:attribute")
    parser.add_argument("--version", action="version", version=f"anysgi {__version__}")
    app = parser.add_argument_group("application")
    app.add_argument(
        "--factory", action="store_true", help="APP is a factory: call it to get the application"
    )
    app.add_argument(
        "--interface",
        choices=("auto", "asgi", "wsgi"),
        default="auto",
        help="the application's interface (default: auto: a coroutine function or a callable "
        "of 3 arguments is ASGI, a callable of 2 is WSGI)",
    )
    app.add_argument(
        "--lifespan",
        choices=("auto", "on", "off"),
        default="auto",
        help="run the ASGI lifespan protocol (default: auto: if the application supports it)",
    )
    app.add_argument(
        "--root-path",
        metavar="PATH",
        default=None,
        help="the mount point given to the application as root_path, whatever SCRIPT_NAME "
        "says (use --root-path '' under mod_fcgid)",
    )
    app.add_argument(
        "--max-threads",
        type=_positive,
        default=40,
        metavar="N",
        help="WSGI applications: most requests running at once in threads (default: 40)",
    )
    run = parser.add_argument_group("server")
    run.add_argument(
        "--bind",
        "-b",
        action="append",
        metavar="ADDRESS",
        help="host:port, [::1]:port, unix:/path or fd://N; repeat to listen on several",
    )
    run.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio", help="event loop")
    run.add_argument("--uvloop", action="store_true", help="use uvloop (asyncio backend)")
    run.add_argument(
        "--workers",
        "-w",
        type=_positive,
        default=1,
        metavar="N",
        help="pre-fork N worker processes sharing the sockets (default: 1, no fork)",
    )
    run.add_argument(
        "--unix-socket-mode",
        type=_mode,
        metavar="MODE",
        default=None,
        help="octal file mode of Unix sockets created (e.g. 660; default: the umask decides)",
    )
    run.add_argument(
        "--backlog", type=_positive, default=1024, metavar="N", help="accept queue (1024)"
    )
    run.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error", "critical"),
        default="info",
        help="log level (default: info); logs go to stderr",
    )
    run.add_argument(
        "--access-log",
        action="store_true",
        help="log each request (off by default: the web server logs them)",
    )
    limits = parser.add_argument_group(
        "limits and timeouts", "sizes take k/m/g suffixes; durations are seconds or 'none'"
    )
    limits.add_argument(
        "--max-connections",
        type=_positive,
        default=1000,
        metavar="N",
        help="most open connections (default: 1000)",
    )
    limits.add_argument(
        "--max-requests-per-connection",
        type=_positive,
        default=100,
        metavar="N",
        help="most multiplexed requests per connection (100)",
    )
    limits.add_argument(
        "--max-params-size",
        type=_size,
        default=1024**2,
        metavar="SIZE",
        help="most bytes of CGI params per request (default: 1m)",
    )
    limits.add_argument(
        "--max-request-body",
        type=_optional_size,
        default=None,
        metavar="SIZE",
        help="larger request bodies get 413 (default: none)",
    )
    limits.add_argument(
        "--request-buffer-size",
        type=_size,
        default=64 * 1024,
        metavar="SIZE",
        help="unread request body held per request (default: 64k)",
    )
    limits.add_argument(
        "--idle-timeout",
        type=_seconds,
        default=75.0,
        metavar="SECONDS",
        help="close connections idle this long (default: 75)",
    )
    limits.add_argument(
        "--request-timeout",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="cancel requests running this long, with a 504 (default: none)",
    )
    limits.add_argument(
        "--startup-timeout",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="lifespan startup (default: 60)",
    )
    limits.add_argument(
        "--shutdown-timeout",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="graceful stop: time for requests in flight (default: 30)",
    )
    parser.set_defaults(handler=run_serve)
    return parser


def _setup_logging(args: argparse.Namespace) -> None:
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.access_log:
        logging.getLogger("anysgi.access").setLevel(logging.INFO)


def _error(message: str) -> None:
    sys.stderr.write(f"anysgi serve: error: {message}\n")
    sys.stderr.flush()


def run_serve(args: argparse.Namespace) -> int:
    """Run ``anysgi serve`` with parsed *args*; return the exit status."""
    from ._errors import LifespanError
    from ._importer import AppImportError, detect_interface, import_app
    from .fastcgi._binds import BindError, parse_bind
    from .fastcgi._config import ServerConfig
    from .fastcgi.server import _as_asgi, _open_sockets, run_config

    _setup_logging(args)
    backend_options: dict[str, Any] = {}
    if args.uvloop:
        if args.backend != "asyncio":
            _error("--uvloop needs --backend asyncio")
            return EXIT_ERROR
        backend_options["use_uvloop"] = True
    try:
        config = ServerConfig(
            binds=tuple(args.bind or ()),
            root_path=args.root_path,
            lifespan=args.lifespan,
            max_connections=args.max_connections,
            max_requests_per_connection=args.max_requests_per_connection,
            max_params_size=args.max_params_size,
            max_request_body=args.max_request_body,
            request_buffer_size=args.request_buffer_size,
            idle_timeout=args.idle_timeout,
            request_timeout=args.request_timeout,
            startup_timeout=args.startup_timeout,
            shutdown_timeout=args.shutdown_timeout,
            backlog=args.backlog,
            unix_socket_mode=args.unix_socket_mode,
            access_log=args.access_log,
        )
        for text in config.binds:
            parse_bind(text)
        # The module is imported here, before any fork; a factory is called per worker.
        target = import_app(args.app, factory=False)
    except (AppImportError, BindError, ValueError) as exc:
        _error(str(exc))
        return EXIT_ERROR

    def load() -> Any:
        app = import_app(args.app, factory=True) if args.factory else target
        if args.interface == "auto":
            detect_interface(app)
        return _as_asgi(app, args.interface, args.max_threads)

    def serve_one(worker_config: ServerConfig) -> int:
        try:
            app = load()
        except AppImportError as exc:
            _error(str(exc))
            return EXIT_STARTUP_FAILED
        try:
            run_config(app, worker_config, backend=args.backend, backend_options=backend_options)
        except LifespanError as exc:
            _error(f"application startup failed: {exc.message or exc}")
            return EXIT_STARTUP_FAILED
        except BindError as exc:
            _error(str(exc))
            return EXIT_ERROR
        return 0

    if args.workers == 1:
        return serve_one(config)

    from .fastcgi._workers import run_workers

    try:
        sockets = _open_sockets(config)
    except BindError as exc:
        _error(str(exc))
        return EXIT_ERROR
    return run_workers(args.workers, sockets, config, serve_one)


def run(args: argparse.Namespace) -> int:
    """Run ``anysgi serve`` with parsed *args* (the parser's ``handler`` is the same)."""
    return run_serve(args)
