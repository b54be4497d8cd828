"""JSON lines on standard output: for development, the demo, and piping into jq or another program."""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from typing import Any, TextIO

from edged.config.publish import StdoutPublisherConfig
from edged.publish.base import AppControl


class StdoutPublisher:
    def __init__(self, config: StdoutPublisherConfig, stream: TextIO | None = None) -> None:
        self.config = config
        self._stream = stream or sys.stdout
        self._lock = threading.Lock()  # results and stats come from different threads; lines must not interleave

    def start(self, control: AppControl) -> None:
        return None

    def _write(self, kind: str | None, payload: dict[str, Any]) -> None:
        line = json.dumps(payload if kind is None else {"type": kind, **payload}, separators=(",", ":"))
        with self._lock:
            try:
                self._stream.write(line + "\n")
                self._stream.flush()
            except BrokenPipeError:  # the reader went away (e.g. `| head`); nothing more to say
                pass

    def publish_result(self, result: dict[str, Any]) -> None:
        if self.config.results:
            self._write(None, result)

    def publish_stats(self, stats: dict[str, Any]) -> None:
        if self.config.stats:
            self._write("stats", stats)

    def publish_state(self, state: dict[str, Any]) -> None:
        return None

    def publish_event(self, event: dict[str, Any]) -> None:
        if self.config.events:
            self._write("event", event)

    def flush(self, timeout_s: float) -> bool:
        with self._lock, contextlib.suppress(BrokenPipeError):
            self._stream.flush()
        return True

    def stop(self) -> None:
        self.flush(1.0)
