"""Issue 8, items 4, 9 and 10: what a first-time user writes in the config file, and what edged says about it.

Every case is a real file read by `load_config` (or by `edged run`, for what the user sees on the terminal).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edged.config import load_config
from edged.errors import ConfigError

CLASSIFIER = Path(__file__).parent / "fixtures" / "models" / "shapes_classifier_quant.tflite"
MODEL = f'[model]\npath = "{CLASSIFIER}"\nnum_threads = 1\n'


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    return str(raised.value)


def edged_run(config: Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edged", "run", "--config", str(config)],
        capture_output=True, text=True, timeout=120, cwd=cwd,
    )  # fmt: skip


# ---- item 4: a relative camera.source is relative to the config file ------------------------------------------------


def test_a_relative_video_file_is_relative_to_the_config_file(tmp_path: Path) -> None:
    config = write(tmp_path / "etc" / "edged.toml", MODEL + '[camera]\ntype = "opencv"\nsource = "videos/clip.avi"\n')
    assert load_config(config).camera.source == str(tmp_path / "etc" / "videos" / "clip.avi")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "source",
    ["0", "2", "/dev/video0", "rtsp://user:pw@192.168.1.20:554/stream1", "http://cam.lan/video.mjpg",
     "/srv/videos/clip.mp4"],
)  # fmt: skip
def test_device_indexes_urls_and_absolute_paths_stay_as_written(tmp_path: Path, source: str) -> None:
    config = write(tmp_path / "etc" / "edged.toml", MODEL + f'[camera]\ntype = "opencv"\nsource = "{source}"\n')
    assert load_config(config).camera.source == source  # type: ignore[attr-defined]


def test_edged_run_reads_a_relative_video_from_anywhere(tmp_path: Path) -> None:
    """Under the systemd unit the working directory is /var/lib/edged, not the config file's folder."""
    folder = tmp_path / "etc"
    folder.mkdir()
    writer = cv2.VideoWriter(str(folder / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 96))
    for i in range(12):
        writer.write(np.full((96, 96, 3), i * 20, np.uint8))
    writer.release()
    config = write(
        folder / "edged.toml",
        MODEL + '[camera]\ntype = "opencv"\nsource = "clip.avi"\nrealtime = false\n'
        "[camera.reconnect]\ninitial_s = 0.1\nmax_s = 0.2\nmax_attempts = 2\n",
    )
    elsewhere = tmp_path / "var" / "lib" / "edged"
    elsewhere.mkdir(parents=True)
    done = edged_run(config, cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 12


# ---- item 9: a config file that is not UTF-8 ------------------------------------------------------------------------

ENCODED = {
    "utf16-notepad": ('device_id = "cam"\n' + MODEL + '[camera]\ntype = "synthetic"\n').encode("utf-16"),
    "latin1-cafe": (MODEL + '[camera]\ntype = "synthetic"\nid = "café"\n').encode("latin-1"),
    "ff-fe-in-a-comment": b'device_id = "cam"\n# \xff\xfe\n' + (MODEL + '[camera]\ntype = "synthetic"\n').encode(),
}
LINE = {"utf16-notepad": 1, "latin1-cafe": 6, "ff-fe-in-a-comment": 2}


@pytest.mark.parametrize("case", sorted(ENCODED))
def test_a_config_that_is_not_utf8_is_one_line_naming_the_file_the_line_and_the_fix(tmp_path: Path, case: str) -> None:
    config = tmp_path / "edged.toml"
    config.write_bytes(ENCODED[case])
    done = edged_run(config)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith(f"edged: error: {config}:{LINE[case]}: ")
    assert "UTF-8" in lines[0] and "iconv" in lines[0]  # the fix: how to convert it


# ---- item 10: config slips ----------------------------------------------------------------------------------------


def test_an_mqtt_table_at_the_top_level_is_named_with_its_line_and_the_fix(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", MODEL + '[camera]\ntype = "synthetic"\n\n[mqtt]\nhost = "broker.lan"\n')
    message = error_of(config)
    assert f"{config}:7: mqtt:" in message  # the [mqtt] line
    assert "[publisher]" in message and 'type = "mqtt"' in message


@pytest.mark.parametrize(
    ("camera", "key", "line"),
    [
        ('type = "opencv"\nsource = "0"\nimages = "/x"', "images", 7),
        ('type = "images"\nsource = "/x"', "source", 6),
    ],
)
def test_a_key_of_another_camera_type_is_explained_not_suggested_back(
    tmp_path: Path, camera: str, key: str, line: int
) -> None:
    config = write(tmp_path / "c.toml", MODEL + f"[camera]\n{camera}\n")
    message = error_of(config)
    assert f"{config}:{line}: camera.{key}:" in message
    assert f"did you mean {key!r}" not in message
    assert "type" in message.split(f"camera.{key}:", 1)[1]  # says which type the key belongs to, or what to write


@pytest.mark.parametrize(
    ("table", "setting", "key"),
    [
        ('[camera]\ntype = "opencv"\nsource = "a.mp4"', 'loop = "yes"', "camera.loop"),
        ('[camera]\ntype = "opencv"\nsource = "a.mp4"', 'realtime = "no"', "camera.realtime"),
        ('[camera]\ntype = "opencv"\nsource = "a.mp4"', "loop = 0", "camera.loop"),
        ('[camera]\ntype = "synthetic"\n[pipeline]', 'max_fps = "5"', "pipeline.max_fps"),
    ],
)
def test_wrong_types_are_refused_not_coerced(tmp_path: Path, table: str, setting: str, key: str) -> None:
    text = MODEL + f"{table}\n{setting}\n"
    config = write(tmp_path / "c.toml", text)
    line = text.splitlines().index(setting) + 1
    assert f"{config}:{line}: {key}: must be" in error_of(config)


@pytest.mark.parametrize(("setting", "key"), [('threshold = "0.5"', "threshold"), ("top_k = 3.0", "top_k")])
def test_wrong_model_types_are_refused_not_coerced(tmp_path: Path, setting: str, key: str) -> None:
    config = write(tmp_path / "c.toml", MODEL + f'{setting}\n[camera]\ntype = "synthetic"\n')
    assert f"{config}:4: model.{key}: must be" in error_of(config)


def test_a_reconnect_delay_larger_than_its_cap_is_refused(tmp_path: Path) -> None:
    config = write(
        tmp_path / "c.toml", MODEL + '[camera]\ntype = "synthetic"\n[camera.reconnect]\ninitial_s = 10\nmax_s = 1\n'
    )
    message = error_of(config)
    assert "camera.reconnect" in message and "initial_s" in message and "max_s" in message
