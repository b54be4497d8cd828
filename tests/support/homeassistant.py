"""A real Home Assistant Core for tests: its own venv (.venv-ha, `make ha-venv`), a fresh config folder, onboarding
through its onboarding API, MQTT added through the config-flow REST API, and small REST and websocket clients.

Home Assistant is started with --skip-pip (its integrations' requirements are installed by `make ha-venv`) and
only the integrations the test needs, on a free loopback port. It is a test dependency only, in a venv of its own
so its pins never touch edged's.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from support.broker import free_port

ROOT = Path(__file__).resolve().parents[2]
INSTALL_HINT = "make ha-venv (homeassistant==2024.3.3 and josepy<2 in .venv-ha)"

CONFIGURATION = """homeassistant:
  name: edged test
  latitude: 0
  longitude: 0
  elevation: 0
  unit_system: metric
  time_zone: UTC
  currency: EUR
  country: FR
http:
  server_host: 127.0.0.1
  server_port: {port}
onboarding:
config:
api:
websocket_api:
person:
logger:
  default: warning
  logs:
    homeassistant.components.mqtt: info
"""


def hass_binary() -> Path | None:
    venv = Path(os.environ.get("EDGED_HA_VENV", ROOT / ".venv-ha"))
    binary = venv / "bin" / "hass"
    return binary if binary.exists() else None


def ha_version(binary: Path) -> tuple[int, int]:
    out = subprocess.run([str(binary.parent / "python"), "-c", "import homeassistant.const as c; print(c.__version__)"],
                         capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    major, minor = out.split(".")[:2]
    return int(major), int(minor)


class HomeAssistant:
    def __init__(self, binary: Path, workdir: Path) -> None:
        self.binary = binary
        self.config_dir = workdir / "ha-config"
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        (self.config_dir / "configuration.yaml").write_text(CONFIGURATION.format(port=self.port))
        self.log_path = workdir / "home-assistant.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.token = ""
        self.base = f"http://127.0.0.1:{self.port}"
        self.client_id = self.base + "/"

    # ---- process ---------------------------------------------------------------------------------------------
    def start(self, timeout_s: float = 180.0) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen([str(self.binary), "-c", str(self.config_dir), "--skip-pip"],
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Home Assistant exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            with contextlib.suppress(OSError):
                status, _ = self.request("GET", "/api/onboarding", auth=False)
                if status == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"Home Assistant did not answer within {timeout_s} s:\n{self.log()[-3000:]}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # ---- HTTP --------------------------------------------------------------------------------------------------
    def request(self, method: str, path: str, payload: object = None, *, auth: bool = True,
                form: dict[str, str] | None = None) -> tuple[int, Any]:  # fmt: skip
        headers = {"Authorization": f"Bearer {self.token}"} if auth and self.token else {}
        data = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif payload is not None:
            data = json.dumps(payload).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                body = response.read()
                return response.status, json.loads(body) if body else None
        except urllib.error.HTTPError as error:
            body = error.read()
            try:
                return error.code, json.loads(body)
            except ValueError:
                return error.code, body.decode(errors="replace")

    def onboard(self) -> None:
        """Create the owner through the onboarding API and log in with the auth code it returns."""
        status, answer = self.request("POST", "/api/onboarding/users", {
            "client_id": self.client_id, "name": "Test", "username": "test", "password": "test-password-1",
            "language": "en",
        }, auth=False)  # fmt: skip
        assert status == 200, (status, answer, self.log()[-2000:])
        status, tokens = self.request("POST", "/auth/token", auth=False, form={
            "grant_type": "authorization_code", "code": answer["auth_code"], "client_id": self.client_id,
        })  # fmt: skip
        assert status == 200, (status, tokens)
        self.token = tokens["access_token"]

    def login(self) -> None:
        """After a restart: log in again through the login flow."""
        status, flow = self.request("POST", "/auth/login_flow", {
            "client_id": self.client_id, "handler": ["homeassistant", None], "redirect_uri": self.client_id,
        }, auth=False)  # fmt: skip
        assert status == 200, (status, flow)
        status, done = self.request("POST", f"/auth/login_flow/{flow['flow_id']}", {
            "client_id": self.client_id, "username": "test", "password": "test-password-1",
        }, auth=False)  # fmt: skip
        assert status == 200 and done["type"] == "create_entry", (status, done)
        status, tokens = self.request("POST", "/auth/token", auth=False, form={
            "grant_type": "authorization_code", "code": done["result"], "client_id": self.client_id,
        })  # fmt: skip
        assert status == 200, (status, tokens)
        self.token = tokens["access_token"]

    def add_mqtt(self, host: str, port: int) -> None:
        """The MQTT integration through the config-flow REST API, as the UI adds it."""
        status, flow = self.request("POST", "/api/config/config_entries/flow",
                                    {"handler": "mqtt", "show_advanced_options": False})  # fmt: skip
        assert status == 200, (status, flow)
        while flow.get("type") == "form":
            step = {"broker": host, "port": port} if flow.get("step_id") == "broker" else {}
            status, flow = self.request("POST", f"/api/config/config_entries/flow/{flow['flow_id']}", step)
            assert status == 200, (status, flow)
        assert flow.get("type") == "create_entry", (flow, self.log()[-2000:])

    def states(self) -> dict[str, dict[str, Any]]:
        status, answer = self.request("GET", "/api/states")
        assert status == 200, answer
        return {state["entity_id"]: state for state in answer}

    def call_service(self, domain: str, service: str, data: dict[str, Any]) -> None:
        status, answer = self.request("POST", f"/api/services/{domain}/{service}", data)
        assert status == 200, (status, answer)

    # ---- websocket -------------------------------------------------------------------------------------------
    def ws(self, *messages: dict[str, Any]) -> list[Any]:
        """Send each message over one authenticated websocket; returns their results."""
        import websocket  # websocket-client (a dependency of selenium, in the test extra)

        connection = websocket.create_connection(f"ws://127.0.0.1:{self.port}/api/websocket", timeout=30)
        try:
            assert json.loads(connection.recv())["type"] == "auth_required"
            connection.send(json.dumps({"type": "auth", "access_token": self.token}))
            assert json.loads(connection.recv())["type"] == "auth_ok"
            results = []
            for number, message in enumerate(messages, start=1):
                connection.send(json.dumps({"id": number, **message}))
                while True:
                    answer = json.loads(connection.recv())
                    if answer.get("id") == number and answer.get("type") == "result":
                        assert answer["success"], answer
                        results.append(answer["result"])
                        break
            return results
        finally:
            connection.close()

    def registry(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        entities, devices = self.ws({"type": "config/entity_registry/list"}, {"type": "config/device_registry/list"})
        return entities, devices
