"""The WSGI application the real-server tests serve through WSGI2ASGI.

uvicorn, hypercorn and granian import ``tests.wsgi2asgi_served:app`` from the repository
root. Routes:

``/hello``                     a small response (list result: the fast path)
``/pid``                       the serving process's pid (granian serves from a child)
``/upload``                    reads the body in 64 KiB reads, answers its size and SHA-256
``/download?size=N``           N bytes in 64 KiB chunks, with a Content-Length
``/endless?flag=PATH``         chunks forever; close() creates the file PATH
``/fail-after-headers``        one chunk, then an exception
``/file?path=PATH``            the file PATH through ``wsgi.file_wrapper``
``/tempfile?size=N``           N bytes from a temporary file that its close() deletes
``/extensions``                the ASGI extensions the server offers
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import wsgiref.validate
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from anysgi import WSGI2ASGI

CHUNK = 64 * 1024
TEXT = [("Content-Type", "text/plain")]


class Endless:
    """Chunks forever; close() leaves a mark the test can see from its own process."""

    def __init__(self, flag: str) -> None:
        self.flag = flag
        self.chunk = b"e" * CHUNK

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        return self.chunk

    def close(self) -> None:
        Path(self.flag).write_text("closed")


def download(size: int) -> Iterator[bytes]:
    block = b"d" * CHUNK
    while size > 0:
        yield block[:size]
        size -= CHUNK


def fail_after_headers() -> Iterator[bytes]:
    yield b"partial"
    raise RuntimeError("failed after the headers were sent")


def router(environ: dict[str, Any], start_response: Any) -> Any:
    path = environ["PATH_INFO"]
    query = {k: v[0] for k, v in parse_qs(environ["QUERY_STRING"]).items()}
    if path == "/hello":
        start_response("200 OK", [*TEXT, ("Content-Length", "13")])
        return [b"Hello, world!"]
    if path == "/pid":
        start_response("200 OK", TEXT)
        return [str(os.getpid()).encode()]
    if path == "/upload":
        stream = environ["wsgi.input"]
        digest = hashlib.sha256()
        size = 0
        while data := stream.read(CHUNK):
            digest.update(data)
            size += len(data)
        start_response("200 OK", TEXT)
        return [f"{size} {digest.hexdigest()}".encode()]
    if path == "/download":
        size = int(query["size"])
        start_response("200 OK", [*TEXT, ("Content-Length", str(size))])
        return download(size)
    if path == "/endless":
        start_response("200 OK", TEXT)
        return Endless(query["flag"])
    if path == "/fail-after-headers":
        start_response("200 OK", TEXT)
        return fail_after_headers()
    if path == "/file":
        handle = open(query["path"], "rb")  # noqa: SIM115 (the wrapper's close() closes it)
        size = os.fstat(handle.fileno()).st_size
        start_response("200 OK", [*TEXT, ("Content-Length", str(size))])
        return environ["wsgi.file_wrapper"](handle, 8192)
    if path == "/tempfile":
        size = int(query["size"])
        temp = tempfile.NamedTemporaryFile()  # noqa: SIM115 (deleted by the wrapper's close())
        temp.write(b"t" * size)
        temp.flush()
        temp.seek(0)
        start_response("200 OK", [*TEXT, ("Content-Length", str(size))])
        return environ["wsgi.file_wrapper"](temp, 8192)
    if path == "/extensions":
        start_response("200 OK", TEXT)
        extensions = environ["asgi.scope"].get("extensions") or {}
        return [" ".join(sorted(extensions)).encode()]
    start_response("404 Not Found", TEXT)
    return [b"not found"]


app = WSGI2ASGI(wsgiref.validate.validator(router))
