"""Issue 8, item 6: two devices with the same device_id (so the same MQTT client id) on one real mosquitto.

Two real `edged run` processes. Without a fix they take the connection from each other every second for ever.
With it, one of them notices the pattern, says so once (log and `client_id_conflict` event) with the client id and
the fix, and waits instead of taking the id back, so the other keeps a stable connection and keeps delivering.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from support.broker import Collector, Mosquitto, broker_for_tests

from edged.publish.mqtt.takeover import SESSION_TAKEN_OVER, TakeoverWatch, Verdict

CLASSIFIER = Path(__file__).parent / "fixtures" / "models" / "shapes_classifier_quant.tflite"
CONFLICT = "another client uses client id 'edged-twin'"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with broker_for_tests(tmp_path / "broker") as running:
        yield running


class Device:
    """One `edged run` whose stderr goes to a file the test can read at any time."""

    def __init__(self, tmp_path: Path, name: str, broker: Mosquitto, protocol: str) -> None:
        config = tmp_path / f"{name}.toml"
        config.write_text(
            f'device_id = "twin"\n[model]\npath = "{CLASSIFIER}"\nnum_threads = 1\n'
            '[camera]\ntype = "synthetic"\nwidth = 64\nheight = 64\nfps = 5\n'
            f'[publisher]\ntype = "mqtt"\nhost = "{broker.host}"\nport = {broker.port}\nhomeassistant = false\n'
            f'protocol = "{protocol}"\nreconnect_max_s = 20\n'
        )
        self.log_path = tmp_path / f"{name}.log"
        self._log: IO[str] = self.log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "edged", "run", "--config", str(config)],
            stdout=subprocess.DEVNULL, stderr=self._log, text=True,
        )  # fmt: skip

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(60)
        self._log.close()


def connections(broker: Mosquitto) -> int:
    return broker.log_text().count(" as edged-twin (")


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_twins_stop_fighting_and_one_says_why(tmp_path: Path, broker: Mosquitto, protocol: str) -> None:
    with Collector(broker.port, ["edged/twin/#"]) as watcher:
        first = Device(tmp_path, "first", broker, protocol)
        second: Device | None = None
        try:
            assert watcher.wait_for(lambda _: bool(watcher.on("edged/twin/results"))), first.log()
            second = Device(tmp_path, "second", broker, protocol)
            devices = (first, second)
            assert watcher.wait_for(lambda _: any(CONFLICT in d.log() for d in devices), 90), [d.log() for d in devices]
            loser = next(d for d in devices if CONFLICT in d.log())
            winner = second if loser is first else first
            message = next(line for line in loser.log().splitlines() if CONFLICT in line)
            assert "give each device its own device_id" in message.lower() and "waiting 20 s" in message.lower()
            # The loser waits 20 s: meanwhile the winner holds the id and delivers, and nobody reconnects.
            before = connections(broker)
            seen = len(watcher.on("edged/twin/results"))
            assert watcher.wait_for(lambda _: len(watcher.on("edged/twin/results")) >= seen + 5), winner.log()
            assert connections(broker) == before, "a device connected again while the other held the id"
            assert CONFLICT not in winner.log()
            # The error is published too, once the loser is connected again.
            events = lambda _: [json.loads(m.payload) for m in watcher.on("edged/twin/events")]  # noqa: E731
            conflict = lambda m: [e for e in events(m) if e["event"] == "client_id_conflict"]  # noqa: E731
            assert watcher.wait_for(lambda m: bool(conflict(m)), 120), loser.log()
            event = conflict(None)[0]
            assert event["client_id"] == "edged-twin" and event["retry_in_s"] == 20
            assert "device_id" in event["detail"]
        finally:
            first.stop()
            if second is not None:
                second.stop()


class Clock:
    """A clock the test moves by hand (the pure decision logic only; the processes above use the real one)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def session(watch: TakeoverWatch, clock: Clock, lived_s: float, reason: int | None = None) -> Verdict:
    watch.connected()
    clock.now += lived_s
    return watch.lost(reason)


def test_three_short_connections_in_a_row_are_a_conflict_and_the_wait_doubles() -> None:
    clock = Clock()
    watch = TakeoverWatch(reconnect_min_s=1, reconnect_max_s=60, clock=clock)
    assert [session(watch, clock, 1.0) for _ in range(2)] == [Verdict(), Verdict()]
    assert session(watch, clock, 1.0) == Verdict(wait_s=60, first=True)
    assert "most likely" in watch.explain("edged-x")
    assert session(watch, clock, 1.0) == Verdict(wait_s=120)
    assert session(watch, clock, 300.0) == Verdict(over=True)  # held for minutes: the id is ours again
    assert not watch.conflict


def test_a_broker_that_says_session_taken_over_is_believed_and_other_reasons_break_the_row() -> None:
    clock = Clock()
    watch = TakeoverWatch(reconnect_min_s=1, reconnect_max_s=30, clock=clock)
    session(watch, clock, 1.0, SESSION_TAKEN_OVER)
    session(watch, clock, 1.0, 0x8B)  # "server shutting down": not a takeover
    assert watch.in_a_row == 0
    verdicts = [session(watch, clock, 2.0, SESSION_TAKEN_OVER) for _ in range(3)]
    assert verdicts[-1] == Verdict(wait_s=30, first=True)
    assert "handed this connection over to another client 3 times" in watch.explain("edged-x")
