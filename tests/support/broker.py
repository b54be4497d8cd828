"""A private mosquitto on a free loopback port, and an MQTT subscriber that collects what arrives.

Shared by the tests and by `make demo` (tools/demo.py), so the broker is launched one way only. The broker can
be stopped and started again on the same port with its persistence file, which is how the outage test
simulates a broker restart: with `persistence true` and a subscriber holding a persistent session
(clean_session=False, QoS 1), the subscriber's queue survives the restart (stop it with SIGTERM so the
database is written).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INSTALL_HINT = "install it with: sudo apt-get install mosquitto mosquitto-clients"
HOST = "127.0.0.1"


def find_mosquitto() -> str | None:
    """The broker binary; Debian puts it in /usr/sbin, which is not on every user's PATH."""
    return shutil.which("mosquitto") or next(
        (path for path in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(path, os.X_OK)), None
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class BrokerTls:
    """Files for a TLS listener; with require_certificate, clients must present a certificate signed by `ca`."""

    ca: Path
    cert: Path
    key: Path
    require_certificate: bool = False


class Mosquitto:
    """One mosquitto process with its own config, persistence and log in `workdir`."""

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        *,
        tls: BrokerTls | None = None,
        password_file: Path | None = None,
        binary: str | None = None,
        log_subscriptions: bool = False,
    ) -> None:
        self.workdir = workdir
        self.log_subscriptions = log_subscriptions  # "<client> <qos> <filter>" lines: a test can wait for them
        self.port = port or free_port()
        self.tls = tls
        self.password_file = password_file
        self.binary = binary or find_mosquitto()
        if self.binary is None:
            raise FileNotFoundError(f"mosquitto is not installed; {INSTALL_HINT}")
        self.log_path = workdir / "mosquitto.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.forced_stops = 0  # stops that needed SIGKILL (then the last second of persistence may be lost)

    @property
    def host(self) -> str:
        return HOST

    def _config(self) -> str:
        lines = [
            f"listener {self.port} {HOST}",
            "persistence true",
            f"persistence_location {self.workdir}/",
            "persistence_file mosquitto.db",
            "autosave_interval 1",  # sessions survive even a broker that had to be SIGKILLed
            "max_queued_messages 1000000",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            *(["log_type subscribe"] if self.log_subscriptions else []),
            "connection_messages true",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # else mosquitto switches to user 'mosquitto', who cannot write here
        if self.password_file is not None:
            lines += ["allow_anonymous false", f"password_file {self.password_file}"]
        else:
            lines.append("allow_anonymous true")
        if self.tls is not None:
            lines += [f"cafile {self.tls.ca}", f"certfile {self.tls.cert}", f"keyfile {self.tls.key}"]
            lines.append(f"require_certificate {'true' if self.tls.require_certificate else 'false'}")
        return "\n".join(lines) + "\n"

    def start(self, timeout_s: float = 15.0) -> Mosquitto:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "mosquitto.conf"
        config.write_text(self._config())
        assert self.binary is not None
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [self.binary, "-c", str(config)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.process.returncode}:\n{self.log_text()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), timeout=0.5):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {HOST}:{self.port} within {timeout_s} s")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> None:
        """Stop the broker (SIGTERM writes its persistence database); SIGKILL if it does not exit in time."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.forced_stops += 1
            process.kill()
            process.wait(timeout_s)

    def restart(self) -> Mosquitto:
        self.stop()
        return self.start()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def make_password_file(path: Path, users: dict[str, str]) -> Path:
    """A mosquitto password file (hashed by mosquitto_passwd, which ships with the broker)."""
    tool = shutil.which("mosquitto_passwd") or "mosquitto_passwd"
    path.write_text("")
    for user, password in users.items():
        subprocess.run([tool, "-b", str(path), user, password], check=True, capture_output=True)
    path.chmod(0o600)
    return path


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    qos: int

    def json(self) -> Any:
        import json

        return json.loads(self.payload)


class Collector:
    """A paho subscriber that records every message; `wait_for` polls a predicate over what arrived."""

    def __init__(
        self,
        port: int,
        topics: list[str],
        *,
        client_id: str | None = None,
        persistent: bool = False,
        host: str = HOST,
        reconnect_s: tuple[int, int] = (1, 2),
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self._topics = topics
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"collector-{os.getpid()}-{id(self):x}",
            clean_session=not persistent,
        )
        self.client.reconnect_delay_set(*reconnect_s)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_: self.connected.clear()
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.connect_async(host, port, keepalive=30)

    def _on_connect(self, client: Any, _: Any, flags: Any, reason: Any, props: Any) -> None:
        if not reason.is_failure:
            client.subscribe([(topic, 1) for topic in self._topics])
            self.connected.set()

    def _on_subscribe(self, client: Any, _: Any, mid: int, reasons: Any, props: Any) -> None:
        self.subscribed.set()  # the SUBACK: from now on the broker routes the topics to this subscriber

    def _on_message(self, client: Any, _: Any, message: Any) -> None:
        with self._lock:
            self.messages.append(Received(message.topic, bytes(message.payload), bool(message.retain), message.qos))

    def start(self, timeout_s: float = 15.0) -> Collector:
        self.client.loop_start()
        if not self.connected.wait(timeout_s):
            raise RuntimeError("the test subscriber could not connect to the broker")
        if not self.subscribed.wait(timeout_s):
            raise RuntimeError("the broker did not acknowledge the test subscriber's subscription")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.messages)

    def on(self, topic: str) -> list[Received]:
        return [message for message in self.snapshot() if message.topic == topic]

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout_s: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate(self.snapshot()):
                return True
            time.sleep(0.05)
        return predicate(self.snapshot())

    def publish(self, topic: str, payload: bytes | str, retain: bool = False, properties: Any = None) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain, properties=properties).wait_for_publish(10)

    def __enter__(self) -> Collector:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def require_mosquitto() -> None:
    """Skip the calling test when mosquitto is missing, or fail it when EDGED_REQUIRE_BROKER=1 (CI)."""
    import pytest

    if find_mosquitto() is None or shutil.which("mosquitto_passwd") is None:
        message = f"mosquitto is not installed; {INSTALL_HINT}"
        if os.environ.get("EDGED_REQUIRE_BROKER") == "1":
            pytest.fail(message + " (EDGED_REQUIRE_BROKER=1 makes this a failure)")
        pytest.skip(message)


@contextlib.contextmanager
def broker_for_tests(workdir: Path, **options: Any) -> Iterator[Mosquitto]:
    """A running broker, or a pytest skip (a failure with EDGED_REQUIRE_BROKER=1) when mosquitto is missing."""
    require_mosquitto()
    broker = Mosquitto(workdir, **options)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
