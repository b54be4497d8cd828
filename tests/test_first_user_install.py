"""Issue 8, item 8: the README's "Install for real use" lines work as written.

They are read from README.md (so this test breaks when the README drifts) and run by bash, line for line, in a
temporary prefix standing in for `/`: `/opt/edged`, `/etc/edged`, `/var/lib/edged` and `/usr/local/bin` live under
it, `sudo` runs its command as is (the test runs as the user it runs as), and `python3` is whatever the PATH finds
outside this test's own virtual environment. Between the install lines and the first `edged` command the test
does what the README tells the user to do there: edit the config's [camera] (here: a short video file).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
CLASSIFIER = ROOT / "tests" / "fixtures" / "models" / "shapes_classifier_quant.tflite"
ROOTS = ("/opt/edged", "/etc/edged", "/var/lib/edged", "/usr/local/bin")
CLIP_FRAMES = 20


def readme_install_lines() -> list[str]:
    text = (ROOT / "README.md").read_text()
    start = text.index("Install for real use")
    body = text.index("```sh\n", start) + len("```sh\n")
    return [line for line in text[body : text.index("```", body)].splitlines() if line.strip()]


def in_prefix(line: str, prefix: Path) -> str:
    for root in ROOTS:
        line = line.replace(root, f"{prefix}{root}")
    for word in shlex.split(line, comments=True):  # every absolute path the command touches is in the prefix
        assert not word.startswith("/") or word.startswith(str(prefix)), f"README line leaves the prefix: {line}"
    return line


def clone(destination: Path) -> None:
    """The repository's files as a fresh clone has them (the working tree's content of every tracked file)."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True)
    if listed.returncode != 0:  # not a git checkout: everything but the local environments and caches
        ignore = shutil.ignore_patterns(".venv*", ".git", "__pycache__", "*.egg-info", ".*_cache", "build")
        shutil.copytree(ROOT, destination, ignore=ignore)
        return
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)


def user_files(folder: Path) -> None:
    """What the README's lines refer to: the user's model, a photo and a short clip."""
    shutil.copy(CLASSIFIER, folder / "my_model.tflite")
    cv2.imwrite(str(folder / "photo.jpg"), np.full((120, 160, 3), 128, np.uint8))
    writer = cv2.VideoWriter(str(folder / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (160, 120))
    for i in range(CLIP_FRAMES):
        writer.write(np.full((120, 160, 3), 10 * i, np.uint8))
    writer.release()


def shell_env(prefix: Path) -> dict[str, str]:
    """The user's environment: this test's virtual environment is not on the PATH, the prefix's bin is."""
    ours = {str(Path(sys.prefix) / "bin"), str(Path(sys.executable).parent)}
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p not in ours]
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = os.pathsep.join([f"{prefix}/usr/local/bin", *path])
    return env


def bash(script: str, cwd: Path, env: dict[str, str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    program = 'set -euo pipefail\nsudo() { "$@"; }\n' + script
    return subprocess.run(["bash", "-c", program], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s)


@pytest.mark.slow
def test_the_readme_install_steps_work_as_written(tmp_path: Path) -> None:
    if shutil.which("bash") is None:
        pytest.skip("bash is needed to run the README's lines")
    lines = readme_install_lines()
    first_use = next(i for i, line in enumerate(lines) if line.startswith("edged "))
    install, use = lines[:first_use], lines[first_use:]
    prefix, work = tmp_path / "root", tmp_path / "clone"
    (prefix / "usr" / "local" / "bin").mkdir(parents=True)  # on every Debian / Raspberry Pi OS system already
    work.mkdir()
    clone(work)
    user_files(work)
    env = shell_env(prefix)

    done = bash("\n".join(in_prefix(line, prefix) for line in install), work, env, timeout_s=1800)
    assert done.returncode == 0, f"the README's install lines failed:\n{done.stdout}\n{done.stderr}"
    found = bash("command -v edged", work, env, timeout_s=60)
    assert found.stdout.strip() == f"{prefix}/usr/local/bin/edged", "`edged` is not on the PATH after installing"

    config = prefix / "etc" / "edged" / "config.toml"
    assert config.read_text() == (work / "config.example.toml").read_text()
    model = prefix / "var" / "lib" / "edged" / "models" / "detector.tflite"
    assert 'path = "/var/lib/edged/models/detector.tflite"' in config.read_text() and model.is_file()
    # "then edit its [camera]": the video file, read as fast as the model allows; the prefix stands in for "/"
    edited = config.read_text().replace('source = "0"', f'source = "{work / "clip.mp4"}"')
    edited = edited.replace("realtime = true", "realtime = false").replace("/var/lib/edged", f"{prefix}/var/lib/edged")
    config.write_text(edited)

    for line in use:
        done = bash(in_prefix(line, prefix), work, env, timeout_s=600)
        assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
        command = shlex.split(line, comments=True)[:2]
        if command == ["edged", "infer"]:
            result = json.loads(done.stdout)
            assert result["image"] == "photo.jpg" and result["task"] == "classification"
        elif command == ["edged", "run"]:
            results = [json.loads(row) for row in done.stdout.splitlines()]
            assert len(results) == CLIP_FRAMES and results[0]["model"]["name"] == "detector"
        elif command == ["edged", "model"]:
            assert "task: classification" in done.stdout
        elif command == ["edged", "bench"]:
            assert "end-to-end:" in done.stdout


def test_the_unit_assumes_the_install_the_readme_describes() -> None:
    unit = (ROOT / "systemd" / "edged.service").read_text()
    lines = readme_install_lines()
    for line in lines[:2]:  # the venv and the pip lines, as the unit's comment must repeat them
        command = line.split("#", 1)[0].strip()
        assert f"#   {command}\n" in unit, f"systemd/edged.service does not say {command!r}"
    assert "ExecStart=/opt/edged/bin/edged run --config /etc/edged/config.toml" in unit
