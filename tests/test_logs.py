"""Log lines for journald (priority prefixes, no timestamps of edged's own when $JOURNAL_STREAM is our stderr),
JSON lines, the plain format elsewhere, and levels per component; on real `edged run` processes."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from support.broker import free_port

from edged import logs

CLASSIFIER = Path(__file__).parent / "fixtures" / "models" / "shapes_classifier_quant.tflite"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def run_edged(tmp_path: Path, text: str, *args: str, journal: bool = False) -> tuple[int, list[str]]:
    """`edged run` with stderr in a file; with `journal`, $JOURNAL_STREAM names that very file, as systemd does."""
    config = tmp_path / "edged.toml"
    config.write_text(text)
    err_path = tmp_path / "stderr.log"
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    with err_path.open("w") as err:
        if journal:
            status = os.fstat(err.fileno())
            env["JOURNAL_STREAM"] = f"{status.st_dev}:{status.st_ino}"
        done = subprocess.run([sys.executable, "-m", "edged", *args, "run", "--config", str(config)],
                              stdout=subprocess.DEVNULL, stderr=err, env=env, timeout=120)  # fmt: skip
    return done.returncode, err_path.read_text().splitlines()


def finite(extra: str = "", publisher: str = "") -> str:
    return (
        f'device_id = "logs"\n{extra}\n[model]\npath = "{CLASSIFIER}"\nnum_threads = 1\n'
        '[camera]\ntype = "synthetic"\nwidth = 64\nheight = 64\nfps = 30\nframes = 15\n'
        f"[pipeline]\nshutdown_timeout_s = 1.0\n{publisher}"
    )


def edged_lines(lines: list[str]) -> list[str]:
    """edged's own lines (LiteRT writes a line of its own to stderr from C, outside Python's logging)."""
    return [line for line in lines if "edged" in line and "TensorFlow Lite" not in line]


def test_under_journald_every_line_has_a_priority_and_no_timestamp(tmp_path: Path) -> None:
    dead = f'[publisher]\ntype = "mqtt"\nhost = "127.0.0.1"\nport = {free_port()}\nhomeassistant = false\n'
    code, lines = run_edged(tmp_path, finite() + dead, journal=True)
    assert code == 1  # the broker never answered: results were left undelivered at the stop
    ours = edged_lines(lines)
    assert ours and all(re.match(r"^<[2-7]>", line) for line in ours), ours
    assert not any(TIMESTAMP.match(line.split(">", 1)[1]) for line in ours)
    assert any(line.startswith("<6>edged.app.daemon: model shapes_classifier_quant") for line in ours)
    errors = [line for line in ours if line.startswith("<3>")]
    assert any("MQTT: connection attempt 1 failed" in line for line in errors), ours
    assert any("some messages were not delivered" in line for line in errors)


def test_the_final_error_line_has_a_priority_too(tmp_path: Path) -> None:
    text = finite().replace(str(CLASSIFIER), str(tmp_path / "missing.tflite"))
    code, lines = run_edged(tmp_path, text, journal=True)
    assert code == 1
    assert any(line.startswith("<3>edged: error:") and "missing.tflite" in line for line in lines), lines


def test_elsewhere_lines_keep_their_timestamp_and_no_priority(tmp_path: Path) -> None:
    code, lines = run_edged(tmp_path, finite())
    assert code == 0
    ours = edged_lines(lines)
    assert ours and all(TIMESTAMP.match(line) and not line.startswith("<") for line in ours), ours


def test_a_journal_stream_that_is_not_our_stderr_is_ignored(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.write_text("")
    status = os.stat(other)
    with (tmp_path / "stderr.log").open("w") as err:
        assert not logs.under_journald({"JOURNAL_STREAM": f"{status.st_dev}:{status.st_ino}"}, err)
        mine = os.fstat(err.fileno())
        assert logs.under_journald({"JOURNAL_STREAM": f"{mine.st_dev}:{mine.st_ino}"}, err)
        assert not logs.under_journald({"JOURNAL_STREAM": "garbage"}, err)


def test_json_lines_for_log_shippers(tmp_path: Path) -> None:
    code, lines = run_edged(tmp_path, finite(), "--log-format", "json", journal=True)  # the option wins
    assert code == 0
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert records and len(records) == len([line for line in lines if "TensorFlow Lite" not in line])
    assert {"time", "level", "logger", "message", "thread"} <= set(records[0])
    assert any(r["logger"] == "edged.app.daemon" and r["message"].startswith("model ") for r in records)
    assert all(r["time"].endswith("Z") for r in records)
    code, lines = run_edged(tmp_path, finite('[logging]\nformat = "json"'))  # or the config file
    assert code == 0 and any(line.startswith('{"time"') for line in lines)


def test_levels_per_component(tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(folder / name), np.full((32, 32, 3), 200, np.uint8))
    text = (
        f'device_id = "logs"\n[logging]\nlevels = {{ "edged.sources.images" = "debug", "edged.app.daemon" = '
        f'"warning" }}\n[model]\npath = "{CLASSIFIER}"\nnum_threads = 1\n[camera]\ntype = "images"\npath = "{folder}"\n'
    )
    code, lines = run_edged(tmp_path, text, journal=True)
    assert code == 0, lines
    assert "<7>edged.sources.images: image a.png" in lines and "<7>edged.sources.images: image b.png" in lines
    assert not any(line.startswith("<6>edged.app.daemon:") for line in lines)  # raised to warning
    assert any(line.startswith("<6>edged.") for line in lines)  # the rest keeps info
    assert not any(line.startswith("<7>") and "edged.sources.images" not in line for line in lines)


def test_a_bad_logger_name_is_a_config_error_with_its_line(tmp_path: Path) -> None:
    from edged.config.validate import check_text

    _, problems = check_text(f'[logging]\nlevels = {{ "edged publish" = "debug" }}\n[model]\npath = "{CLASSIFIER}"\n'
                             '[camera]\ntype = "synthetic"\n', "c.toml")  # fmt: skip
    assert len(problems) == 1 and problems[0].startswith("c.toml:2: logging.levels: 'edged publish' is "
                                                         "not a logger name")  # fmt: skip


@pytest.fixture
def restore_logging() -> object:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield None
    logs.apply_config("info", "text", {})
    root.setLevel(level)
    root.handlers[:] = handlers


def test_command_line_levels_win_over_the_file_across_reloads(restore_logging: object) -> None:
    logs.configure("text", logging.DEBUG, level_fixed=True)  # -vv
    logs.apply_config("error", "json", {"edged.publish": "warning"})
    assert logging.getLogger().level == logging.DEBUG  # -vv stays
    assert logging.getLogger("edged.publish").level == logging.WARNING
    logs.apply_config("error", "json", {})  # a reload that drops the component level
    assert logging.getLogger("edged.publish").level == logging.NOTSET
