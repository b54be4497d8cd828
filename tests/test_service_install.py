"""`edged service install --root DIR` (the packaging / staging mode) and `uninstall`: the unit it writes passes
`systemd-analyze verify` and keeps its exposure score, the config is never overwritten, secrets become credentials."""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from edged.cli import main
from edged.config.validate import check_text
from edged.service.install import example_config
from edged.service.unit import packaged_unit, read_unit, render_unit

ROOT = Path(__file__).resolve().parents[1]
CLASSIFIER = ROOT / "tests" / "fixtures" / "models" / "shapes_classifier_quant.tflite"
#: edged as installed here: the unit's ExecStart= must name a real executable for `systemd-analyze verify`.
PREFIX = Path(sys.prefix)
needs_systemd = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze not installed (apt-get install systemd)")  # fmt: skip


def install(root: Path, *args: str | Path) -> int:
    return main(["service", "install", "--root", str(root), "--prefix", str(PREFIX), *(str(a) for a in args)])


def test_the_packaged_unit_is_the_shipped_one_and_renders_to_itself() -> None:
    shipped = (ROOT / "systemd" / "edged.service").read_text()
    assert packaged_unit() == shipped
    assert render_unit() == shipped  # the defaults change nothing: the hardening installed is the one scored


@needs_systemd
def test_install_writes_a_unit_that_verifies_and_stays_hardened(tmp_path: Path) -> None:
    secret = tmp_path / "mqtt-password"
    secret.write_text("s3cret\n")
    root_json = tmp_path / "root.json"
    root_json.write_text('{"signed": {}}')
    assert install(tmp_path / "stage", "--credential", f"mqtt-password={secret}", "--trusted-root", root_json,
                   "--model", CLASSIFIER) == 0  # fmt: skip
    stage = tmp_path / "stage"
    unit = stage / "etc" / "systemd" / "system" / "edged.service"
    text = unit.read_text()
    assert f"ExecStart={PREFIX}/bin/edged run --config /etc/edged/config.toml" in text
    assert f"ExecReload={PREFIX}/bin/edged -q check-config /etc/edged/config.toml" in text
    assert "ExecReload=/bin/kill -HUP $MAINPID" in text
    assert "LoadCredential=mqtt-password:/etc/edged/credentials/mqtt-password" in text
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    done = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    match = re.search(r"Overall exposure level for edged.service: ([0-9.]+)", done.stdout)
    assert match and float(match.group(1)) <= 2.0, done.stdout + done.stderr
    credential = stage / "etc" / "edged" / "credentials" / "mqtt-password"
    assert credential.read_text() == "s3cret\n" and stat.S_IMODE(credential.stat().st_mode) == 0o600
    assert stat.S_IMODE(credential.parent.stat().st_mode) == 0o700
    assert (stage / "etc" / "edged" / "root.json").read_text() == '{"signed": {}}'
    installed_model = stage / "var" / "lib" / "edged" / "models" / CLASSIFIER.name
    assert installed_model.read_bytes() == CLASSIFIER.read_bytes()
    config_text = (stage / "etc" / "edged" / "config.toml").read_text()
    config, problems = check_text(config_text, "/etc/edged/config.toml", Path("/etc/edged"))
    assert config is not None, problems
    assert config.model.path == Path("/var/lib/edged/models") / CLASSIFIER.name  # where the unit lets it read


def test_the_config_comes_from_the_example_with_the_model_under_var_lib_edged() -> None:
    text = example_config()
    example = (ROOT / "config.example.toml").read_text()
    config, problems = check_text(text, "/etc/edged/config.toml", Path("/etc/edged"))
    assert config is not None, problems
    assert str(config.model.path).startswith("/var/lib/edged/")
    changed = [(a, b) for a, b in zip(example.splitlines(), text.splitlines(), strict=True) if a != b]
    # the example already names /var/lib/edged/models (issue 8): at most the one line changes, every comment kept
    assert len(changed) <= 1 and all(new.startswith("path = ") for _, new in changed)


