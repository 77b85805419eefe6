"""anysgi's main job, end to end, with nothing but Python: ``python examples/demo.py``.

1. Serves the bundled example app (``examples/app.py``, ASGI) over FastCGI on a free
   loopback port, exactly as ``anysgi serve examples.app:app`` would behind nginx or Apache.
2. Talks to it through anysgi's FastCGI client (the httpx transport), as a web server
   would: a GET, a POST with a body and a streamed response, seen chunk by chunk.
3. Serves a WSGI app the same way (through ``WSGI2ASGI``), and runs the ASGI app under a
   WSGI server's calling convention (``ASGI2WSGI``), so every bridge is shown once.

Run it with ``--backend trio`` to do all of it on trio instead of asyncio.
"""

from __future__ import annotations

import argparse
import functools
import io
import sys
import time
import wsgiref.validate
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import anyio
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from app import app

from anysgi import ASGI2WSGI, fastcgi
from anysgi.fastcgi.client import FastCGITransport


def wsgi_hello(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """A plain PEP 3333 app, to show the FastCGI server serving WSGI too."""
    body = f"Hello from WSGI, {environ['REQUEST_METHOD']} {environ['PATH_INFO']}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def show(response: httpx.Response) -> None:
    print(f"  {response.request.method} {response.request.url.raw_path.decode()}")
    print(f"  -> {response.status_code} {response.reason_phrase}, {response.text!r}")


async def through_fastcgi(
    label: str, served: Any, interface: Literal["asgi", "wsgi"], requests: list[tuple[str, str]]
) -> None:
    print(f"\n{label}")
    async with anyio.create_task_group() as tg:
        # serve() reports the addresses it listens on once it accepts connections.
        serve = functools.partial(fastcgi.serve, served, bind="127.0.0.1:0", interface=interface)
        addresses = await tg.start(serve)
        print(f"  anysgi FastCGI server listening on {addresses[0]}")
        transport = FastCGITransport(addresses[0])
        async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
            for method, target in requests:
                if method == "POST":
                    response = await client.post(target, content=b"ping")
                else:
                    response = await client.get(target)
                show(response)
            # A streamed response arrives chunk by chunk, as the app sends it.
            if served is app:
                start = time.perf_counter()
                async with client.stream("GET", "/stream") as response:
                    async for chunk in response.aiter_bytes():
                        elapsed = time.perf_counter() - start
                        print(f"  /stream chunk after {elapsed:.2f}s: {chunk!r}")
        tg.cancel_scope.cancel()


def under_wsgi(backend: Literal["asyncio", "trio"]) -> None:
    print("\nASGI2WSGI: the same ASGI app called the way a WSGI server calls it")
    with ASGI2WSGI(app, backend=backend) as wsgi_app:
        checked = wsgiref.validate.validator(wsgi_app)
        environ = {
            "REQUEST_METHOD": "GET",
            "SCRIPT_NAME": "",
            "PATH_INFO": "/scope",
            "QUERY_STRING": "via=wsgi",
            "SERVER_NAME": "localhost",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        status: list[str] = []

        def start_response(line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status.append(line)
            return lambda data: None

        body = checked(environ, start_response)
        try:
            content = b"".join(body)
        finally:
            body.close()  # type: ignore[attr-defined]
        print(f"  GET /scope?via=wsgi -> {status[0]}, {content.decode()!r}")


async def main(backend: str) -> None:
    await through_fastcgi(
        "FastCGI server, ASGI app (examples/app.py)",
        app,
        "asgi",
        [("GET", "/"), ("POST", "/echo"), ("GET", "/scope?x=1")],
    )
    await through_fastcgi(
        "FastCGI server, WSGI app (through WSGI2ASGI)",
        wsgiref.validate.validator(wsgi_hello),
        "wsgi",
        [("GET", "/hello"), ("POST", "/form")],
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args()
    print(f"anysgi demo on {args.backend}")
    anyio.run(main, args.backend, backend=args.backend)
    under_wsgi(args.backend)
    print("\nAll bridges work. Next: docs/how-to for nginx, Apache and shared hosting.")
