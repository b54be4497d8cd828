"""Crashes around a model update, with real `edged run` processes killed by SIGKILL: during download, during
install, between install and swap, during probation, and a new model that kills the process twice. After each,
the next start runs a valid model and the state directory is consistent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

import pytest
from hosting_support import CLASSIFIER, MODELS, NAME, Repo
from support.nginx import Nginx

from edged.hosting.store_state import read_state
from edged.inference.model import file_sha256

Q128 = MODELS / "shapes_classifier_q128.tflite"


class EdgedProcess:
    """`edged run` with the stdout publisher (results and events as JSON lines), read as they come."""

    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.lines: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "edged", "run", "--config", str(config)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
        )  # fmt: skip
        assert self.process.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._cond:
                self.lines.append(json.loads(line))
                self._cond.notify_all()

    def events(self, name: str) -> list[dict[str, Any]]:
        with self._cond:
            return [line for line in self.lines if line.get("type") == "event" and line["event"] == name]

    def results(self) -> list[dict[str, Any]]:
        with self._cond:
            return [line for line in self.lines if "seq" in line and "type" not in line]

    def wait_for(self, predicate: Any, timeout: float = 120) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate() or self.process.poll() is not None, timeout) and bool(
                predicate()
            )

    def stop(self) -> int:
        self.process.terminate()
        return self.finish()

    def finish(self, timeout: float = 120) -> int:
        self.process.wait(timeout)
        self._reader.join(10)
        return self.process.returncode

    def stderr(self) -> str:
        assert self.process.stderr is not None
        return self.process.stderr.read()


def write_config(tmp_path: Path, url: str, repo: Repo, window_s: float = 2) -> Path:
    path = tmp_path / "edged.toml"
    path.write_text(
        f'device_id = "crash-dev"\nstate_dir = "{tmp_path / "state"}"\n'
        f'[model]\npath = "{CLASSIFIER}"\nnum_threads = 1\n'
        '[camera]\ntype = "synthetic"\nwidth = 96\nheight = 96\nfps = 20\n'
        '[publisher]\ntype = "stdout"\nevents = true\n'
        f'[hosting]\nurl = "{url}"\nname = "{NAME}"\ntrusted_root = "{repo.root_json}"\ninterval_s = 10\n'
        f"health_window_s = {window_s}\nfree_space_margin_bytes = 0\n"
    )
    return path


def committed(process: EdgedProcess, version: int) -> bool:
    return any(e["version"] == version for e in process.events("update_committed"))


def assert_current_is_complete(state_dir: Path) -> None:
    """Whatever was half done at the crash, state.json names a complete installed version (or the bundled model)."""
    state = read_state(state_dir / "state.json")
    if state.current is not None:
        assert (state_dir / "versions" / str(state.current.version) / "version.json").is_file()


def assert_consistent(state_dir: Path) -> None:
    """What the next start's recover() guarantees: no half download or install left, and a complete current."""
    hosting = state_dir / "hosting"
    for leftover in (hosting / "staging", hosting / "downloads"):
        assert not leftover.exists() or not any(leftover.iterdir()), list(leftover.iterdir())
    assert not [p for p in (state_dir / "versions").iterdir() if p.name.startswith((".installing-", ".trash-"))]
    assert_current_is_complete(state_dir)


@pytest.fixture
def v1_committed(nginx: Nginx, repo: Repo, tmp_path: Path) -> Path:
    """A device that runs version 1, committed."""
    repo.publish(CLASSIFIER)
    config = write_config(tmp_path, nginx.url, repo)
    first = EdgedProcess(config)
    assert first.wait_for(lambda: committed(first, 1)), first.lines[-5:]
    assert first.stop() == 0
    return config


@pytest.mark.parametrize("point", ["download", "install", "before-switch", "probation"])
def test_kill_9_at_any_point_of_an_update_leaves_a_valid_model_and_a_consistent_state(
    v1_committed: Path, repo: Repo, tmp_path: Path, point: str
) -> None:
    repo.publish(Q128)
    killed = EdgedProcess(v1_committed, {"EDGED_TEST_ONLY_CRASH_AT": point})
    assert killed.finish() == -9, killed.stderr()[-2000:]
    assert_current_is_complete(tmp_path / "state")
    after = EdgedProcess(v1_committed)
    try:
        assert after.wait_for(lambda: bool(after.results())), after.stderr()
        assert after.results()[0]["model"]["version"] in ("1", "2")  # a valid model runs at once...
        assert after.wait_for(lambda: committed(after, 2)), after.lines[-5:]  # ...and the update completes
    finally:
        assert after.stop() == 0
    assert after.results()[-1]["model"]["sha256"] == file_sha256(Q128.read_bytes())
    assert_consistent(tmp_path / "state")


def test_a_version_that_kills_the_process_twice_is_rolled_back_and_blocked(
    v1_committed: Path, repo: Repo, tmp_path: Path
) -> None:
    repo.publish(Q128)
    fault = {"EDGED_TEST_ONLY_MODEL_FAULT": f"crash:{file_sha256(Q128.read_bytes())[:12]}"}  # a segfaulting model
    for start in range(2):
        dying = EdgedProcess(v1_committed, fault)
        assert dying.finish() == -9, (start, dying.stderr()[-2000:])
    survivor = EdgedProcess(v1_committed, fault)
    try:
        assert survivor.wait_for(lambda: len(survivor.results()) >= 10), survivor.stderr()
        rolled = survivor.events("update_rolled_back")
        assert rolled and rolled[0]["from_version"] == 2 and rolled[0]["to_version"] == 1
        assert "did not finish its probation in 2 starts" in rolled[0]["reason"]
        assert {r["model"]["version"] for r in survivor.results()} == {"1"}
    finally:
        assert survivor.stop() == 0
    state = read_state(tmp_path / "state" / "state.json")
    assert file_sha256(Q128.read_bytes()) in state.blocked
    assert state.current is not None and state.current.version == 1