def test_an_existing_config_is_never_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stage = tmp_path / "stage"
    mine = stage / "etc" / "edged" / "config.toml"
    mine.parent.mkdir(parents=True)
    mine.write_text(f'device_id = "mine"\n[model]\npath = "{CLASSIFIER}"\n[camera]\ntype = "synthetic"\n')
    before = mine.read_text()
    assert install(stage) == 0
    assert mine.read_text() == before
    output = capsys.readouterr().out
    assert f"kept {mine} (not overwritten)" in output
    assert "next:" in output and "systemctl enable --now edged" in output and "edged check-config" in output


def test_a_given_config_is_installed_and_an_invalid_one_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    given = tmp_path / "my.toml"
    given.write_text('[model]\npath = "/var/lib/edged/models/m.tflite"\nthreshold = 2\n[camera]\ntype = "synthetic"\n')
    assert install(tmp_path / "bad", "--config", given) == 1
    assert "the config to install is invalid" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()  # checked before anything is written
    given.write_text(given.read_text().replace("threshold = 2", "threshold = 0.5"))
    assert install(tmp_path / "good", "--config", given) == 0
    assert (tmp_path / "good" / "etc" / "edged" / "config.toml").read_text() == given.read_text()


def test_uninstall_removes_the_unit_and_keeps_config_and_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stage = tmp_path / "stage"
    assert install(stage, "--model", CLASSIFIER) == 0
    wants = stage / "etc" / "systemd" / "system" / "multi-user.target.wants"
    wants.mkdir()
    (wants / "edged.service").symlink_to("/etc/systemd/system/edged.service")  # as `systemctl enable` leaves it
    assert main(["service", "uninstall", "--root", str(stage)]) == 0
    assert not (stage / "etc" / "systemd" / "system" / "edged.service").exists()
    assert not (wants / "edged.service").is_symlink()
    assert (stage / "etc" / "edged" / "config.toml").is_file()
    assert (stage / "var" / "lib" / "edged" / "models" / CLASSIFIER.name).is_file()
    output = capsys.readouterr().out
    assert f"kept {stage / 'etc' / 'edged'}" in output and f"kept {stage / 'var' / 'lib' / 'edged'}" in output


def test_installing_for_real_needs_root_and_names_the_fix(tmp_path: Path) -> None:
    import os

    command = [sys.executable, "-m", "edged", "service", "install"]
    if os.geteuid() == 0:  # CI runs as root: drop to nobody for this one
        if shutil.which("setpriv") is None:
            pytest.skip("setpriv (util-linux) is needed to run as another user")
        import stat

        checkout = Path(__file__).resolve().parents[1]
        closed = [p for p in (checkout, *checkout.parents) if not p.stat().st_mode & stat.S_IXOTH]
        if closed:  # a `mktemp -d` clone (mode 0700): nobody cannot import edged from it at all
            pytest.skip(f"{closed[0]} is closed to other users, so the checkout cannot be run as nobody")
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 1 and "installing a system service needs root: run it with sudo" in done.stderr


def test_a_bad_credential_name_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["service", "install", "--root", str(tmp_path), "--credential", "no-file"])
    assert "use NAME=FILE" in capsys.readouterr().err
    secret = tmp_path / "s"
    secret.write_text("x")
    assert install(tmp_path / "stage", "--credential", f"../etc={secret}") == 1
    assert "is not a credential name" in capsys.readouterr().err


def test_the_installed_unit_reads_back(tmp_path: Path) -> None:
    assert install(tmp_path, "--credential", f"token={CLASSIFIER}") == 0
    unit = read_unit(tmp_path / "etc" / "systemd" / "system" / "edged.service")
    assert unit.flag("DynamicUser") and unit.last("ProtectSystem") == "strict"
    assert unit.values("LoadCredential") == ["token:/etc/edged/credentials/token"]
    assert "char-video4linux rw" in unit.values("DeviceAllow")


def test_a_relative_prefix_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["service", "install", "--root", str(tmp_path / "stage"), "--prefix", "opt/edged"]) == 1
    assert "give an absolute path" in capsys.readouterr().err and not (tmp_path / "stage").exists()
