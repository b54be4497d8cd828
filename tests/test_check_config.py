"""`edged check-config`: exit statuses, every error at once with key and line, warnings for suspicious settings,
and the effective config with defaults and masked secrets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edged.cli import main
from edged.config import parse_config
from edged.config.advice import HIDDEN_UNDER_UNIT, config_warnings

CLASSIFIER = Path(__file__).parent / "fixtures" / "models" / "shapes_classifier_quant.tflite"


def good_text(extra: str = "") -> str:
    return (
        f'device_id = "check"\n[model]\npath = "{CLASSIFIER}"\n'
        '[camera]\ntype = "synthetic"\nwidth = 64\nheight = 64\n'
        f'[publisher]\ntype = "stdout"\n{extra}'
    )


def check(tmp_path: Path, text: str, *args: str) -> tuple[int, str]:
    path = tmp_path / "edged.toml"
    path.write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "edged", "check-config", *args, str(path)], capture_output=True, text=True, timeout=60
    )
    return done.returncode, done.stdout + done.stderr


def test_a_good_file_exits_0(tmp_path: Path) -> None:
    code, output = check(tmp_path, good_text())
    assert code == 0, output
    assert output.strip() == f"{tmp_path / 'edged.toml'}: valid"


def test_a_bad_file_exits_2_with_every_error_and_its_line(tmp_path: Path) -> None:
    text = (
        f'[model]\npath = "{CLASSIFIER}"\nthreshold = "high"\ntop_k = 3.0\n'
        '[camera]\ntype = "synthetic"\nfps = -2\n'
        '[pipeline]\nrotate = 45\nflip = "sideways"\n'
        "[mqtt]\nhost = 'x'\n"
    )
    code, output = check(tmp_path, text)
    path = tmp_path / "edged.toml"
    assert code == 2, output
    errors = [line.removeprefix("error: ") for line in output.splitlines() if line.startswith("error: ")]
    assert sorted(errors) == sorted([
        f"{path}:3: model.threshold: must be a number such as 0.5 (without quotes), not str 'high'",
        f"{path}:4: model.top_k: must be a whole number such as 3 (without quotes or a decimal point), not float 3.0",
        f"{path}:7: camera.fps: Input should be greater than 0",
        f"{path}:9: pipeline.rotate: Input should be 0, 90, 180 or 270",
        f"{path}:10: pipeline.flip: Input should be 'none', 'horizontal', 'vertical' or 'both'",
        f"{path}:11: mqtt: unknown table: mqtt settings go under [publisher] with type = 'mqtt' "
        '(write [publisher] then type = "mqtt" and the mqtt keys below it)',
    ])  # fmt: skip
    assert output.splitlines()[-1] == f"{path}: invalid (6 errors); edged would refuse it"


def test_broken_toml_and_a_missing_file_exit_2(tmp_path: Path) -> None:
    code, output = check(tmp_path, good_text() + "results = = true\n")
    assert code == 2 and f"{tmp_path / 'edged.toml'}:10: not valid TOML: Invalid value (column 11)" in output, output
    done = subprocess.run([sys.executable, "-m", "edged", "check-config", str(tmp_path / "nope.toml")],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2 and "nope.toml does not exist; start from config.example.toml" in done.stdout


def test_suspicious_settings_are_warnings_with_key_and_line_and_strict_refuses_them(tmp_path: Path) -> None:
    text = (
        'device_id = "check"\n'
        f'[model]\npath = "{tmp_path / "missing.tflite"}"\naccelerator = "edgetpu"\nnum_threads = 64\n'
        '[camera]\ntype = "opencv"\nsource = "/nowhere/clip.mp4"\n'
        "[pipeline]\nshutdown_timeout_s = 30.0\nstats_interval_s = 0.2\n"
        '[publisher]\ntype = "mqtt"\nhost = "broker.example.com"\nusername = "cam"\n'
        'password_env = "EDGED_MQTT_PASSWORD"\ntls_insecure = true\n'
    )
    code, output = check(tmp_path, text)
    path = tmp_path / "edged.toml"
    assert code == 0, output
    warnings = [line.removeprefix("warning: ") for line in output.splitlines() if line.startswith("warning: ")]
    expected_starts = [
        f"{path}:3: model.path: {tmp_path / 'missing.tflite'} (the model file) does not exist",
        f"{path}:8: camera.source: /nowhere/clip.mp4 (the video file) does not exist",
        f"{path}:4: model.accelerator: missing.tflite is not named like an Edge TPU model",
        f"{path}:5: model.num_threads: 64 threads on",
        f"{path}:10: pipeline.shutdown_timeout_s: 30 s is not shorter than the unit's TimeoutStopSec=15",
        f"{path}:11: pipeline.stats_interval_s: stats every 0.2 s flood the log",
        f"{path}:17: publisher.tls_insecure: has no effect: TLS is off",
        f"{path}:16: publisher.password_env: the password crosses the network to broker.example.com in clear text",
    ]
    for start in expected_starts:
        assert sum(w.startswith(start) for w in warnings) == 1, (start, warnings)
    assert len(warnings) == len(expected_starts), warnings
    assert output.splitlines()[-1] == f"{path}: valid, {len(warnings)} warnings"
    code, output = check(tmp_path, text, "--strict")
    assert code == 2 and output.splitlines()[-1] == f"{path}: refused by --strict, {len(warnings)} warnings"


def test_a_password_in_clear_text_and_paths_the_service_cannot_see(tmp_path: Path) -> None:
    text = good_text().replace(
        '[publisher]\ntype = "stdout"\n',
        '[publisher]\ntype = "mqtt"\nhost = "10.0.0.5"\nusername = "cam"\npassword_file = "/home/pi/mqtt-password"\n',
    )
    config = parse_config(text)
    origin = "/etc/edged/config.toml"
    warnings = config_warnings(config, text, origin, exists=lambda p: True, hostname=lambda: "kitchen")
    # a checkout under /tmp or /home (a `mktemp -d` clone) makes the fixture model hidden from the service too
    checkout_hidden = any(CLASSIFIER.resolve().is_relative_to(hidden) for hidden in HIDDEN_UNDER_UNIT)
    model_warning = [
        f"{origin}:3: model.path: {CLASSIFIER} is hidden from the systemd service (ProtectHome=yes, PrivateTmp=yes); "
        "move it to /var/lib/edged or /etc/edged"
    ]
    assert warnings == [
        *(model_warning if checkout_hidden else []),
        f"{origin}:12: publisher.password_file: /home/pi/mqtt-password is hidden from the systemd service "
        "(ProtectHome=yes, PrivateTmp=yes); move it to /var/lib/edged or /etc/edged",
        f"{origin}:12: publisher.password_file: the password crosses the network to 10.0.0.5 in clear text; set "
        "tls = true (port 8883)",
    ]
    credential = text.replace("/home/pi/mqtt-password", "/run/credentials/edged.service/mqtt-password")
    found = config_warnings(parse_config(credential), credential, origin, exists=lambda p: "credentials" not in str(p),
                            hostname=lambda: "kitchen")  # fmt: skip
    found = [w for w in found if "model.path" not in w] if checkout_hidden else found
    assert len(found) == 1 and "clear text" in found[0]  # a credential exists only under the service: not "missing"
    no_id = text.replace('device_id = "check"\n', "")
    assert any("device_id: not set, so it is the hostname 'raspberrypi'" in w for w in
               config_warnings(parse_config(no_id), no_id, "x.toml", exists=lambda p: True,
                               hostname=lambda: "raspberrypi"))  # fmt: skip


def test_show_prints_the_effective_config_with_defaults_and_masked_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = good_text().replace(
        '[camera]\ntype = "synthetic"\nwidth = 64\nheight = 64\n',
        '[camera]\ntype = "opencv"\nsource = "rtsp://admin:hunter2@192.168.1.20/stream1"\n',
    )
    path = tmp_path / "edged.toml"
    path.write_text(text)
    assert main(["check-config", "--show", str(path)]) == 0
    shown = capsys.readouterr().out
    assert "hunter2" not in shown and 'source = "rtsp://admin:***@192.168.1.20/stream1"' in shown
    assert "top_k = 3" in shown and "shutdown_timeout_s = 5.0" in shown and "[camera.reconnect]" in shown
    assert "# labels is not set" in shown
    effective = "\n".join(line for line in shown.splitlines() if not line.startswith(str(path)))
    reread = parse_config(effective.replace("admin:***@", "admin:hunter2@"))
    assert reread == parse_config(text, base=tmp_path)  # every default written out reads back as the same config


def test_json_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "edged.toml"
    path.write_text(good_text() + 'loop = "yes"\n')
    assert main(["check-config", "--json", str(path)]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False and report["warnings"] == []
    assert report["errors"] == [f"{path}:10: publisher.loop: unknown key (see config.example.toml for every option)"]


def test_the_shipped_example_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    example = Path(__file__).resolve().parents[1] / "config.example.toml"
    assert main(["-q", "check-config", str(example)]) == 0
