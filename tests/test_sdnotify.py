"""systemd's notify protocol, spoken to a real AF_UNIX datagram socket standing in for systemd's, and the
watchdog keep-alives stopping while a model is stuck in invoke()."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pipeline_support import BackgroundDaemon, RecordingPublisher, wait_until

from edged.app.sdnotify import SystemdNotifier
from edged.config import parse_config
from edged.config.model import ModelConfig
from edged.inference.loader import load_bundle

CLASSIFIER = Path(__file__).parent / "fixtures" / "models" / "shapes_classifier_quant.tflite"


class NotifySocket:
    """The receiving end of sd_notify, as systemd binds it: a datagram socket at $NOTIFY_SOCKET, read as it
    arrives (the kernel queues only net.unix.max_dgram_qlen datagrams, often 10, for a receiver that does not)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.settimeout(0.05)
        self.messages: list[str] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._closed.is_set():
            # recv and append under one lock: drain() never sees a datagram half handed over
            with self._lock, contextlib.suppress(TimeoutError, OSError):
                self.messages.append(self.sock.recv(4096).decode())

    def drain(self) -> list[str]:
        """Everything received so far (a datagram sent before this call has arrived: AF_UNIX is synchronous)."""
        while True:
            with self._lock:
                if not self._pending():
                    return list(self.messages)
                self.messages.append(self.sock.recv(4096).decode())

    def _pending(self) -> bool:
        buf = bytearray(4)
        try:
            fcntl.ioctl(self.sock.fileno(), termios.FIONREAD, buf)
        except OSError:
            return False
        return int.from_bytes(buf, "little") > 0

    def count(self, line: str) -> int:
        return sum(line in message.splitlines() for message in self.drain())

    def close(self) -> None:
        self._closed.set()
        self._reader.join(2)
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    receiver = NotifySocket(str(tmp_path / "notify"))
    yield receiver
    receiver.close()


def test_messages_reach_a_filesystem_socket(notify_socket: NotifySocket) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": notify_socket.address, "WATCHDOG_USEC": "2000000"})
    notifier.ready("running m on camera")
    notifier.watchdog()
    notifier.stopping()
    notifier.close()
    assert notify_socket.drain() == ["READY=1\nSTATUS=running m on camera", "WATCHDOG=1", "STOPPING=1"]
    assert notifier.watchdog_s == 2.0


def test_an_abstract_socket_is_addressed_with_a_leading_nul() -> None:
    receiver = NotifySocket(f"@edged-test-{os.getpid()}-{time.monotonic_ns()}")
    try:
        SystemdNotifier({"NOTIFY_SOCKET": receiver.address}).status("hello")
        assert receiver.drain() == ["STATUS=hello"]
    finally:
        receiver.close()


def test_outside_systemd_nothing_is_sent_and_nothing_fails() -> None:
    notifier = SystemdNotifier({})
    notifier.ready("x")
    notifier.watchdog()
    assert not notifier.enabled and notifier.watchdog_s is None


