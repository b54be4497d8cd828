"""The daemon end to end with real parts: synthetic and file sources, a live MJPEG stream that goes away and
comes back, the stdout publisher in a real `edged run` process, signals, and bad sources."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import cv2
import jsonschema
import numpy as np
import pytest
from pipeline_support import BackgroundDaemon, RecordingPublisher, wait_until
from support.mjpeg_server import MjpegServer

from edged.app.daemon import Daemon
from edged.config import parse_config
from edged.config.app import AppConfig
from edged.errors import EdgedError, SourceError
from edged.inference.model import file_sha256

MODELS = Path(__file__).parent / "fixtures" / "models"
DETECTOR = MODELS / "shapes_yolov8_int8.tflite"
CLASSIFIER = MODELS / "shapes_classifier_quant.tflite"
RESULT_SCHEMA = json.loads((files("edged") / "schemas" / "result.schema.json").read_text())


def config_text(camera: str, model: Path = DETECTOR, extra: str = "") -> str:
    return f'device_id = "test"\n[model]\npath = "{model}"\nnum_threads = 1\n\n[camera]\n{camera}\n{extra}'


def config(camera: str, model: Path = DETECTOR, extra: str = "") -> AppConfig:
    return parse_config(config_text(camera, model, extra))


def edged_run(tmp_path: Path, text: str) -> subprocess.Popen[str]:
    path = tmp_path / "edged.toml"
    path.write_text(text)
    return subprocess.Popen(
        [sys.executable, "-m", "edged", "run", "--config", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_run_prints_one_valid_result_per_frame_with_contiguous_seq(tmp_path: Path) -> None:
    camera = 'type = "synthetic"\nwidth = 320\nheight = 240\nframes = 40\nrealtime = false'
    process = edged_run(tmp_path, config_text(camera))
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    results = [json.loads(line) for line in out.splitlines()]
    assert [r["seq"] for r in results] == list(range(40))
    assert len({r["run_id"] for r in results}) == 1
    for result in results:
        jsonschema.validate(result, RESULT_SCHEMA)
    assert results[0]["model"]["sha256"] == file_sha256(DETECTOR.read_bytes())
    assert results[0]["source"] == {"id": "camera", "frame_index": 0, "width": 320, "height": 240}
    found = {obj["label"] for r in results for obj in r["objects"]}
    assert found <= {"red_square", "green_circle", "blue_triangle"} and found


def write_video(path: Path, frames: int) -> Path:
    """A small MJPG .avi of flat grey frames, each a little brighter than the last."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for i in range(frames):
        writer.write(np.full((120, 160, 3), i * 10 % 256, np.uint8))
    writer.release()
    return path


