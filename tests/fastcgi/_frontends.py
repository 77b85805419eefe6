"""Real front ends on loopback for the end-to-end tests: nginx, Apache mod_proxy_fcgi, mod_fcgid.

Each writes its configuration into a temporary directory and runs in the foreground under
``tests._servers.run_server``, stopped by its process group at the end. The configurations
are the ones the how-to pages document (docs/how-to/), with paths filled in.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests._servers import ServerProcess, free_port, require_binary, run_server

ROOT = Path(__file__).resolve().parents[2]
APACHE_MODULES = Path("/usr/lib/apache2/modules")


def nginx_config(run_dir: Path, http_port: int, tcp_backend: str, unix_backend: Path) -> str:
    temp = {name: run_dir / name for name in ("body", "fastcgi", "proxy", "uwsgi", "scgi")}
    for path in temp.values():
        path.mkdir(exist_ok=True)
    return f"""
user root;
worker_processes 1;
pid {run_dir}/nginx.pid;
error_log {run_dir}/nginx-error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {run_dir}/nginx-access.log;
    client_body_temp_path {temp["body"]};
    fastcgi_temp_path {temp["fastcgi"]};
    proxy_temp_path {temp["proxy"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};

    # --- as in docs/how-to/nginx.rst -----------------------------------------------
    upstream anysgi_tcp {{
        server {tcp_backend};
        keepalive 16;
    }}
    upstream anysgi_unix {{
        server unix:{unix_backend};
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{http_port};
        client_max_body_size 0;              # the application decides (max_request_body)

        # nginx's default: a new connection per request, FCGI_KEEP_CONN unset.
        location /nokeep/ {{
            include /etc/nginx/fastcgi_params;
            fastcgi_pass {tcp_backend};
        }}
        # Mounted under a prefix: split_path_info makes SCRIPT_NAME the mount point.
        location /unix/ {{
            fastcgi_split_path_info ^(/unix)(/.*)$;
            include /etc/nginx/fastcgi_params;
            fastcgi_param PATH_INFO $fastcgi_path_info;
            fastcgi_pass anysgi_unix;
            fastcgi_keep_conn on;
            fastcgi_buffering off;           # stream responses as they are produced
            fastcgi_request_buffering off;   # stream uploads instead of spooling them
        }}
        location / {{
            include /etc/nginx/fastcgi_params;
            fastcgi_pass anysgi_tcp;
            fastcgi_keep_conn on;
            fastcgi_buffering off;
            fastcgi_request_buffering off;
        }}
    }}
}}
"""


@contextlib.contextmanager
def nginx(run_dir: Path, tcp_backend: str, unix_backend: Path) -> Iterator[str]:
    """nginx in front of a running anysgi; yields its base URL."""
    binary = require_binary("nginx", apt="nginx")
    port = free_port()
    config = run_dir / "nginx.conf"
    config.write_text(nginx_config(run_dir, port, tcp_backend, unix_backend))
    with run_server(
        [binary, "-c", str(config), "-g", "daemon off;"],
        name="nginx",
        log_dir=run_dir,
        ready=("127.0.0.1", port),
        stop_signal=15,
        extra_logs=[run_dir / "nginx-error.log"],
    ):
        yield f"http://127.0.0.1:{port}"


def _apache_common(run_dir: Path, port: int, modules: list[str]) -> str:
    loads = "\n".join(
        f"LoadModule {name}_module {APACHE_MODULES}/mod_{name}.so" for name in modules
    )
    return f"""
ServerRoot /etc/apache2
ServerName localhost
Listen 127.0.0.1:{port}
PidFile {run_dir}/httpd.pid
DefaultRuntimeDir {run_dir}
ErrorLog {run_dir}/apache-error.log
LogLevel warn
User www-data
Group www-data
Mutex pthread
LoadModule mpm_event_module {APACHE_MODULES}/mod_mpm_event.so
LoadModule authz_core_module {APACHE_MODULES}/mod_authz_core.so
{loads}
"""


def apache_proxy_fcgi_config(run_dir: Path, port: int, backend_port: int) -> str:
    return (
        _apache_common(run_dir, port, ["proxy", "proxy_fcgi"])
        + f"""
# --- as in docs/how-to/apache-proxy-fcgi.rst ----------------------------------------
ProxyPass "/" "fcgi://127.0.0.1:{backend_port}/" enablereuse=on flushpackets=on
"""
    )


@contextlib.contextmanager
def apache(run_dir: Path, config_text: str, port: int) -> Iterator[ServerProcess]:
    binary = require_binary("apache2", apt="apache2")
    config = run_dir / "httpd.conf"
    config.write_text(config_text)
    env = {"APACHE_RUN_DIR": str(run_dir), "APACHE_LOG_DIR": str(run_dir)}
    with run_server(
        [binary, "-f", str(config), "-DFOREGROUND"],
        name="apache",
        log_dir=run_dir,
        env=env,
        ready=("127.0.0.1", port),
        extra_logs=[run_dir / "apache-error.log"],
    ) as server:
        yield server


def fcgid_config(run_dir: Path, port: int, docroot: Path) -> str:
    ipc = run_dir / "fcgid"
    (run_dir / "mime.types").write_text("")
    return (
        _apache_common(run_dir, port, ["fcgid", "rewrite", "mime", "dir", "alias"])
        + f"""