def test_a_watchdog_meant_for_another_process_is_ignored(notify_socket: NotifySocket) -> None:
    environ = {"NOTIFY_SOCKET": notify_socket.address, "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}
    notifier = SystemdNotifier(environ)
    notifier.watchdog()
    assert notifier.watchdog_s is None and notify_socket.drain() == []


def test_a_vanished_socket_is_logged_once_and_never_raises(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    notifier.ready("x")
    notifier.status("y")
    assert caplog.text.count("cannot notify systemd") == 1


def test_edged_run_reports_ready_keeps_alive_and_stopping(tmp_path: Path, notify_socket: NotifySocket) -> None:
    config = tmp_path / "edged.toml"
    config.write_text(
        f'device_id = "test"\n[model]\npath = "{CLASSIFIER}"\nnum_threads = 1\n'
        '[camera]\ntype = "synthetic"\nwidth = 160\nheight = 120\nfps = 20\nframes = 60\n'
        "[pipeline]\nstats_interval_s = 1\n"
    )
    env = {**os.environ, "NOTIFY_SOCKET": notify_socket.address, "WATCHDOG_USEC": "1000000"}
    env.pop("WATCHDOG_PID", None)
    done = subprocess.run(
        [sys.executable, "-m", "edged", "run", "--config", str(config)],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    messages = notify_socket.drain()
    ready = [m for m in messages if m.startswith("READY=1")]
    assert ready == ["READY=1\nSTATUS=streaming: shapes_classifier_quant on camera"]
    assert "STATUS=finished: shapes_classifier_quant on camera" in messages  # the source state, not "running"
    assert messages[-1] == "STOPPING=1"
    assert notify_socket.count("WATCHDOG=1") >= 2  # 60 frames at 20 fps: about 3 s of keep-alives every 0.5 s
    assert any(m.startswith("STATUS=in ") and "fps" in m for m in messages)  # the stats line, for systemctl status


def test_keep_alives_stop_while_a_model_is_stuck_in_invoke(
    monkeypatch: pytest.MonkeyPatch, notify_socket: NotifySocket, caplog: pytest.LogCaptureFixture
) -> None:
    """A FAKE hung accelerator: the real classifier, whose predict() blocks from the 5th frame until released."""
    monkeypatch.setenv("NOTIFY_SOCKET", notify_socket.address)
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")  # a 1 s watchdog: stalled after 1 s, a keep-alive every 0.5 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    bundle = load_bundle(ModelConfig(path=CLASSIFIER, num_threads=1))
    real_predict = bundle.predict
    release = threading.Event()
    calls = 0

    def hung_predict(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 5:
            release.wait(120)
        return real_predict(*args, **kwargs)

    bundle.predict = hung_predict  # type: ignore[method-assign]
    config = parse_config(
        f'device_id = "test"\n[model]\npath = "{CLASSIFIER}"\n[camera]\ntype = "synthetic"\nwidth = 96\n'
        "height = 96\nfps = 30\n"
    )
    publisher = RecordingPublisher()

    def events(name: str) -> list[dict[str, Any]]:
        return [e for e in publisher.events if e["event"] == name]

    with caplog.at_level(logging.ERROR), BackgroundDaemon(config, publisher, bundle=bundle) as running:
        assert publisher.wait_for(lambda: bool(events("inference_stalled")))
        liveness = running.daemon.liveness
        assert liveness is not None
        during = notify_socket.count("WATCHDOG=1")  # AF_UNIX datagrams: everything sent so far has arrived
        ticks = liveness.ticks
        assert wait_until(lambda: liveness.ticks >= ticks + 6)  # at least three keep-alive periods of ticks
        assert notify_socket.count("WATCHDOG=1") == during, "a keep-alive was sent while the model was stuck"
        assert "inference has been stuck on one frame" in caplog.text and "watchdog is no longer fed" in caplog.text
        release.set()
        assert publisher.wait_for(lambda: bool(events("inference_resumed")))
        assert publisher.wait_for(lambda: notify_socket.count("WATCHDOG=1") > during)  # fed again
        assert running.stop() == 0
    schema = json.loads((Path(__file__).parents[1] / "edged" / "schemas" / "event.schema.json").read_text())
    for event in events("inference_stalled") + events("inference_resumed"):
        jsonschema.validate(event, schema)
    assert events("inference_stalled")[0]["stalled_s"] >= 1.0


class FakeWorker:
    """Stands in for the inference thread: how long its frame in flight has taken is set by the test."""

    def __init__(self) -> None:
        self.started: float | None = None

    def stuck_for(self, now: float) -> float:
        return 0.0 if self.started is None else now - self.started


def test_liveness_feeds_the_watchdog_only_while_frames_progress(notify_socket: NotifySocket) -> None:
    """Liveness driven by its injected clock: simulated seconds, no waiting."""
    from edged.app.liveness import Liveness

    notifier = SystemdNotifier({"NOTIFY_SOCKET": notify_socket.address, "WATCHDOG_USEC": "2000000"})
    worker, emitted = FakeWorker(), []
    liveness = Liveness(notifier, worker, lambda name, fields: emitted.append((name, fields)))
    for step in range(8):  # 4 s in quarter seconds: a keep-alive every watchdog / 2 = 1 s
        liveness.tick(step * 0.25 + 100.0)
    assert notify_socket.count("WATCHDOG=1") == 2
    worker.started = 102.0  # a frame goes in at t = 102 s and does not come back
    for step in range(40):
        liveness.tick(102.0 + step * 0.25)
    assert notify_socket.count("WATCHDOG=1") == 4  # fed until the frame had taken the 2 s limit, then never
    assert [name for name, _ in emitted] == ["inference_stalled"]
    worker.started = None
    liveness.tick(112.0)
    assert [name for name, _ in emitted] == ["inference_stalled", "inference_resumed"]
    assert emitted[1][1]["stalled_s"] == 10.0
    assert notify_socket.count("WATCHDOG=1") == 5  # fed again at once
    notifier.close()
