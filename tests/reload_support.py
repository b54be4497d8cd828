"""`edged run` as a real process for the reload tests: its stdout JSON lines (results and events) and its log lines
are collected as they arrive, so a test can wait on what the daemon said, send it real signals, and rewrite its
config file in between."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "tests" / "fixtures" / "models"
CLASSIFIER = MODELS / "shapes_classifier_quant.tflite"
CLASSIFIER_Q128 = MODELS / "shapes_classifier_q128.tflite"


class EdgedProcess:
    """`python -m edged run --config FILE`, with its stdout lines parsed as JSON and its stderr kept."""

    def __init__(self, config: Path, env: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.lines: list[dict[str, Any]] = []
        self.log: list[str] = []
        self._cond = threading.Condition()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "edged", "run", "--config", str(config)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
        )  # fmt: skip
        assert self.process.stdout is not None and self.process.stderr is not None
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, True), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, False), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: IO[str], is_json: bool) -> None:
        for line in stream:
            with self._cond:
                if is_json:
                    self.lines.append(json.loads(line))
                else:
                    self.log.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, condition: Callable[[], bool], timeout: float = 60.0) -> bool:
        """Wait until `condition()` holds (re-checked at every new line) or the process has exited."""
        with self._cond:
            return self._cond.wait_for(lambda: condition() or self.process.poll() is not None, timeout) and condition()

    def results(self) -> list[dict[str, Any]]:
        with self._cond:
            return [line for line in self.lines if "seq" in line]

    def events(self, name: str) -> list[dict[str, Any]]:
        with self._cond:
            return [line for line in self.lines if line.get("type") == "event" and line["event"] == name]

    def position(self, line: dict[str, Any]) -> int:
        with self._cond:
            return next(i for i, item in enumerate(self.lines) if item is line)

    def results_after(self, line: dict[str, Any]) -> list[dict[str, Any]]:
        start = self.position(line)
        with self._cond:
            return [item for item in self.lines[start + 1 :] if "seq" in item]

    def log_text(self) -> str:
        with self._cond:
            return "\n".join(self.log)

    def reload(self) -> None:
        os.kill(self.process.pid, signal.SIGHUP)

    def stop(self, timeout: float = 60.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        for reader in self._readers:
            reader.join(10)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def __enter__(self) -> EdgedProcess:
        return self

    def __exit__(self, *_: object) -> None:
        self.kill()


def write_config(path: Path, text: str) -> Path:
    """Replace the file the way an editor does (a new file renamed over the old), so a reload never reads half."""
    temp = path.with_name(path.name + ".new")
    temp.write_text(text)
    temp.replace(path)
    return path