TypesConfig {run_dir}/mime.types
FcgidIPCDir {ipc}
FcgidProcessTableFile {ipc}/shm
# --- as in docs/how-to/apache-fcgid.rst ----------------------------------------------
FcgidMaxRequestLen 268435456
FcgidOutputBufferSize 0
FcgidMaxProcessesPerClass 4
FcgidIOTimeout 60
DocumentRoot {docroot}
<Directory {docroot}>
    Options +ExecCGI +FollowSymLinks
    AllowOverride All
    Require all granted
</Directory>
"""
    )


HTACCESS = """\
# --- as in docs/how-to/apache-fcgid.rst (a shared-hosting .htaccess) -------------------
AddHandler fcgid-script .fcgi
RewriteEngine On
RewriteCond %{REQUEST_FILENAME} !-f
RewriteRule ^(.*)$ index.fcgi/$1 [QSA,L]
"""

WRAPPER = """\
#!/bin/sh
# --- as in docs/how-to/apache-fcgid.rst ------------------------------------------------
export CONTROL_DIR={control}
exec {python} -m anysgi serve tests.fastcgi.frontend_apps:app --root-path {mount} \\
    --backend {backend}
"""


def world_readable_dir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def build_www_python(where: Path) -> Path:
    """A virtualenv Apache's www-data user can run, with anysgi from this working tree.

    Built from Debian's /usr/bin/python3 (the project's own interpreter may live where
    www-data cannot read, such as /root). anyio, trio, FastAPI and Flask are installed from
    the package index (or uv's cache); anysgi and the tests' apps are copied from this
    working tree next to it and put on its path with a .pth file.
    """
    system_python = "/usr/bin/python3"
    if not Path(system_python).exists():  # pragma: no cover
        require_binary("/usr/bin/python3", apt="python3-venv")
    uv = shutil.which("uv")
    venv = where / "venv"
    if uv is not None:
        subprocess.run(
            [uv, "venv", "-q", "-p", "/usr/bin/python3", str(venv)], check=True, timeout=120
        )
        subprocess.run(
            [
                uv,
                "pip",
                "install",
                "-q",
                "--link-mode",
                "copy",
                "-p",
                str(venv / "bin" / "python"),
                "anyio",
                "trio",
                "fastapi",
                "flask",
                "typing_extensions",
            ],
            check=True,
            timeout=600,
        )
    else:  # pragma: no cover
        subprocess.run([system_python, "-m", "venv", str(venv)], check=True, timeout=120)
        subprocess.run(
            [venv / "bin" / "pip", "install", "-q", "anyio", "fastapi", "flask"],
            check=True,
            timeout=600,
        )
    purelib = subprocess.run(
        [
            venv / "bin" / "python",
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # The code under test, copied from this working tree: the tree itself may sit where
    # www-data cannot read (a clone under /root).
    site = where / "site"
    shutil.copytree(ROOT / "src" / "anysgi", site / "anysgi")
    (site / "tests" / "fastcgi").mkdir(parents=True)
    for name in ("__init__.py", "fastcgi/__init__.py", "fastcgi/frontend_apps.py"):
        shutil.copy(ROOT / "tests" / name, site / "tests" / name)
    Path(purelib, "anysgi-worktree.pth").write_text(f"{site}\n")
    for dirpath, dirnames, filenames in os.walk(where):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            if not path.is_symlink():
                extra = 0o755 if path.is_dir() else 0o644
                path.chmod(path.stat().st_mode | extra)
    return venv / "bin" / "python"


def write_fcgid_site(docroot: Path, python: Path, control: Path, backends: list[str]) -> None:
    """One directory per backend, each a shared-hosting site: .htaccess and index.fcgi."""
    for backend in backends:
        site = docroot / backend
        site.mkdir(mode=0o755)
        site.chmod(0o755)
        (site / ".htaccess").write_text(HTACCESS)
        wrapper = site / "index.fcgi"
        wrapper.write_text(
            WRAPPER.format(control=control, python=python, mount=f"/{backend}", backend=backend)
        )
        wrapper.chmod(0o755)
        (site / ".htaccess").chmod(0o644)


def anysgi_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "anysgi", "serve", "tests.fastcgi.frontend_apps:app", *args]
