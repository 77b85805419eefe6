"""Backends the server benchmark starts, one per process: ``python -m bench._targets NAME ADDR``.

Each serves the same hello-world (or 1 GiB up/down) application so that only the server
differs. ``ADDR`` is ``host:port``.
"""

from __future__ import annotations

import sys
from typing import Any

HELLO = b"Hello, world!"
HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"13")]
DOWNLOAD_CHUNK = b"x" * (256 * 1024)
DOWNLOAD_SIZE = 1024**3


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    path = scope["path"]
    if path.endswith("/upload"):
        total = 0
        more = True
        while more:
            message = await receive()
            total += len(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"%d" % total
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"%d" % len(body))],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return
    if path.endswith("/download"):
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"%d" % DOWNLOAD_SIZE)],
            }
        )
        for _ in range(DOWNLOAD_SIZE // len(DOWNLOAD_CHUNK)):
            await send({"type": "http.response.body", "body": DOWNLOAD_CHUNK, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": HELLO})


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [HELLO]


def _floor_response(request_id: int) -> bytes:
    body = (
        b"Status: 200 OK\r\n"
        + b"".join(b"%s: %s\r\n" % (name, value) for name, value in HEADERS)
        + b"\r\n"
        + HELLO
    )
    padding = -len(body) % 8
    stdout = bytes([1, 6, request_id >> 8, request_id & 255, len(body) >> 8, len(body) & 255])
    end = bytes([1, 3, request_id >> 8, request_id & 255, 0, 8, 0, 0]) + bytes(8)
    return stdout + bytes([padding, 0]) + body + bytes(padding) + end


def anyio_floor(backend: str, host: str, port: int, *, threaded: bool = False) -> None:
    """The least a FastCGI server on anyio can do per request: a reference, not a peer.

    One task per connection: a checkpoint, ``recv`` (``anyio.wait_readable`` first when
    nothing is there), and when the read holds the end of a request's STDIN, one ``send`` of
    a canned response for the request id of its
    BEGIN_REQUEST. No codec, no validation, no application, no task per request; it relies
    on nginx sending each GET in one write. What is left is what anyio and the sockets
    cost, which bounds how fast any server written on anyio (as anysgi's is) can be.

    With *threaded*, the canned response is built in one worker thread: the least a server
    on anyio that runs WSGI applications in threads can do.
    """
    import queue
    import socket
    import threading

    import anyio
    import anyio.lowlevel

    jobs: queue.SimpleQueue[tuple[int, list[bytes], anyio.Event]] = queue.SimpleQueue()

    def worker(token: anyio.lowlevel.EventLoopToken) -> None:
        run_sync_soon = token.backend_class.run_sync_soon
        while True:
            request_id, reply, done = jobs.get()
            reply.append(_floor_response(request_id))
            run_sync_soon(done.set, (), token.native_token)

    async def connection(sock: socket.socket) -> None:
        with sock:
            request_id = 1
            while True:
                # As anysgi's server does: let the others run, then read, and wait only if
                # nothing is there yet (a checkpoint costs less than a wait on asyncio).
                await anyio.lowlevel.checkpoint()
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    await anyio.wait_readable(sock)
                    continue
                except OSError:
                    return
                if not data:
                    return
                if data[1] == 1:  # BEGIN_REQUEST first, as nginx sends it
                    request_id = data[2] << 8 | data[3]
                if data.endswith(bytes([1, 5, request_id >> 8, request_id & 255, 0, 0, 0, 0])):
                    if threaded:
                        # Built in a worker thread, as a WSGI application's answer must be:
                        # one hop there (a queue), one back (the loop's own thread-safe
                        # callback queue, through anyio's event loop token).
                        done = anyio.Event()
                        reply: list[bytes] = []
                        jobs.put((request_id, reply, done))
                        await done.wait()
                        sock.send(reply[0])
                    else:
                        sock.send(_floor_response(request_id))

    async def serve() -> None:
        if threaded:
            token = anyio.lowlevel.current_token()
            threading.Thread(target=worker, args=(token,), daemon=True).start()
        listener = socket.create_server((host, port), backlog=1024)
        listener.setblocking(False)
        async with anyio.create_task_group() as task_group:
            while True:
                await anyio.wait_readable(listener)
                try:
                    sock, _ = listener.accept()
                except BlockingIOError:
                    continue
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                task_group.start_soon(connection, sock)

    anyio.run(serve, backend=backend)


def main(argv: list[str]) -> None:
    name, addr = argv[0], argv[1]
    host, _, port = addr.rpartition(":")
    if name.startswith("anyio-floor-"):
        anyio_floor(name.removeprefix("anyio-floor-"), host, int(port))
    elif name.startswith("anyio-thread-floor-"):
        anyio_floor(name.removeprefix("anyio-thread-floor-"), host, int(port), threaded=True)
    elif name.startswith("anysgi"):
        from anysgi import fastcgi

        _, interface, loop = name.split("-")
        app = asgi_app if interface == "asgi" else wsgi_app
        options = {"use_uvloop": True} if loop == "uvloop" else None
        fastcgi.run(
            app,
            bind=addr,
            backend="trio" if loop == "trio" else "asyncio",
            backend_options=options,
            interface="asgi" if interface == "asgi" else "wsgi",
        )
    elif name in ("fcgisgi-asgi", "fcgisgi-asgi-uvloop"):
        import asyncio

        import fcgisgi

        if name.endswith("uvloop"):
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        asyncio.run(fcgisgi.run_asgi_server(asgi_app, (host, int(port))))
    elif name == "fcgisgi-wsgi":
        import asyncio

        import fcgisgi

        asyncio.run(fcgisgi.run_wsgi_server(wsgi_app, (host, int(port))))
    elif name == "flup":
        from flup.server.fcgi import WSGIServer

        WSGIServer(wsgi_app, bindAddress=(host, int(port))).run()
    elif name == "uvicorn":
        import uvicorn

        uvicorn.run(
            asgi_app,
            host=host,
            port=int(port),
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
    else:
        raise SystemExit(f"unknown target {name!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
