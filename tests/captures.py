"""Params captured from real front ends (Debian 12 packages) on 2026-11-22.

nginx 1.22.1 with the stock ``include /etc/nginx/fastcgi_params;`` and
Apache 2.4 mod_proxy_fcgi with ``ProxyPass "/" "fcgi://127.0.0.1:19000/" enablereuse=on``,
each sent ``GET /caf%C3%A9/a%20b?x=1&y=%2F`` (headers X-Custom: one, Cookie: a=1) and
``POST /submit`` with the 11-byte body ``hello=world`` by curl. Every pair is as received,
in order (Apache's PATH value shortened). nginx sent BEGIN_REQUEST with flags 0 and one
padded PARAMS record; Apache flags 1 (KEEP_CONN) and no padding.
"""

from __future__ import annotations

NGINX_GET: list[tuple[bytes, bytes]] = [
    (b"QUERY_STRING", b"x=1&y=%2F"),
    (b"REQUEST_METHOD", b"GET"),
    (b"CONTENT_TYPE", b""),
    (b"CONTENT_LENGTH", b""),
    (b"SCRIPT_NAME", b"/caf\xc3\xa9/a b"),
    (b"REQUEST_URI", b"/caf%C3%A9/a%20b?x=1&y=%2F"),
    (b"DOCUMENT_URI", b"/caf\xc3\xa9/a b"),
    (b"DOCUMENT_ROOT", b"/usr/share/nginx/html"),
    (b"SERVER_PROTOCOL", b"HTTP/1.1"),
    (b"REQUEST_SCHEME", b"http"),
    (b"GATEWAY_INTERFACE", b"CGI/1.1"),
    (b"SERVER_SOFTWARE", b"nginx/1.22.1"),
    (b"REMOTE_ADDR", b"127.0.0.1"),
    (b"REMOTE_PORT", b"53104"),
    (b"REMOTE_USER", b""),
    (b"SERVER_ADDR", b"127.0.0.1"),
    (b"SERVER_PORT", b"18080"),
    (b"SERVER_NAME", b"localhost"),
    (b"REDIRECT_STATUS", b"200"),
    (b"HTTP_HOST", b"127.0.0.1"),
    (b"HTTP_USER_AGENT", b"curl/7.88.1"),
    (b"HTTP_ACCEPT", b"*/*"),
    (b"HTTP_X_CUSTOM", b"one"),
    (b"HTTP_COOKIE", b"a=1"),
]
NGINX_GET_STDIN = b""

NGINX_POST: list[tuple[bytes, bytes]] = [
    (b"QUERY_STRING", b""),
    (b"REQUEST_METHOD", b"POST"),
    (b"CONTENT_TYPE", b"application/x-www-form-urlencoded"),
    (b"CONTENT_LENGTH", b"11"),
    (b"SCRIPT_NAME", b"/submit"),
    (b"REQUEST_URI", b"/submit"),
    (b"DOCUMENT_URI", b"/submit"),
    (b"DOCUMENT_ROOT", b"/usr/share/nginx/html"),
    (b"SERVER_PROTOCOL", b"HTTP/1.1"),
    (b"REQUEST_SCHEME", b"http"),
    (b"GATEWAY_INTERFACE", b"CGI/1.1"),
    (b"SERVER_SOFTWARE", b"nginx/1.22.1"),
    (b"REMOTE_ADDR", b"127.0.0.1"),
    (b"REMOTE_PORT", b"53114"),
    (b"REMOTE_USER", b""),
    (b"SERVER_ADDR", b"127.0.0.1"),
    (b"SERVER_PORT", b"18080"),
    (b"SERVER_NAME", b"localhost"),
    (b"REDIRECT_STATUS", b"200"),
    (b"HTTP_HOST", b"127.0.0.1"),
    (b"HTTP_USER_AGENT", b"curl/7.88.1"),
    (b"HTTP_ACCEPT", b"*/*"),
    (b"HTTP_CONTENT_LENGTH", b"11"),
    (b"HTTP_CONTENT_TYPE", b"application/x-www-form-urlencoded"),
]
NGINX_POST_STDIN = b"hello=world"

