"""A real nginx (Debian's) on a free loopback port, serving a repository directory: the static host of the hosting
tests. Its access log tells a test what devices asked for and which answers were 304 Not Modified.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from support.broker import HOST, free_port

INSTALL_HINT = "install it with: sudo apt-get install nginx"


def find_nginx() -> str | None:
    return shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(path, os.X_OK)), None
    )


def require_nginx() -> str:
    """The nginx binary; skips the test when it is missing, or fails it with EDGED_REQUIRE_NGINX=1 (CI)."""
    binary = find_nginx()
    if binary is None:
        message = f"nginx is not installed; {INSTALL_HINT}"
        if os.environ.get("EDGED_REQUIRE_NGINX") == "1":
            pytest.fail(message + " (EDGED_REQUIRE_NGINX=1 makes this a failure)")
        pytest.skip(message)
    return binary


class Nginx:
    def __init__(self, root: Path, workdir: Path, binary: str) -> None:
        self.root = root
        self.workdir = workdir
        self.binary = binary
        self.port = free_port()
        self.access_log = workdir / "access.log"
        self.error_log = workdir / "error.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def _config(self) -> str:
        temp = self.workdir / "temp"
        user = "user root;\n" if os.geteuid() == 0 else ""  # else the workers run as nobody and cannot read tmp dirs
        return (
            f"{user}daemon off;\nworker_processes 1;\npid {self.workdir}/nginx.pid;\n"
            f"error_log {self.error_log} info;\nevents {{ worker_connections 64; }}\n"
            "http {\n"
            "  types { application/json json; application/octet-stream tflite; text/plain txt; }\n"
            "  default_type application/octet-stream;\n"
            "  log_format edged '$status $request_method $request_uri $body_bytes_sent';\n"
            f"  access_log {self.access_log} edged;\n"
            f"  client_body_temp_path {temp}/body; proxy_temp_path {temp}/proxy;\n"
            f"  fastcgi_temp_path {temp}/fastcgi; uwsgi_temp_path {temp}/uwsgi; scgi_temp_path {temp}/scgi;\n"
            "  etag on;\n"
            f"  server {{ listen {HOST}:{self.port}; root {self.root}; location / {{ }} }}\n"
            "}\n"
        )

    def start(self, timeout_s: float = 15.0) -> Nginx:
        (self.workdir / "temp").mkdir(parents=True, exist_ok=True)
        config = self.workdir / "nginx.conf"
        config.write_text(self._config())
        self.process = subprocess.Popen(
            [self.binary, "-c", str(config), "-p", str(self.workdir), "-e", str(self.error_log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                stderr = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"nginx exited with {self.process.returncode}: {stderr}{self.errors()}")
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), timeout=0.5):
                return self
            time.sleep(0.05)  # polling for the port to open, not synchronization between test steps
        raise RuntimeError(f"nginx did not listen on {self.port} within {timeout_s} s: {self.errors()}")

    def errors(self) -> str:
        return self.error_log.read_text(errors="replace")[-2000:] if self.error_log.exists() else ""

    def requests(self) -> list[tuple[int, str, str]]:
        """(status, method, uri) of every request so far (nginx writes its access log per request)."""
        if not self.access_log.exists():
            return []
        rows = []
        for line in self.access_log.read_text().splitlines():
            status, method, uri, _ = line.split(" ", 3)
            rows.append((int(status), method, uri))
        return rows

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.process is not None and self.process.stderr:
            self.process.stderr.close()
