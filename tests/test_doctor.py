"""`edged doctor` against real parts: a live and a dead mosquitto, a broker that refuses the password, a host that
accepts and never answers, nginx serving a good repository and a wrong URL, a missing camera, the unit written by
`service install`; and its time limits."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hosting_support import NAME, Repo
from support.broker import HOST, Mosquitto, broker_for_tests, free_port, make_password_file
from support.nginx import Nginx

from edged.app.doctor import Check, Context, Row, run_checks
from edged.cli import main
from edged.inference import edgetpu_devices

ROOT = Path(__file__).resolve().parents[1]
CLASSIFIER = ROOT / "tests" / "fixtures" / "models" / "shapes_classifier_quant.tflite"
CHECKS = ["config", "runtime", "edgetpu", "model", "camera", "broker", "hosting", "state_dir", "clock", "sandbox"]


def config_text(tmp_path: Path, *, publisher: str = "", hosting: str = "", camera: str = "") -> str:
    camera = camera or 'type = "synthetic"\nwidth = 64\nheight = 48'
    publisher = publisher or 'type = "stdout"'
    return (
        f'device_id = "doc"\nstate_dir = "{tmp_path / "state"}"\n{hosting}\n'
        f'[model]\npath = "{CLASSIFIER}"\nnum_threads = 1\n[camera]\n{camera}\n'
        f"[publisher]\n{publisher}\n"
    )


def doctor(tmp_path: Path, text: str, *args: str) -> tuple[int, dict[str, dict[str, str]]]:
    config = tmp_path / "edged.toml"
    config.write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "edged", "doctor", "--config", str(config), "--json", *args],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    report = json.loads(done.stdout)
    assert [row["check"] for row in report["checks"]] == CHECKS
    assert report["ok"] is (done.returncode == 0)
    return done.returncode, {row["check"]: row for row in report["checks"]}


def mqtt(port: int, extra: str = "") -> str:
    return f'type = "mqtt"\nhost = "{HOST}"\nport = {port}\nhomeassistant = false\n{extra}'


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with broker_for_tests(tmp_path / "broker") as running:
        yield running


def test_a_healthy_setup_passes_every_check(tmp_path: Path, broker: Mosquitto) -> None:
    code, rows = doctor(tmp_path, config_text(tmp_path, publisher=mqtt(broker.port)))
    assert code == 0, rows
    assert rows["broker"]["status"] == "ok"
    assert rows["broker"]["detail"] == f"connected to {HOST}:{broker.port} (MQTT 5) anonymously"
    assert rows["model"]["status"] == "ok" and "classification" in rows["model"]["detail"]
    assert rows["runtime"]["detail"].startswith("ai-edge-litert ")
    assert rows["camera"]["detail"].endswith("a 64x48 frame")
    assert rows["state_dir"]["status"] == "ok" and rows["clock"]["status"] in ("ok", "warn")
    assert "doc" in broker.log_text() and "as edged-doc\n" not in broker.log_text()  # never the device's client id


def test_a_dead_broker_fails_with_the_fix(tmp_path: Path) -> None:
    port = free_port()
    code, rows = doctor(tmp_path, config_text(tmp_path, publisher=mqtt(port)))
    assert code == 1
    assert rows["broker"]["status"] == "fail"
    assert rows["broker"]["detail"] == (
        f"nothing accepts connections at {HOST}:{port} (is the broker running, and is publisher.port right?)"
    )
    assert all(rows[name]["status"] != "fail" for name in CHECKS if name != "broker")


def test_a_refused_password_fails_and_the_right_one_passes(tmp_path: Path) -> None:
    passwords = make_password_file(tmp_path / "passwd", {"cam": "right"})
    secret = tmp_path / "mqtt-password"
    with broker_for_tests(tmp_path / "broker", password_file=passwords) as broker:
        secret.write_text("wrong\n")
        extra = f'username = "cam"\npassword_file = "{secret}"\n'
        code, rows = doctor(tmp_path, config_text(tmp_path, publisher=mqtt(broker.port, extra)))
        assert code == 1 and rows["broker"]["status"] == "fail"
        assert "refused the connection" in rows["broker"]["detail"] and "user 'cam'" in rows["broker"]["detail"]
        secret.write_text("right\n")
        code, rows = doctor(tmp_path, config_text(tmp_path, publisher=mqtt(broker.port, extra)))
        assert rows["broker"]["status"] == "ok" and rows["broker"]["detail"].endswith("as 'cam'")


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server on loopback that accepts connections and never says a word (a hung broker)."""
    server = socket.socket()
    server.bind((HOST, 0))
    server.listen()
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join(5)
    for connection in held:
        connection.close()
    server.close()


