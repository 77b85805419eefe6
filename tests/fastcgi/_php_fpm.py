"""A real php-fpm from Debian, started on loopback TCP and a Unix socket for the tests.

php-fpm is what most FastCGI traffic in the world talks to, so the client is tested against
it: its PHP scripts see the params the client sends (``$_SERVER``), its status page and ping
are answered by php-fpm itself, and it has its own opinions (it needs SCRIPT_FILENAME, reads
only CONTENT_LENGTH bytes of STDIN, resets the connection on roles other than Responder).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests._servers import free_port, require_binary, run_server, wait_for_unix

#: Workers per pool: each serves one kept-alive connection at a time.
WORKERS = 4

SCRIPTS = {
    "server.php": r"""<?php
header("Content-Type: application/json");
echo json_encode([
    "server" => $_SERVER,
    "get" => $_GET,
    "post" => $_POST,
    "input" => file_get_contents("php://input"),
    "pid" => getmypid(),
]);
""",
    "big.php": r"""<?php
// ?mib=N streams N MiB in 64 KiB chunks, flushing each one.
header("Content-Type: application/octet-stream");
$chunk = str_repeat("x", 65536);
$count = intval($_GET["mib"] ?? "1") * 16;
for ($i = 0; $i < $count; $i++) { echo $chunk; flush(); }
""",
    "gate.php": r"""<?php
// Sends a first chunk, then waits (up to 10 s) for the file named by ?marker= to exist:
// the client creates it once it has that chunk, which only works if responses stream.
while (ob_get_level()) { ob_end_flush(); }  // output_buffering = 4096 in Debian's php.ini
echo "first,"; flush();
$deadline = microtime(true) + 10;
while (!file_exists($_GET["marker"]) && microtime(true) < $deadline) { usleep(1000); }
echo file_exists($_GET["marker"]) ? "second" : "timeout";
""",
    "warn.php": r"""<?php
error_log("something odd");
http_response_code(418);
echo "teapot";
""",
    "moved.php": r"""<?php
header("Location: /elsewhere");
""",
}


@dataclass(frozen=True)
class PhpFpm:
    tcp: str
    unix: str
    root: Path
    log: Path


def _config(tmp: Path, port: int) -> str:
    pools = []
    for name, listen in (("tcp", f"127.0.0.1:{port}"), ("unix", str(tmp / "php-fpm.sock"))):
        pools.append(
            f"""
[{name}]
user = root
group = root
listen = {listen}
pm = static
pm.max_children = {WORKERS}
pm.status_path = /status
ping.path = /ping
catch_workers_output = yes
"""
        )
    return f"""[global]
pid = {tmp / "php-fpm.pid"}
error_log = {tmp / "php-fpm.log"}
daemonize = no
""" + "".join(pools)


@pytest.fixture(scope="session")
def php_fpm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PhpFpm]:
    binary = require_binary("php-fpm8.2", apt="php-fpm")
    tmp = tmp_path_factory.mktemp("php-fpm")
    root = tmp / "www"
    root.mkdir()
    for name, text in SCRIPTS.items():
        (root / name).write_text(text)
    port = free_port()
    config = tmp / "php-fpm.conf"
    config.write_text(_config(tmp, port))
    argv = [binary, "--nodaemonize", "--fpm-config", str(config)]
    if os.geteuid() == 0:
        argv.append("--allow-to-run-as-root")
    check = subprocess.run([*argv, "--test"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    with run_server(
        argv,
        name="php-fpm",
        log_dir=tmp,
        ready=("127.0.0.1", port),
        extra_logs=[tmp / "php-fpm.log"],
    ):
        wait_for_unix(tmp / "php-fpm.sock")
        yield PhpFpm(
            tcp=f"127.0.0.1:{port}",
            unix=f"unix:{tmp / 'php-fpm.sock'}",
            root=root,
            log=tmp / "php-fpm.log",
        )