def test_file_source_processes_every_frame_when_not_realtime(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi", 25)
    publisher = RecordingPublisher()
    daemon = Daemon(config(f'type = "opencv"\nsource = "{video}"\nrealtime = false', CLASSIFIER), publisher=publisher)
    assert daemon.run() == 0
    assert [r["source"]["frame_index"] for r in publisher.results] == list(range(25))
    assert publisher.source_states()[-1] == "finished"
    assert publisher.flushed and publisher.stopped


def test_live_stream_reconnects_by_itself() -> None:
    camera = (
        'type = "opencv"\nsource = "{url}"\nread_timeout_s = 5\nopen_timeout_s = 10\n'
        "[camera.reconnect]\ninitial_s = 0.2\nmax_s = 1.0\n"
    )
    with MjpegServer(width=160, height=120, fps=15.0) as server:
        publisher = RecordingPublisher()
        with BackgroundDaemon(config(camera.format(url=server.url), CLASSIFIER), publisher) as running:
            assert publisher.wait_for(lambda: len(publisher.results) >= 5), "no results from the stream"
            server.stop()
            assert publisher.wait_for(lambda: "reconnecting" in publisher.source_states()), publisher.events
            errors = running.daemon.stats_counters.totals
            failed = errors["source_errors"]
            assert wait_until(lambda: errors["source_errors"] >= failed + 2)  # attempts fail against the closed port
            before = len(publisher.results)
            server.restart()
            assert publisher.wait_for(lambda: len(publisher.results) >= before + 5), "did not resume"
            exit_code = running.stop()
    assert exit_code == 0
    assert publisher.source_states()[:3] == ["streaming", "reconnecting", "streaming"]
    seqs = [r["seq"] for r in publisher.results]
    assert seqs == list(range(len(seqs)))


def test_sigterm_stops_cleanly_and_exits_zero(tmp_path: Path) -> None:
    camera = 'type = "synthetic"\nwidth = 160\nheight = 120\nfps = 20'
    process = edged_run(tmp_path, config_text(camera, CLASSIFIER))
    assert process.stdout is not None
    first = json.loads(process.stdout.readline())
    assert first["seq"] == 0
    process.send_signal(signal.SIGTERM)
    rest, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    seqs = [0] + [json.loads(line)["seq"] for line in rest.splitlines()]
    assert seqs == list(range(len(seqs)))
    assert "SIGTERM received: stopping" in err


@pytest.mark.parametrize(
    ("camera", "expected"),
    [
        ('type = "opencv"\nsource = "rtsp://user:secret@127.0.0.1:1/stream"\nopen_timeout_s = 2', "rtsp://user:***@"),
        ('type = "opencv"\nsource = "/dev/video9"', "/dev/video9 does not exist"),
        ('type = "images"\npath = "/nonexistent/folder"\nwatch = true', "/nonexistent/folder"),
    ],
)
def test_bad_sources_retry_as_configured_then_fail_with_a_message(camera: str, expected: str) -> None:
    publisher = RecordingPublisher()
    text = camera + "\n[camera.reconnect]\ninitial_s = 0.05\nmax_s = 0.1\nmax_attempts = 3\n"
    exit_code = Daemon(config(text, CLASSIFIER), publisher=publisher).run()
    assert exit_code == 1
    assert publisher.source_states()[-1] == "failed"
    failures = [
        e for e in publisher.events if e["event"] == "source_state" and e["state"] in ("reconnecting", "failed")
    ]
    assert len(failures) >= 2
    assert expected in failures[-1]["detail"]
    assert "secret" not in json.dumps(publisher.events)


@pytest.mark.parametrize(
    ("camera", "expected"),
    [
        ('type = "opencv"\nsource = "{tmp}/nope.mp4"', "nope.mp4 does not exist"),
        ('type = "opencv"\nsource = "{tmp}/broken.mp4"', "not a video"),
        ('type = "images"\npath = "{tmp}/missing"', "missing does not exist"),
        ('type = "images"\npath = "{tmp}/broken.mp4"', "is not a folder"),
    ],
)
def test_permanent_source_errors_fail_at_start_without_retrying(tmp_path: Path, camera: str, expected: str) -> None:
    """Nothing fixes these by waiting: with the default max_attempts = 0 (retry for ever) they still fail at once."""
    (tmp_path / "broken.mp4").write_bytes(os.urandom(4096))
    publisher = RecordingPublisher()
    daemon = Daemon(config(camera.format(tmp=tmp_path), CLASSIFIER), publisher=publisher)
    with pytest.raises(SourceError, match=expected) as info:
        daemon.run(handle_signals=False)
    assert info.value.permanent
    assert not [e for e in publisher.events if e.get("state") == "reconnecting"]
    assert publisher.stopped  # the publisher started before the source was opened is released again
    assert daemon.threads.alive() == []  # and so is every thread


def test_a_permanent_source_error_exits_1_with_the_fix(tmp_path: Path) -> None:
    process = edged_run(tmp_path, config_text(f'type = "opencv"\nsource = "{tmp_path}/nope.mp4"', CLASSIFIER))
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "edged: error: camera: video file" in err and "does not exist; check camera.source" in err
    assert "retrying" not in err and "Traceback" not in err


def _write_images(folder: Path, sizes: list[tuple[int, int]], value: int = 128) -> None:
    folder.mkdir(exist_ok=True)
    for i, (w, h) in enumerate(sizes):
        cv2.imwrite(str(folder / f"img_{i:03d}.png"), np.full((h, w, 3), value, np.uint8))


def test_folder_with_junk_and_changing_frame_sizes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "inbox"
    _write_images(folder, [(64, 48), (64, 48), (200, 100), (50, 90)])
    (folder / "notes.txt").write_text("not an image")
    (folder / "img_999.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    publisher = RecordingPublisher()
    with caplog.at_level("INFO"):
        assert Daemon(config(f'type = "images"\npath = "{folder}"', CLASSIFIER), publisher=publisher).run() == 0
    assert [(r["source"]["width"], r["source"]["height"]) for r in publisher.results] == [
        (64, 48), (64, 48), (200, 100), (50, 90)
    ]  # fmt: skip
    assert "notes.txt" in caplog.text and "img_999.jpg" in caplog.text
    assert "frame size changed from 64x48 to 200x100" in caplog.text


def test_black_frames_are_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "dark"
    _write_images(folder, [(32, 32)] * 35, value=0)
    publisher = RecordingPublisher()
    with caplog.at_level("WARNING"):
        assert Daemon(config(f'type = "images"\npath = "{folder}"', CLASSIFIER), publisher=publisher).run() == 0
    assert "black frames" in caplog.text
    assert any(e["event"] == "black_frames" for e in publisher.events)
    assert publisher.stats[-1]["totals"]["black_frames"] == 35


def test_pause_and_resume_and_snapshot() -> None:
    publisher = RecordingPublisher()
    camera = 'type = "synthetic"\nwidth = 160\nheight = 120\nfps = 30'
    with BackgroundDaemon(config(camera, DETECTOR), publisher) as running:
        assert publisher.wait_for(lambda: len(publisher.results) >= 3)
        daemon = running.daemon
        jpeg = daemon.snapshot_jpeg(annotated=True)
        assert jpeg is not None and jpeg[:2] == b"\xff\xd8"
        daemon.pause()  # returns once the frame in flight has been published
        paused_at = len(publisher.results)
        totals = daemon.stats_counters.totals
        captured = totals["captured"]
        assert wait_until(lambda: totals["captured"] >= captured + 30)  # 30 frames arrive meanwhile...
        assert len(publisher.results) == paused_at  # ...and none is published
        daemon.resume()
        assert publisher.wait_for(lambda: len(publisher.results) > paused_at + 2)
        state = daemon.state()
        assert state["model"]["name"] == "shapes_yolov8_int8" and state["source"]["state"] == "streaming"
    assert [e["event"] for e in publisher.events].count("paused") == 1


def test_bench_reports_every_stage(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi", 8)
    done = subprocess.run(
        [sys.executable, "-m", "edged", "-q", "bench", "--model", str(CLASSIFIER), "--source", str(video),
         "--frames", "30", "--threads", "1", "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["frames"] == 30 and report["fps"] > 0 and report["dropped"] == 0
    assert set(report["stages"]) == {"capture", "preprocess", "inference", "decode", "publish"}
    assert report["model"]["name"] == "shapes_classifier_quant" and report["threads"] == 1
    limit = report["cpu_bound"]  # measured in the same run: the stages' CPU per frame, the fps it allows, the fraction
    assert set(limit["stage_cpu_ms"]) == {"capture", "preprocess", "inference", "decode"}
    assert limit["cpu_ms_per_frame"] == pytest.approx(sum(limit["stage_cpu_ms"].values()), abs=0.01)
    assert limit["limit_fps"] > 0 and limit["usable_cores"] >= 1
    assert limit["fraction"] == pytest.approx(report["fps"] / limit["limit_fps"], rel=0.01)


def test_bench_needs_a_file_source(tmp_path: Path) -> None:
    config_file = tmp_path / "edged.toml"
    config_file.write_text(config_text('type = "synthetic"', CLASSIFIER))
    done = subprocess.run(
        [sys.executable, "-m", "edged", "bench", "--config", str(config_file)], capture_output=True, text=True
    )
    assert done.returncode == 1 and "needs a file source" in done.stderr and "Traceback" not in done.stderr


def test_publisher_labels_must_be_labels_of_the_model() -> None:
    """A typo here would give Home Assistant a sensor that never turns on: refuse it at start, with a hint."""
    camera = 'type = "synthetic"\nframes = 1'
    publisher = '[publisher]\ntype = "mqtt"\nhost = "127.0.0.1"\nlabels = ["red_square", "red_sqare"]\n'
    with pytest.raises(EdgedError) as raised:
        Daemon(config(camera, DETECTOR, publisher)).start()
    message = str(raised.value)
    assert "publisher.labels: 'red_sqare' is not one of the model's labels (did you mean 'red_square'" in message