def test_a_broker_that_never_answers_fails_within_the_time_limit(tmp_path: Path, silent_server: int) -> None:
    code, rows = doctor(tmp_path, config_text(tmp_path, publisher=mqtt(silent_server)), "--timeout", "1")
    assert code == 1 and rows["broker"]["status"] == "fail"
    assert rows["broker"]["detail"].startswith(
        f"{HOST}:{silent_server} accepted the connection but sent no MQTT answer"
    )


def hosting_table(url: str, repo: Repo) -> str:
    return f'[hosting]\nurl = "{url}"\nname = "{NAME}"\ntrusted_root = "{repo.root_json}"\n'


def test_a_good_hosting_url_verifies_and_names_the_version(tmp_path: Path, repo: Repo, nginx: Nginx) -> None:
    repo.publish()
    code, rows = doctor(tmp_path, config_text(tmp_path, hosting=hosting_table(nginx.url, repo)))
    assert code == 0, rows
    assert rows["hosting"]["status"] == "ok"
    assert rows["hosting"]["detail"].startswith(f"{nginx.url}: metadata verified with {repo.root_json}; would "
                                                f"install {NAME} version 1 (cpu, ")  # fmt: skip
    assert not (tmp_path / "state" / "hosting").exists()  # the device's own metadata cache is left alone


def test_a_bad_hosting_url_fails_with_the_fix(tmp_path: Path, repo: Repo, nginx: Nginx) -> None:
    repo.publish()
    wrong = nginx.url + "not-the-repo/"
    code, rows = doctor(tmp_path, config_text(tmp_path, hosting=hosting_table(wrong, repo)))
    assert code == 1 and rows["hosting"]["status"] == "fail"
    assert "404" in rows["hosting"]["detail"] and "edged hosting verify" in rows["hosting"]["fix"]
    unreachable = f"http://{HOST}:{free_port()}/"
    code, rows = doctor(tmp_path, config_text(tmp_path, hosting=hosting_table(unreachable, repo)))
    assert code == 1 and rows["hosting"]["status"] == "fail"


def test_a_missing_camera_fails_with_the_fix(tmp_path: Path) -> None:
    camera = 'type = "opencv"\nsource = "/dev/video97"\nopen_timeout_s = 2.0\nread_timeout_s = 2.0'
    code, rows = doctor(tmp_path, config_text(tmp_path, camera=camera))
    assert code == 1 and rows["camera"]["status"] == "fail"
    assert "/dev/video97" in rows["camera"]["detail"] and "does not exist" in rows["camera"]["detail"]
    assert rows["camera"]["fix"]


def test_an_invalid_config_fails_and_skips_what_needs_it(tmp_path: Path) -> None:
    text = config_text(tmp_path).replace("width = 64", 'width = "wide"')
    code, rows = doctor(tmp_path, text)
    line = text.splitlines().index('width = "wide"') + 1
    assert code == 1
    assert rows["config"]["status"] == "fail" and f"edged.toml:{line}: camera.width" in rows["config"]["detail"]
    assert [rows[name]["status"] for name in ("model", "camera", "broker", "sandbox")] == ["skip"] * 4
    assert rows["runtime"]["status"] == "ok" and rows["clock"]["status"] in ("ok", "warn")


