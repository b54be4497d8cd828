"""The status page's server in a running daemon, over real HTTP on loopback: the JSON API, the live view, the
snapshot, the event stream, /metrics, /healthz, commands, slow clients and the stop."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import cv2
import jsonschema
import numpy as np
import pytest
from pipeline_support import BackgroundDaemon, RecordingPublisher, wait_until
from prometheus_client.parser import text_string_to_metric_families
from support.web import TOKEN, Client, config_text, http_table, mjpeg_frames, sse_events

from edged.config import parse_config

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def schema(name: str) -> dict[str, Any]:
    return json.loads((resources.files("edged") / "schemas" / name).read_text())  # type: ignore[no-any-return]


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[BackgroundDaemon, RecordingPublisher, Client]]:
    publisher = RecordingPublisher()
    config = parse_config(config_text(http_table(token_file=tmp_path / "token", extra="max_streams = 4\n")))
    with BackgroundDaemon(config, publisher) as background:
        assert wait_until(lambda: background.daemon.web is not None and len(publisher.results) >= 3)
        web = background.daemon.web
        assert web is not None
        yield background, publisher, Client(web.port)


def decode_jpeg(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a JPEG"
    return np.asarray(image)


def test_state_stats_and_recent_results(running: tuple[BackgroundDaemon, RecordingPublisher, Client]) -> None:
    _, publisher, client = running
    state = client.get("/api/state")
    assert state.status == 200 and state.headers["content-type"] == "application/json"
    body = state.json()
    daemon_part = {k: v for k, v in body.items() if k not in ("publisher", "hosting", "commands", "health")}
    jsonschema.validate(daemon_part, schema("state.schema.json"))
    assert body["model"]["name"] == "shapes_yolov8_int8" and body["source"]["state"] == "streaming"
    assert body["commands"] == list(running[0].daemon.dispatcher.names)  # every command the daemon has
    wanted = {"pause", "resume", "snapshot", "check_update", "install_update", "rollback", "set_paused"}
    assert wanted <= set(body["commands"])
    assert body["publisher"] == {"type": "recording", "link": None} or body["publisher"]["link"] is None
    assert body["hosting"] is None and body["health"]["status"] == "ok"
    assert body["page_url"] == f"http://127.0.0.1:{client.port}/"
    stats = client.get("/api/stats").json()
    jsonschema.validate(stats, schema("stats.schema.json"))
    assert stats["totals"]["inferred"] >= 3
    recent = client.get("/api/results/recent?limit=5").json()["results"]
    assert 1 <= len(recent) <= 5
    for result in recent:
        jsonschema.validate(result, schema("result.schema.json"))
    seqs = [r["seq"] for r in recent]
    assert seqs == sorted(seqs) and seqs[-1] <= publisher.results[-1]["seq"]
    assert client.get("/api/results/recent?limit=0").status == 400
    assert client.get("/api/results/recent?limit=x").status == 400
    assert client.get("/nothing-here").status == 404
    assert client.post("/api/state").status == 405


def test_snapshot_and_live_view_show_the_newest_frames(
    running: tuple[BackgroundDaemon, RecordingPublisher, Client],
) -> None:
    _, _, client = running
    snapshot = client.get("/snapshot.jpg")
    assert snapshot.status == 200 and snapshot.headers["content-type"] == "image/jpeg"
    assert decode_jpeg(snapshot.body).shape == (240, 320, 3)
    plain = client.get("/snapshot.jpg?annotated=0")
    assert plain.status == 200 and decode_jpeg(plain.body).shape == (240, 320, 3)
    connection, response = client.stream("/stream.mjpg")
    try:
        assert response.status == 200
        assert response.getheader("Content-Type", "").startswith("multipart/x-mixed-replace; boundary=")
        frames = []
        for jpeg in mjpeg_frames(response):
            frames.append(decode_jpeg(jpeg))
            if len(frames) == 4:
                break
    finally:
        connection.close()
    assert all(frame.shape == (240, 320, 3) for frame in frames)
    assert any(not np.array_equal(frames[0], other) for other in frames[1:]), "the live view did not change"


def test_event_stream_carries_results_and_lifecycle_events(
    running: tuple[BackgroundDaemon, RecordingPublisher, Client],
) -> None:
    background, _, client = running
    connection, response = client.stream("/api/events")
    try:
        assert response.status == 200 and response.getheader("Content-Type") == "text/event-stream"
        events = sse_events(response)
        name, result = next(events)
        assert name == "result"
        jsonschema.validate(result, schema("result.schema.json"))
        paused = client.post("/api/command/pause", headers=AUTH)
        assert paused.status == 200 and paused.json()["result"] == {"paused": True}
        for name, data in events:
            if name == "edged" and data["event"] == "paused":
                jsonschema.validate(data, schema("event.schema.json"))
                break
        assert background.daemon.paused
        assert client.post("/api/command/resume", headers=AUTH).json()["result"] == {"paused": False}
    finally:
        connection.close()


def samples(text: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            found[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return found


def test_metrics_are_cumulative_and_named_by_convention(
    running: tuple[BackgroundDaemon, RecordingPublisher, Client],
) -> None:
    background, publisher, client = running
    first = client.get("/metrics")
    assert first.status == 200 and first.headers["content-type"].startswith("text/plain; version=")
    before = samples(first.body.decode())
    for name in ("edged_frames_captured_total", "edged_frames_inferred_total", "edged_frames_dropped_total",
                 "edged_frames_skipped_total", "edged_results_published_total", "edged_inference_failures_total",
                 "edged_uptime_seconds", "edged_paused", "process_cpu_seconds_total"):  # fmt: skip
        assert name in before, name
    for histogram in ("inference", "preprocess", "decode", "capture_to_publish"):
        count = before[f"edged_{histogram}_seconds_count"]
        assert count >= 3 and before[f"edged_{histogram}_seconds_bucket{{le=+Inf}}"] == count
    assert before["edged_source_state{state=streaming}"] == 1 and before["edged_source_state{state=failed}"] == 0
    info = [key for key in before if key.startswith("edged_model_info{")]
    assert len(info) == 1 and "name=shapes_yolov8_int8" in info[0] and "task=detection" in info[0]
    seen = publisher.results[-1]["seq"]
    background.daemon.report_stats()  # a stats message resets the window ...
    assert wait_until(lambda: publisher.results[-1]["seq"] >= seen + 3)
    after = samples(client.get("/metrics").body.decode())
    for name in ("edged_frames_captured_total", "edged_frames_inferred_total", "edged_inference_seconds_count"):
        assert after[name] > before[name], name  # ... but never the counters
    buckets = [v for k, v in after.items() if k.startswith("edged_inference_seconds_bucket")]
    assert buckets == sorted(buckets), "histogram buckets must be cumulative"


def test_healthz_is_ok_while_frames_flow_and_paused(
    running: tuple[BackgroundDaemon, RecordingPublisher, Client],
) -> None:
    background, _, client = running
    health = client.get("/healthz")
    assert health.status == 200 and health.json() == {"status": "ok", "reason": "frames flow"}
    background.daemon.pause()
    assert client.get("/healthz").json() == {"status": "ok", "reason": "paused"}
    background.daemon.resume()


def test_healthz_reports_a_source_that_is_down(tmp_path: Path) -> None:
    camera = 'type = "opencv"\nsource = "rtsp://viewer:s3cret-pw@127.0.0.1:9/stream"\nopen_timeout_s = 1.0\n'
    config = parse_config(config_text(http_table(), camera=camera + "[camera.reconnect]\ninitial_s = 0.2\n"))
    publisher = RecordingPublisher()
    with BackgroundDaemon(config, publisher) as background:
        assert wait_until(lambda: background.daemon.stats_counters.source_state == "reconnecting")
        assert background.daemon.web is not None
        client = Client(background.daemon.web.port)
        health = client.get("/healthz")
        assert health.status == 503
        assert health.json() == {"status": "unhealthy", "reason": "the source is reconnecting"}
        for path in ("/api/state", "/api/stats", "/metrics", "/healthz", "/api/results/recent"):
            assert b"s3cret-pw" not in client.get(path).body, path  # the camera's password never leaves


def test_commands_reply_like_every_other_front_end(
    running: tuple[BackgroundDaemon, RecordingPublisher, Client],
) -> None:
    background, publisher, client = running
    jsonschema_reply = schema("command-reply.schema.json")
    reply = client.post("/api/command/pause", {"id": "web-1"}, headers=AUTH)
    assert reply.status == 200
    jsonschema.validate(reply.json(), jsonschema_reply)
    assert reply.json()["id"] == "web-1" and background.daemon.paused
    count = len(publisher.results)
    state = client.get("/api/state").json()
    assert state["paused"] is True and len(publisher.results) == count  # nothing after the "paused" reply
    refused = client.post("/api/command/snapshot", headers=AUTH)  # the recording publisher keeps no pictures
    assert refused.status == 409 and refused.json()["ok"] is False and "pictures" in refused.json()["error"]
    assert client.post("/api/command/pause", {"bogus": 1}, headers=AUTH).status == 409
    unknown = client.post("/api/command/reboot", headers=AUTH)
    assert unknown.status == 404 and "known commands: pause" in unknown.json()["error"]
    bad = client.request("POST", "/api/command/resume", "{not json", {"Content-Type": "application/json", **AUTH})
    assert bad.status == 400 and "not JSON" in bad.json()["error"]
    assert client.post("/api/command/resume", headers=AUTH).json()["result"] == {"paused": False}
    assert wait_until(lambda: len(publisher.results) > count)


def test_slow_and_stuck_live_view_clients_never_hold_up_the_pipeline_or_the_api(
    running: tuple[BackgroundDaemon, RecordingPublisher, Client],
) -> None:
    """Four clients open the live view and never read; results keep coming, the API answers, a fifth viewer is
    turned away with 503, and the stuck clients' frames are dropped, not queued without bound."""
    background, publisher, client = running
    stuck = []
    for _ in range(4):
        sock = socket.create_connection(("127.0.0.1", client.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        stuck.append(sock)
    try:
        app = background.daemon.web.app if background.daemon.web else None
        assert app is not None
        assert wait_until(lambda: app.stream_slots.in_use == 4)
        seen = len(publisher.results)
        encoded = app.jpegs.encoded
        assert wait_until(lambda: len(publisher.results) >= seen + 40), "inference slowed by stuck viewers"
        assert client.get("/api/state").status == 200
        assert client.get("/metrics").status == 200
        fifth = client.get("/stream.mjpg")
        assert fifth.status == 503 and "max_streams" in fifth.json()["error"]
        # each JPEG is encoded once for everyone, at most stream_fps a second, not once per result per client
        assert app.jpegs.encoded - encoded < len(publisher.results) - seen
    finally:
        for sock in stuck:
            sock.close()
    assert wait_until(lambda: app.stream_slots.in_use == 0), "closed viewers must give their slot back"


def test_the_daemon_stops_cleanly_with_viewers_connected(tmp_path: Path) -> None:
    publisher = RecordingPublisher()
    config = parse_config(config_text(http_table()))
    background = BackgroundDaemon(config, publisher)
    with background:
        assert wait_until(lambda: background.daemon.web is not None and len(publisher.results) >= 2)
        assert background.daemon.web is not None
        client = Client(background.daemon.web.port)
        streams = [client.stream("/stream.mjpg"), client.stream("/api/events")]
        reader_done = threading.Event()

        def drain() -> None:
            for _ in mjpeg_frames(streams[0][1]):
                pass
            reader_done.set()

        threading.Thread(target=drain, daemon=True).start()
        assert background.stop() == 0
    assert reader_done.wait(10), "the live view was not closed at the stop"
    leftover = [t.name for t in threading.enumerate() if t.name.startswith("edged-http")]
    assert not leftover, leftover
    for connection, _ in streams:
        connection.close()
