"""End to end through real web servers: nginx, Apache mod_proxy_fcgi, Apache mod_fcgid.

Every front end runs its documented configuration (docs/how-to/) on loopback; anysgi runs on
asyncio and on trio behind each. mod_fcgid spawns ``anysgi serve`` itself, as www-data,
through a ``.fcgi`` wrapper and an ``.htaccess`` as shared hosting has them (the listening
socket is fd 0; ``--root-path`` fixes the mount point).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests._servers import free_port, run_server, wait_for_unix

from ._frontends import (
    anysgi_command,
    apache,
    apache_proxy_fcgi_config,
    build_www_python,
    fcgid_config,
    nginx,
    world_readable_dir,
    write_fcgid_site,
)

pytestmark = pytest.mark.servers

BACKENDS = ("asyncio", "trio")
FRONTENDS = ("nginx", "nginx-unix", "proxy_fcgi", "fcgid")
UPLOAD = 200 * 1024 * 1024


@dataclass(frozen=True)
class Site:
    """Where a front end serves the app: base URL, and the mount point the app must see."""

    url: str
    mount: str  # the URL path prefix the site lives under
    root_path: str  # what the application must get as root_path

    def __str__(self) -> str:
        return self.url + self.mount


class Sites:
    """Front ends and backends, started on first use and kept for the module."""

    def __init__(self, stack: contextlib.ExitStack, tmp: pytest.TempPathFactory) -> None:
        self.stack = stack
        self.tmp = tmp
        self.control = world_readable_dir("anysgi-control-")
        self.control.chmod(0o777)
        stack.callback(_rmtree, self.control)
        self.backends: dict[str, tuple[str, Path]] = {}
        self.cache: dict[tuple[str, str], Site] = {}
        self.fcgid_url: str | None = None

    def backend(self, backend: str) -> tuple[str, Path]:
        if backend not in self.backends:
            run_dir = world_readable_dir("anysgi-backend-")
            self.stack.callback(_rmtree, run_dir)
            port = free_port()
            sock = run_dir / "app.sock"
            argv = anysgi_command(
                "--bind", f"127.0.0.1:{port}", "--bind", f"unix:{sock}",
                "--unix-socket-mode", "666", "--backend", backend,
            )  # fmt: skip
            server = self.stack.enter_context(
                run_server(
                    argv,
                    name=f"anysgi-{backend}",
                    log_dir=self.tmp.mktemp("logs"),
                    cwd=Path(__file__).resolve().parents[2],
                    env={"CONTROL_DIR": str(self.control)},
                    ready=("127.0.0.1", port),
                )
            )
            wait_for_unix(sock, proc=server.proc)
            self.backends[backend] = (f"127.0.0.1:{port}", sock)
        return self.backends[backend]

    def get(self, frontend: str, backend: str) -> Site:
        key = (frontend, backend)
        if key in self.cache:
            return self.cache[key]
        if frontend.startswith("nginx"):
            tcp, sock = self.backend(backend)
            url = self.stack.enter_context(nginx(self.tmp.mktemp(f"nginx-{backend}"), tcp, sock))
            self.cache["nginx", backend] = Site(url, "", "")
            self.cache["nginx-unix", backend] = Site(url, "/unix", "/unix")
        elif frontend == "proxy_fcgi":
            tcp, _ = self.backend(backend)
            port = free_port()
            run_dir = self.tmp.mktemp(f"apache-{backend}")
            config = apache_proxy_fcgi_config(run_dir, port, int(tcp.rpartition(":")[2]))
            self.stack.enter_context(apache(run_dir, config, port))
            self.cache[key] = Site(f"http://127.0.0.1:{port}", "", "")
        else:
            if self.fcgid_url is None:
                self.fcgid_url = self.start_fcgid()
            for name in BACKENDS:
                self.cache["fcgid", name] = Site(self.fcgid_url, f"/{name}", f"/{name}")
        return self.cache[key]

    def start_fcgid(self) -> str:
        www = world_readable_dir("anysgi-www-")
        self.stack.callback(_rmtree, www)
        python = build_www_python(www)
        docroot = www / "htdocs"
        docroot.mkdir(mode=0o755)
        write_fcgid_site(docroot, python, self.control, list(BACKENDS))
        run_dir = world_readable_dir("anysgi-apache-")
        self.stack.callback(_rmtree, run_dir)
        ipc = run_dir / "fcgid"
        ipc.mkdir()
        os.chown(ipc, _www_data_uid(), -1)
        port = free_port()
        self.stack.enter_context(apache(run_dir, fcgid_config(run_dir, port, docroot), port))
        return f"http://127.0.0.1:{port}"


def _www_data_uid() -> int:
    import pwd

    return pwd.getpwnam("www-data").pw_uid


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sites]:
    with contextlib.ExitStack() as stack:
        yield Sites(stack, tmp_path_factory)


@pytest.fixture(params=[(f, b) for f in FRONTENDS for b in BACKENDS], ids="-".join)
def site(request: pytest.FixtureRequest, sites: Sites) -> Site:
    frontend, backend = request.param
    return sites.get(frontend, backend)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=60) as http:
        yield http


def test_get(site: Site, client: httpx.Client) -> None:
    response = client.get(f"{site}/hello/caf%C3%A9?x=1&y=%2F")
    assert response.status_code == 200, response.text
    assert response.text.startswith(
        f"GET path={site.mount}/hello/café root_path={site.root_path} query=x=1&y=%2F"
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_nginx_without_keepalive(sites: Sites, backend: str, client: httpx.Client) -> None:
    """FCGI_KEEP_CONN unset: the server closes after each response, and nothing is lost."""
    url = sites.get("nginx", backend).url
    for _ in range(20):
        response = client.post(f"{url}/nokeep/echo", content=b"y" * 100_000)
        assert response.status_code == 200, response.text
        assert response.text.startswith("100000 ")


def test_post_with_a_body(site: Site, client: httpx.Client) -> None:
    body = os.urandom(300_000)
    response = client.post(f"{site}/echo", content=body)
    assert response.status_code == 200, response.text
    assert response.text == f"{len(body)} {hashlib.sha256(body).hexdigest()}"


def test_streaming_response_arrives_incrementally(
    site: Site, client: httpx.Client, sites: Sites
) -> None:
    key = uuid.uuid4().hex
    with client.stream("GET", f"{site}/stream?key={key}") as response:
        chunks = response.iter_raw()
        first = next(chunks)
        # The app sends its second chunk only after we have seen the first one.
        assert first == b"chunk-1\n"
        (sites.control / key).touch()
        rest = b"".join(chunks)
    assert rest == b"chunk-2\n"


def test_upload_200_mib(site: Site, client: httpx.Client) -> None:
    block = hashlib.sha256(b"seed").digest() * (65536 // 32)
    digest = hashlib.sha256()
    for _ in range(UPLOAD // len(block)):
        digest.update(block)

    def blocks() -> Iterator[bytes]:
        for _ in range(UPLOAD // len(block)):
            yield block

    response = client.post(
        f"{site}/upload", content=blocks(), headers={"content-length": str(UPLOAD)}
    )
    assert response.status_code == 200, response.text
    assert response.text == f"{UPLOAD} {digest.hexdigest()}"


def test_client_that_disconnects(site: Site, sites: Sites) -> None:
    key = uuid.uuid4().hex
    with httpx.Client(timeout=30) as http, http.stream("GET", f"{site}/forever?key={key}") as r:
        assert r.status_code == 200
        next(r.iter_raw())
    report = sites.control / key
    deadline = time.monotonic() + 15
    # The app, in another process, writes the file when its send() fails: poll for it.
    while not report.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert report.read_text() == "send raised OSError"


def test_fastapi(site: Site, client: httpx.Client) -> None:
    got = client.get(f"{site}/fastapi/items/3")
    assert got.status_code == 200, got.text
    assert got.json() == {"item_id": 3, "root_path": f"{site.root_path}/fastapi"}
    created = client.post(f"{site}/fastapi/items", json={"name": "x"})
    assert created.status_code == 200, created.text
    # url_for builds from root_path: right only if the mount point came out right. (Debian's
    # stock fastcgi_params send HTTP_HOST as $host, without the port: compare paths.)
    assert created.json()["created"] == {"name": "x"}
    assert httpx.URL(created.json()["url"]).path == f"{site.mount}/fastapi/items/7"


def test_flask(site: Site, client: httpx.Client) -> None:
    got = client.get(f"{site}/flask/hello/bob")
    assert got.status_code == 200, got.text
    assert got.json() == {"hello": "bob", "script_name": f"{site.root_path}/flask"}
    posted = client.post(f"{site}/flask/echo-json", json={"a": [1, 2]})
    assert json.loads(posted.text) == {"got": {"a": [1, 2]}}
