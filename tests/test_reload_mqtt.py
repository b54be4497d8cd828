"""Reloads that touch the publisher, against real mosquitto brokers: a broker change restarts only the publisher
and loses nothing buffered; a publish-mode change applies live without reconnecting; the `reload` command."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from reload_support import CLASSIFIER, EdgedProcess, write_config
from support.broker import Collector, Mosquitto, broker_for_tests, free_port


def config_text(port: int, publisher_extra: str = "", pipeline: str = "") -> str:
    return (
        'device_id = "rl"\n'
        f'[model]\npath = "{CLASSIFIER}"\nnum_threads = 1\n'
        '[camera]\ntype = "synthetic"\nwidth = 96\nheight = 96\nfps = 20\n'
        f"[pipeline]\n{pipeline}\n"
        f'[publisher]\ntype = "mqtt"\nhost = "127.0.0.1"\nport = {port}\nhomeassistant = false\n'
        f"reconnect_min_s = 1\nreconnect_max_s = 2\n{publisher_extra}\n"
    )


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with broker_for_tests(tmp_path / "broker") as running:
        yield running


def test_a_broker_change_restarts_only_the_publisher_and_loses_nothing_buffered(
    tmp_path: Path, broker: Mosquitto
) -> None:
    unreachable = free_port()  # nothing listens here: every result waits in the publisher's buffer
    config = write_config(tmp_path / "edged.toml", config_text(unreachable))
    with EdgedProcess(config) as edged, Collector(broker.port, ["edged/rl/#"], client_id="reload-new") as collector:
        assert edged.wait_for(lambda: "connection attempt 2 failed" in edged.log_text()), edged.log_text()
        write_config(config, config_text(broker.port))
        edged.reload()
        assert collector.wait_for(lambda ms: len([m for m in ms if m.topic == "edged/rl/results"]) >= 60)
        assert collector.wait_for(lambda ms: any(b"config_reloaded" in m.payload for m in ms))
        assert edged.stop() == 0
        assert collector.wait_for(lambda ms: ms[-1].topic == "edged/rl/availability" and ms[-1].payload == b"offline")
    log = edged.log_text()
    moved = re.search(r"handed (\d+) undelivered result\(s\) to the new publisher", log)
    assert moved and int(moved.group(1)) >= 20, log  # 2 failed attempts at 20 fps: at least a second of results
    seqs = [m.json()["seq"] for m in collector.on("edged/rl/results")]
    assert seqs[:60] == list(range(60))  # the buffered results first, from the very first, in order, then new ones
    assert len({m.json()["run_id"] for m in collector.on("edged/rl/results")}) == 1
    events = [m.json() for m in collector.on("edged/rl/events")]
    reloaded = [e for e in events if e["event"] == "config_reloaded"]
    assert reloaded and reloaded[0]["replaced"] == ["publisher"] and reloaded[0]["changed"] == ["publisher.port"]


def test_a_publish_mode_change_applies_live_without_reconnecting(tmp_path: Path, broker: Mosquitto) -> None:
    config = write_config(tmp_path / "edged.toml", config_text(broker.port, pipeline="stats_interval_s = 1"))
    with EdgedProcess(config) as edged, Collector(broker.port, ["edged/rl/#"], client_id="reload-mode") as collector:
        assert collector.wait_for(lambda ms: len([m for m in ms if m.topic == "edged/rl/results"]) >= 10)
        write_config(config, config_text(broker.port, 'mode = "interval"\ninterval_s = 3600.0',
                                         "stats_interval_s = 1"))  # fmt: skip
        collector.publish("edged/rl/cmd/reload", json.dumps({"id": "r-1"}))
        assert collector.wait_for(lambda ms: any(m.topic == "edged/rl/cmd/reload/reply" for m in ms))
        reply = collector.on("edged/rl/cmd/reload/reply")[0].json()

        def skipped(messages: list) -> int:  # type: ignore[type-arg]
            stats = [m.json() for m in messages if m.topic == "edged/rl/stats"]
            return int(stats[-1]["mqtt"]["skipped_by_mode"]) if stats else 0

        assert collector.wait_for(lambda ms: skipped(ms) >= 20)  # results now held back by the interval mode
        assert edged.stop() == 0
    assert reply["ok"] is True and reply["id"] == "r-1", reply
    assert reply["result"]["changed"] == ["publisher.mode", "publisher.interval_s"]
    assert reply["result"]["replaced"] == []
    stats = [m.json() for m in collector.on("edged/rl/stats")]
    assert stats[-1]["mqtt"]["connects"] == 1  # the same connection all along
    assert broker.log_text().count("as edged-rl") == 1  # the broker saw the device connect once


def test_the_reload_command_replies_with_the_refusal(tmp_path: Path, broker: Mosquitto) -> None:
    config = write_config(tmp_path / "edged.toml", config_text(broker.port))
    with EdgedProcess(config) as edged, Collector(broker.port, ["edged/rl/#"], client_id="reload-cmd") as collector:
        assert collector.wait_for(lambda ms: any(m.topic == "edged/rl/results" for m in ms))
        text = config_text(broker.port).replace("fps = 20", "fps = -1")
        write_config(config, text)
        collector.publish("edged/rl/cmd/reload", "{}")
        assert collector.wait_for(lambda ms: any(m.topic == "edged/rl/cmd/reload/reply" for m in ms))
        assert edged.stop() == 0
    reply = collector.on("edged/rl/cmd/reload/reply")[0].json()
    line = text.splitlines().index("fps = -1") + 1
    assert reply["ok"] is False and f"{config}:{line}: camera.fps" in reply["error"]
    rejected = [m.json() for m in collector.on("edged/rl/events") if m.json()["event"] == "config_rejected"]
    assert rejected and rejected[0]["problems"][0].startswith(f"{config}:{line}: camera.fps")


def test_a_publisher_replaced_on_the_same_broker_stays_online_and_loses_nothing(
    tmp_path: Path, broker: Mosquitto
) -> None:
    """The old publisher's goodbye (`offline`, retained) lands on the topic the new one uses: the new one must have
    the last word, or Home Assistant would show a running device as unavailable."""
    config = write_config(tmp_path / "edged.toml", config_text(broker.port))
    with EdgedProcess(config) as edged, Collector(broker.port, ["edged/rl/#"], client_id="reload-same") as collector:
        assert collector.wait_for(lambda ms: len([m for m in ms if m.topic == "edged/rl/results"]) >= 10)
        write_config(config, config_text(broker.port, "buffer_max_messages = 5000"))
        edged.reload()
        assert collector.wait_for(lambda ms: any(b"config_reloaded" in m.payload for m in ms))
        count = len(collector.on("edged/rl/results"))
        assert collector.wait_for(lambda ms: len([m for m in ms if m.topic == "edged/rl/results"]) >= count + 20)
        with Collector(broker.port, ["edged/rl/availability"], client_id="reload-late") as late:  # retained only
            assert late.wait_for(lambda ms: bool(ms))
            retained = late.on("edged/rl/availability")[-1]
        assert edged.stop() == 0
    print(broker.log_text()[-3000:])
    assert retained.retain and retained.payload == b"online"
    assert "already connected, closing old connection" not in broker.log_text()  # the two never fought
    reloaded = [m.json() for m in collector.on("edged/rl/events") if m.json()["event"] == "config_reloaded"]
    assert reloaded[0]["replaced"] == ["publisher"]
    seqs = sorted({m.json()["seq"] for m in collector.on("edged/rl/results")})
    assert seqs == list(range(len(seqs)))  # at least once, none missing (an in-flight one may come twice)
