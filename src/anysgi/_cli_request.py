"""``anysgi request``: send one request to a FastCGI server and show the answer.

Like Debian's ``cgi-fcgi -bind -connect``, but it builds the CGI params itself, prints the
response readably, and says by its exit status how it went, so it serves as a health check::

    anysgi request 127.0.0.1:9000 /health
    anysgi request unix:/run/php/php-fpm.sock /status?json -p SCRIPT_FILENAME=/status

It uses the blocking client, so it needs neither httpx nor an event loop.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any, BinaryIO, Final

from ._cgi import status_line
from .fastcgi.client import ClientError, FastCGIClient, cgi_params

__all__ = ("EXIT_ERROR_STATUS", "EXIT_FAILED", "EXIT_OK", "add_parser", "run")

#: The server answered with a status below 400.
EXIT_OK: Final = 0
#: The server answered with a 4xx or 5xx status.
EXIT_ERROR_STATUS: Final = 1
#: No answer: the connection, the protocol or a timeout failed (argparse uses 2 for usage).
EXIT_FAILED: Final = 3

_CHUNK = 65536

DESCRIPTION = """\
Send one HTTP-like request to a FastCGI server (php-fpm, anysgi serve, ...) and print the
status line, the headers, an empty line and the body. What the server writes on STDERR goes
to stderr. Exit status: 0 for a status below 400, 1 for 4xx and 5xx, 3 when no response
came (connection refused, timeout, broken protocol), 2 for bad arguments.
"""

EPILOG = """\
examples:
  anysgi request 127.0.0.1:9000 /health
  anysgi request unix:/run/php/php-fpm.sock /status?json -p SCRIPT_FILENAME=/status
  anysgi request unix:/run/php/php-fpm.sock /index.php --root /var/www/html -d 'a=1'
  anysgi request 127.0.0.1:9000 --values
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``request`` command to the ``anysgi`` command line."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "request",
        help="send a request to a FastCGI server and print the response",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("address", help="host:port, [::1]:port or unix:/path/to/socket")
    parser.add_argument(
        "target",
        nargs="?",
        default="/",
        help="path and query (/status?json), or an absolute http(s) URL; default /",
    )
    parser.add_argument("-X", "--method", help="HTTP method (default GET, or POST with -d)")
    parser.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="add a request header (repeatable)",
    )
    parser.add_argument(
        "-d",
        "--data",
        metavar="DATA",
        help="request body: the text itself, @FILE to stream a file, or @- for stdin",
    )
    parser.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a FastCGI param, overriding the generated ones (repeatable)",
    )
    parser.add_argument(
        "--root",
        metavar="DIR",
        help="document root: sets SCRIPT_FILENAME to DIR + the path, as nginx does for PHP",
    )
    parser.add_argument(
        "--script-name",
        metavar="PATH",
        help="mount point: SCRIPT_NAME, with the rest of the path in PATH_INFO",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="for connecting, and between reads and writes (default 30)",
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument("-b", "--body-only", action="store_true", help="print only the body")
    output.add_argument(
        "-q", "--quiet", action="store_true", help="print nothing: only the exit status tells"
    )
    parser.add_argument(
        "--values",
        action="store_true",
        help="ask for FCGI_MAX_CONNS, FCGI_MAX_REQS and FCGI_MPXS_CONNS instead (GET_VALUES)",
    )
    parser.set_defaults(handler=run)
    return parser


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise ValueError(f"header {text!r} is not 'Name: value'")
    return name.strip(), value.strip()


def _param(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise ValueError(f"param {text!r} is not NAME=VALUE")
    return name, value


def _file_chunks(stream: BinaryIO) -> Iterator[bytes]:
    with stream:
        while chunk := stream.read(_CHUNK):
            yield chunk


def _body(data: str | None) -> tuple[bytes | Iterator[bytes], int]:
    """The body to send and its length."""
    if data is None:
        return b"", 0
    if data == "@-":
        body = sys.stdin.buffer.read()
        return body, len(body)
    if data.startswith("@"):
        stream = open(data[1:], "rb")  # noqa: SIM115 (closed by _file_chunks)
        return _file_chunks(stream), os.fstat(stream.fileno()).st_size
    body = data.encode()
    return body, len(body)


def run(args: argparse.Namespace) -> int:
    """Carry out ``anysgi request``; return the exit status."""
    out = sys.stdout.buffer
    err = sys.stderr
    try:
        headers = [_header(h) for h in args.header]
        params = dict(_param(p) for p in args.param)
        body, length = _body(args.data)
    except (ValueError, OSError) as exc:
        print(f"anysgi request: {exc}", file=err)
        return 2
    names = {name.lower() for name, _ in headers}
    if args.data is not None:
        if "content-length" not in names:
            headers.append(("Content-Length", str(length)))
        if "content-type" not in names:
            headers.append(("Content-Type", "application/x-www-form-urlencoded"))
    method = args.method or ("POST" if args.data is not None else "GET")
    # The client logs STDERR as a warning; here it is printed instead.
    logger = logging.getLogger("anysgi.fastcgi.client")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with FastCGIClient(args.address, timeout=args.timeout, keep_conn=False) as client:
            if args.values:
                values = client.get_values()
                if not args.quiet:
                    for name, value in values.items():
                        out.write(f"{name}={value}\n".encode())
                return EXIT_OK
            all_params = cgi_params(
                method,
                args.target,
                headers,
                script_name=args.script_name,
                document_root=args.root,
            )
            all_params.update((k.encode(), v.encode()) for k, v in params.items())
            with client.stream(all_params, body) as response:
                if not (args.quiet or args.body_only):
                    head = [status_line(response.status).encode("ascii")]
                    head += [name + b": " + value for name, value in response.headers]
                    out.write(b"\r\n".join(head) + b"\r\n\r\n")
                for chunk in response.iter_bytes():
                    if not args.quiet:
                        out.write(chunk)
                if response.stderr and not args.quiet:
                    text = bytes(response.stderr).decode("utf-8", "replace").rstrip("\n")
                    print(f"FastCGI stderr: {text}", file=err)
                status = response.status
    except (ClientError, ValueError) as exc:
        print(f"anysgi request: {args.address}: {exc}", file=err)
        return EXIT_FAILED
    finally:
        logger.setLevel(level)
        out.flush()
    return EXIT_OK if status < 400 else EXIT_ERROR_STATUS