APACHE_GET: list[tuple[bytes, bytes]] = [
    (b"HTTP_HOST", b"127.0.0.1:18081"),
    (b"HTTP_USER_AGENT", b"curl/7.88.1"),
    (b"HTTP_ACCEPT", b"*/*"),
    (b"HTTP_X_CUSTOM", b"one"),
    (b"HTTP_COOKIE", b"a=1"),
    (b"PATH", b"/usr/local/bin:/usr/bin:/bin"),
    (b"SERVER_SIGNATURE", b""),
    (b"SERVER_SOFTWARE", b"Apache/2.4.71 (Debian)"),
    (b"SERVER_NAME", b"127.0.0.1"),
    (b"SERVER_ADDR", b"127.0.0.1"),
    (b"SERVER_PORT", b"18081"),
    (b"REMOTE_ADDR", b"127.0.0.1"),
    (b"DOCUMENT_ROOT", b"/var/www/html"),
    (b"REQUEST_SCHEME", b"http"),
    (b"CONTEXT_PREFIX", b""),
    (b"CONTEXT_DOCUMENT_ROOT", b"/var/www/html"),
    (b"SERVER_ADMIN", b"[no address given]"),
    (b"SCRIPT_FILENAME", b"proxy:fcgi://127.0.0.1:19000/caf%C3%A9/a%20b"),
    (b"REMOTE_PORT", b"43648"),
    (b"GATEWAY_INTERFACE", b"CGI/1.1"),
    (b"SERVER_PROTOCOL", b"HTTP/1.1"),
    (b"REQUEST_METHOD", b"GET"),
    (b"QUERY_STRING", b"x=1&y=%2F"),
    (b"REQUEST_URI", b"/caf%C3%A9/a%20b?x=1&y=%2F"),
    (b"SCRIPT_NAME", b"/caf\xc3\xa9/a b"),
]
APACHE_GET_STDIN = b""

APACHE_POST: list[tuple[bytes, bytes]] = [
    (b"HTTP_HOST", b"127.0.0.1:18081"),
    (b"HTTP_USER_AGENT", b"curl/7.88.1"),
    (b"HTTP_ACCEPT", b"*/*"),
    (b"CONTENT_LENGTH", b"11"),
    (b"CONTENT_TYPE", b"application/x-www-form-urlencoded"),
    (b"PATH", b"/usr/local/bin:/usr/bin:/bin"),
    (b"SERVER_SIGNATURE", b""),
    (b"SERVER_SOFTWARE", b"Apache/2.4.71 (Debian)"),
    (b"SERVER_NAME", b"127.0.0.1"),
    (b"SERVER_ADDR", b"127.0.0.1"),
    (b"SERVER_PORT", b"18081"),
    (b"REMOTE_ADDR", b"127.0.0.1"),
    (b"DOCUMENT_ROOT", b"/var/www/html"),
    (b"REQUEST_SCHEME", b"http"),
    (b"CONTEXT_PREFIX", b""),
    (b"CONTEXT_DOCUMENT_ROOT", b"/var/www/html"),
    (b"SERVER_ADMIN", b"[no address given]"),
    (b"SCRIPT_FILENAME", b"proxy:fcgi://127.0.0.1:19000/submit"),
    (b"REMOTE_PORT", b"43664"),
    (b"GATEWAY_INTERFACE", b"CGI/1.1"),
    (b"SERVER_PROTOCOL", b"HTTP/1.1"),
    (b"REQUEST_METHOD", b"POST"),
    (b"QUERY_STRING", b""),
    (b"REQUEST_URI", b"/submit"),
    (b"SCRIPT_NAME", b"/submit"),
]
APACHE_POST_STDIN = b"hello=world"
