"""Driving the sans-IO codec by hand: a blocking FastCGI responder in a screenful.

``python examples/fastcgi_codec_server.py`` listens on 127.0.0.1:9000 and answers every request
with "Hello" and the request's REQUEST_URI; point nginx's ``fastcgi_pass`` at it. It serves one
connection at a time and exists to show the codec's three verbs, ``receive_data``,
``next_event`` and ``send``. anysgi's real server drives the same codec on anyio.
"""

from __future__ import annotations

import socket

from anysgi.fastcgi import protocol as p


def serve_connection(sock: socket.socket) -> None:
    """Answer the requests that arrive on *sock* until the web server is done with it."""
    conn = p.Connection(p.SERVER, max_concurrent_requests=1)
    keep_conn: dict[int, bool] = {}
    uri: dict[int, bytes] = {}
    while True:
        event = conn.next_event()
        if event is p.NEED_DATA:
            # Bounded reads, drained before the next one: the codec's memory stays bounded.
            conn.receive_data(sock.recv(65536))
        elif isinstance(event, p.ConnectionClosed):
            return  # the web server closed: any request still active is aborted
        elif isinstance(event, p.GetValues):
            known = {p.FCGI_MAX_CONNS: b"1", p.FCGI_MAX_REQS: b"1", p.FCGI_MPXS_CONNS: b"0"}
            values = {name: known[name] for name in event.names if name in known}
            sock.sendall(conn.send(p.GetValuesResult(values)))
        elif isinstance(event, p.UnknownManagementRecord):
            sock.sendall(conn.send(p.UnknownType(event.record_type)))
        elif isinstance(event, p.BeginRequest):
            if event.role is not p.Role.RESPONDER:
                status = p.ProtocolStatus.UNKNOWN_ROLE
                sock.sendall(conn.send(p.EndRequest(event.request_id, protocol_status=status)))
            else:
                keep_conn[event.request_id] = event.keep_conn
        elif isinstance(event, p.Params):
            uri[event.request_id] = event.params.get(b"REQUEST_URI", b"?")
        elif isinstance(event, (p.StdinEnd, p.AbortRequest)):
            # The body is in (or the web server gave up): answer, then end the request.
            request_id = event.request_id
            if isinstance(event, p.StdinEnd):
                head = b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n"
                sock.sendall(conn.send(p.Stdout(request_id, head + b"Hello " + uri[request_id])))
            # EndRequest ends the STDOUT stream first: nothing can be left half-open.
            sock.sendall(conn.send(p.EndRequest(request_id)))
            if not keep_conn.pop(request_id):
                return  # Spec 5.1: without FCGI_KEEP_CONN the application closes.
        # Stdin chunks are ignored here; a real server hands them to the application.


def main(address: tuple[str, int] = ("127.0.0.1", 9000)) -> None:
    with socket.create_server(address) as listener:
        while True:
            sock, _ = listener.accept()
            with sock:
                try:
                    serve_connection(sock)
                except p.RemoteProtocolError as exc:
                    print(f"closing a connection that broke FastCGI: {exc}")


if __name__ == "__main__":
    main()