def test_the_sandbox_of_the_installed_unit_is_checked_against_the_config(tmp_path: Path) -> None:
    stage = tmp_path / "stage"
    secret = tmp_path / "pw"
    secret.write_text("x\n")
    assert main(["-q", "service", "install", "--root", str(stage), "--prefix", sys.prefix,
                 "--credential", f"mqtt-password={secret}"]) == 0  # fmt: skip
    unit = stage / "etc" / "systemd" / "system" / "edged.service"
    home_model = "/home/someone/model.tflite"
    text = config_text(tmp_path).replace(f'path = "{CLASSIFIER}"', f'path = "{home_model}"')
    _, rows = doctor(tmp_path, text, "--unit", str(unit))
    assert rows["sandbox"]["status"] == "fail"
    assert rows["sandbox"]["detail"].startswith(f"model.path: {home_model} is under a home directory, which "
                                                "ProtectHome= hides")  # fmt: skip
    assert f"state_dir: {tmp_path / 'state'} is read-only under ProtectSystem=strict" in rows["sandbox"]["detail"]
    good = (
        'device_id = "doc"\n[model]\npath = "/var/lib/edged/models/m.tflite"\n[camera]\ntype = "synthetic"\n'
        '[publisher]\ntype = "mqtt"\nhost = "broker"\nusername = "cam"\n'
        'password_file = "/run/credentials/edged.service/mqtt-password"\n'
    )
    _, rows = doctor(tmp_path, good, "--unit", str(unit))
    assert rows["sandbox"]["status"] == "ok", rows["sandbox"]
    _, rows = doctor(tmp_path, good.replace("/mqtt-password", "/other"), "--unit", str(unit))
    assert rows["sandbox"]["status"] == "fail" and "a credential the unit does not load" in rows["sandbox"]["detail"]


def test_a_check_that_hangs_is_reported_and_abandoned() -> None:
    release = threading.Event()

    def hangs(_: Context) -> Row:
        release.wait(120)
        return Row("hangs", "ok", "late")

    checks = [
        Check("hangs", hangs, lambda _: 0.5, needs_config=False),
        Check("after", lambda _: Row("after", "ok", "ran"), lambda _: 5.0, needs_config=False),
    ]
    try:
        rows, abandoned = run_checks(checks, Context(config_path=None))
    finally:
        release.set()
    assert abandoned
    assert rows[0] == Row("hangs", "fail", "no answer within 0.5 s (stuck in a driver or network call)", rows[0].fix)
    assert rows[1] == Row("after", "ok", "ran")  # the others still run


def test_usb_corals_are_found_by_both_of_their_ids(tmp_path: Path) -> None:
    """A FAKE sysfs tree (no Coral can be plugged in here): the ids before and after the runtime's first use."""
    for name, ids in {"1-1": ("1a6e", "089a"), "1-2": ("18d1", "9302"), "1-3": ("046d", "0825")}.items():
        device = tmp_path / name
        device.mkdir()
        (device / "idVendor").write_text(ids[0] + "\n")
        (device / "idProduct").write_text(ids[1] + "\n")
    found: list[Any] = edgetpu_devices.scan_usb(tmp_path)
    assert [(d.type, d.path, d.note) for d in found] == [
        ("usb", "1-1 (1a6e:089a)", "not yet initialised"),
        ("usb", "1-2 (18d1:9302)", "initialised"),
    ]
    library, why = edgetpu_devices.load_library("libedgetpu-not-here.so.1")
    assert library is None and "libedgetpu-not-here" in why


def test_an_edge_tpu_model_without_a_tpu_fails_with_the_install_hint(tmp_path: Path) -> None:
    text = config_text(tmp_path).replace("num_threads = 1", 'num_threads = 1\naccelerator = "edgetpu"')
    code, rows = doctor(tmp_path, text)
    assert code == 1 and rows["edgetpu"]["status"] == "fail"
    assert "libedgetpu1-std" in rows["edgetpu"]["fix"] or "plug in the Coral" in rows["edgetpu"]["fix"]
