"""The sans-IO codec against fcgisgi's: ``python -m bench codec``.

Both decode the same bytes in the same run, and figures are medians of interleaved
repetitions (see ``_common.py``):

* requests/s for a ~1 KiB request as nginx sends it with its stock ``fastcgi_params``
  (BEGIN_REQUEST, one PARAMS record, the empty PARAMS record, a 64-byte STDIN record, the
  empty STDIN record), every event taken out. Measured twice: a new connection per request
  (nginx's default, ``fastcgi_keep_conn off``) and one kept-alive connection on which the
  application ends each request (``fastcgi_keep_conn on``). Bar: anysgi >= 2x fcgisgi,
  although anysgi validates everything and fcgisgi almost nothing.
* MB/s for a 1 MiB body in 65535-byte STDIN records, fed in 16 KiB reads. Bar: >= fcgisgi.
* For information: MB/s to encode a 64 KiB and a 1 MiB STDOUT.

The request bytes are built here with :mod:`struct`, not with either codec.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable

from fcgisgi import sansio as fcgisgi

from anysgi.fastcgi import protocol as p

from ._common import Figure, interleave, report, rounds

_HEADER = struct.Struct("!BBHHBx")


def _record(record_type: int, request_id: int, content: bytes = b"") -> bytes:
    padding = -len(content) & 7
    return (
        _HEADER.pack(1, record_type, request_id, len(content), padding) + content + bytes(padding)
    )


def _pair(name: bytes, value: bytes) -> bytes:
    def length(n: int) -> bytes:
        return bytes((n,)) if n < 128 else struct.pack("!I", n | 0x8000_0000)

    return length(len(name)) + length(len(value)) + name + value


#: nginx's stock fastcgi_params plus SCRIPT_FILENAME and the request's headers, for a small
#: form POST from a browser.
NGINX_PARAMS: tuple[tuple[bytes, bytes], ...] = (
    (b"SCRIPT_FILENAME", b"/srv/www/app/index.php"),
    (b"QUERY_STRING", b"page=2&sort=desc"),
    (b"REQUEST_METHOD", b"POST"),
    (b"CONTENT_TYPE", b"application/x-www-form-urlencoded"),
    (b"CONTENT_LENGTH", b"64"),
    (b"SCRIPT_NAME", b"/index.php"),
    (b"REQUEST_URI", b"/articles/comment?page=2&sort=desc"),
    (b"DOCUMENT_URI", b"/index.php"),
    (b"DOCUMENT_ROOT", b"/srv/www/app"),
    (b"SERVER_PROTOCOL", b"HTTP/1.1"),
    (b"REQUEST_SCHEME", b"https"),
    (b"HTTPS", b"on"),
    (b"GATEWAY_INTERFACE", b"CGI/1.1"),
    (b"SERVER_SOFTWARE", b"nginx/1.26.3"),
    (b"REMOTE_ADDR", b"203.0.113.42"),
    (b"REMOTE_PORT", b"51514"),
    (b"REMOTE_USER", b""),
    (b"SERVER_ADDR", b"192.0.2.10"),
    (b"SERVER_PORT", b"443"),
    (b"SERVER_NAME", b"www.example.org"),
    (b"REDIRECT_STATUS", b"200"),
    (b"HTTP_HOST", b"www.example.org"),
    (
        b"HTTP_USER_AGENT",
        b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    ),
    (b"HTTP_ACCEPT", b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    (b"HTTP_ACCEPT_LANGUAGE", b"en-GB,en;q=0.7,fr;q=0.3"),
    (b"HTTP_ACCEPT_ENCODING", b"gzip, deflate, br, zstd"),
    (b"HTTP_CONTENT_TYPE", b"application/x-www-form-urlencoded"),
    (b"HTTP_CONTENT_LENGTH", b"64"),
    (b"HTTP_ORIGIN", b"https://www.example.org"),
    (b"HTTP_REFERER", b"https://www.example.org/articles/comment?page=2"),
    (
        b"HTTP_COOKIE",
        (
            b"sessionid=8f14e45fceea167a5a36dedd4bea2543; "
            b"csrftoken=c9f0f895fb98ab9159f51fd0297e236d; theme=dark"
        ),
    ),
    (b"HTTP_UPGRADE_INSECURE_REQUESTS", b"1"),
    (b"HTTP_SEC_FETCH_DEST", b"document"),
    (b"HTTP_SEC_FETCH_MODE", b"navigate"),
    (b"HTTP_SEC_FETCH_SITE", b"same-origin"),
    (b"HTTP_SEC_FETCH_USER", b"?1"),
    (b"HTTP_PRIORITY", b"u=0, i"),
)


def nginx_request(request_id: int = 1) -> bytes:
    """The bytes nginx sends for the request above (PARAMS in one record, as nginx does)."""
    params = b"".join(_pair(name, value) for name, value in NGINX_PARAMS)
    body = b"comment=Thanks+for+the+article%21&article=1234&csrf=c9f0f895fb98"
    assert len(body) == 64
    return b"".join(
        (
            # role RESPONDER, flags FCGI_KEEP_CONN
            _record(1, request_id, struct.pack("!HB5x", 1, 1)),
            _record(4, request_id, params),
            _record(4, request_id),
            _record(5, request_id, body),
            _record(5, request_id),
        )
    )


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _anysgi_fresh(wire: bytes, n: int) -> Callable[[], object]:
    def run() -> None:
        need_data = p.NEED_DATA
        server = p.SERVER
        for _ in range(n):
            conn = p.Connection(server)
            conn.receive_data(wire)
            while conn.next_event() is not need_data:
                pass

    return run


def _anysgi_keepalive(wire: bytes, n: int) -> Callable[[], object]:
    def run() -> None:
        need_data = p.NEED_DATA
        conn = p.Connection(p.SERVER)
        end = p.EndRequest(1)
        for _ in range(n):
            conn.receive_data(wire)
            while conn.next_event() is not need_data:
                pass
            conn.send(end)

    return run


def _fcgisgi_fresh(wire: bytes, n: int) -> Callable[[], object]:
    def run() -> None:
        for _ in range(n):
            fcgisgi.FastCGIConnection().feed_data(wire)

    return run


def _fcgisgi_keepalive(wire: bytes, n: int) -> Callable[[], object]:
    def run() -> None:
        conn = fcgisgi.FastCGIConnection()
        for _ in range(n):
            conn.feed_data(wire)
            conn.send_end_request(1, 0, 0)

    return run


def _check_same_events(wire: bytes) -> None:
    """Both codecs see the same request, or the comparison means nothing."""
    conn = p.Connection(p.SERVER)
    conn.receive_data(wire)
    ours = []
    while (event := conn.next_event()) is not p.NEED_DATA:
        ours.append(event)
    theirs = fcgisgi.FastCGIConnection().feed_data(wire)
    assert [type(e).__name__ for e in ours] == ["BeginRequest", "Params", "Stdin", "StdinEnd"]
    assert len(theirs) == 4
    assert isinstance(ours[1], p.Params)
    assert isinstance(theirs[1], fcgisgi.ParamsReceived)
    assert list(ours[1].params.items()) == theirs[1].params == list(NGINX_PARAMS)
    assert isinstance(ours[2], p.Stdin)
    assert isinstance(theirs[2], fcgisgi.StdinReceived)
    assert ours[2].data == theirs[2].data


def bench_requests(repetitions: int = 7, n: int = 20_000) -> None:
    wire = nginx_request()
    _check_same_events(wire)
    for title, ours, theirs in (
        ("new connection per request", _anysgi_fresh, _fcgisgi_fresh),
        ("one kept-alive connection, END_REQUEST sent", _anysgi_keepalive, _fcgisgi_keepalive),
    ):
        run_ours, run_theirs = ours(wire, n), theirs(wire, n)
        samples = interleave(
            {
                "anysgi": lambda run=run_ours: n / _time(run),  # type: ignore[misc]
                "fcgisgi": lambda run=run_theirs: n / _time(run),  # type: ignore[misc]
            },
            repetitions,
        )
        report(
            f"decode a {len(wire)}-byte nginx request, {title} (requests/s)",
            [Figure(name, tuple(s), "req/s") for name, s in samples.items()],
            baseline="anysgi",
        )


def stdin_stream(body_size: int = 1024 * 1024, request_id: int = 1) -> bytes:
    """A request whose STDIN carries *body_size* bytes in 65535-byte records."""
    body = bytes(range(256)) * (body_size // 256)
    head = _record(1, request_id, struct.pack("!HB5x", 1, 1))
    head += _record(4, request_id, _pair(b"CONTENT_LENGTH", str(body_size).encode()))
    head += _record(4, request_id)
    records = [
        _record(5, request_id, body[start : start + 65535]) for start in range(0, body_size, 65535)
    ]
    return head + b"".join(records) + _record(5, request_id)


def _chunks(wire: bytes, size: int) -> list[bytes]:
    return [wire[start : start + size] for start in range(0, len(wire), size)]


def bench_stream(
    repetitions: int = 11, body_size: int = 1024 * 1024, read: int = 16384, runs: int = 50
) -> None:
    """MB/s for the body; each sample decodes the whole request *runs* times, because one
    1 MiB request takes a fraction of a millisecond, too little to time on its own."""
    reads = _chunks(stdin_stream(body_size), read)

    def ours() -> float:
        start = time.perf_counter()
        for _ in range(runs):
            conn = p.Connection(p.SERVER)
            received = 0
            for chunk in reads:
                conn.receive_data(chunk)
                while (event := conn.next_event()) is not p.NEED_DATA:
                    if type(event) is p.Stdin:
                        received += len(event.data)
            assert received == body_size
        return runs * body_size / (time.perf_counter() - start) / 1e6

    def theirs() -> float:
        start = time.perf_counter()
        for _ in range(runs):
            conn = fcgisgi.FastCGIConnection()
            received = 0
            for chunk in reads:
                for event in conn.feed_data(chunk):
                    if type(event) is fcgisgi.StdinReceived:
                        received += len(event.data)
            assert received == body_size
        return runs * body_size / (time.perf_counter() - start) / 1e6

    samples = interleave({"anysgi": ours, "fcgisgi": theirs}, repetitions)
    report(
        f"stream a {body_size // 1024} KiB STDIN body in 65535-byte records, "
        f"{read // 1024} KiB reads (MB/s)",
        [Figure(name, tuple(s), "MB/s") for name, s in samples.items()],
        baseline="anysgi",
    )


def bench_encode(repetitions: int = 9) -> None:
    for size, n in ((64 * 1024, 2000), (1024 * 1024, 200)):
        data = bytes(size)

        def ours(data: bytes = data, n: int = n) -> float:
            conn = p.Connection(p.SERVER)
            conn.receive_data(nginx_request())
            while conn.next_event() is not p.NEED_DATA:
                pass
            event = p.Stdout(1, data)
            start = time.perf_counter()
            for _ in range(n):
                conn.send(event)
            return len(data) * n / (time.perf_counter() - start) / 1e6

        def theirs(data: bytes = data, n: int = n) -> float:
            conn = fcgisgi.FastCGIConnection()
            start = time.perf_counter()
            for _ in range(n):
                conn.send_stdout(1, data)
            return len(data) * n / (time.perf_counter() - start) / 1e6

        samples = interleave({"anysgi": ours, "fcgisgi": theirs}, repetitions)
        report(
            f"encode a {size // 1024} KiB STDOUT (MB/s, for information)",
            [Figure(name, tuple(s), "MB/s") for name, s in samples.items()],
            baseline="anysgi",
        )


def main() -> None:
    # BENCH_ROUNDS / BENCH_QUICK (see _common.py) set the repetitions of every figure.
    bench_requests(rounds(7))
    bench_stream(rounds(11))
    bench_encode(rounds(9))


if __name__ == "__main__":
    main()
