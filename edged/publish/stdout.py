"""JSON lines on standard output: for development, the demo, and piping into jq or another program.

When the reader goes away (`edged run ... | head -5`), the publisher asks the daemon to stop, quietly, with exit
status 141 (what a Unix filter killed by SIGPIPE reports), so the camera is released instead of being read for
nobody.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from typing import Any, Literal, TextIO

from pydantic import Field

from edged.config.publisher import PublisherConfig
from edged.errors import CommandRefused
from edged.publish.base import PublisherPlugin, Runtime

log = logging.getLogger(__name__)

#: Exit status after the reader of stdout went away: 128 + SIGPIPE, as a Unix filter would report.
EXIT_BROKEN_PIPE = 141


class StdoutPublisherConfig(PublisherConfig):
    """One JSON object per line on standard output: for development, the demo and piping into jq."""

    type: Literal["stdout"]
    results: bool = Field(True, description="Print every result.")
    stats: bool = Field(False, description="Also print the periodic stats objects.")
    events: bool = Field(False, description="Also print lifecycle events (source state, model changes).")


class StdoutPublisher:
    def __init__(self, config: StdoutPublisherConfig, device_id: str = "", stream: TextIO | None = None) -> None:
        self.config = config
        self._stream = stream or sys.stdout
        self._lock = threading.Lock()  # results and stats come from different threads; lines must not interleave
        self._runtime: Runtime | None = None
        self._broken = False

    def start(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def _write(self, kind: str | None, payload: dict[str, Any]) -> None:
        line = json.dumps(payload if kind is None else {"type": kind, **payload}, separators=(",", ":"))
        with self._lock:
            if self._broken:
                return
            try:
                self._stream.write(line + "\n")
                self._stream.flush()
            except BrokenPipeError:
                self._reader_gone()

    def _reader_gone(self) -> None:
        """The reader of our stdout exited: stop writing, and stop the daemon (nothing reads what it makes)."""
        self._broken = True
        try:  # later writes (and the interpreter's own flush at exit) must not raise again
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass
        if self._runtime is not None:
            self._runtime.request_stop("the reader of standard output went away", EXIT_BROKEN_PIPE)

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

    def publish_snapshot(self, annotated: bool | None) -> dict[str, Any]:
        raise CommandRefused("the stdout publisher has nowhere to put a picture; use the MQTT publisher")

    def flush(self, timeout_s: float) -> bool:
        with self._lock:
            if not self._broken:
                try:
                    self._stream.flush()
                except BrokenPipeError:
                    self._reader_gone()
        return True

    def reconfigure(self, config: PublisherConfig) -> bool:
        """Every key of this publisher applies live (a reload): what is printed from the next line on."""
        if not isinstance(config, StdoutPublisherConfig):
            return False
        self.config = config
        return True

    def take_backlog(self) -> list[dict[str, Any]]:
        return []  # every line is written before publish_result returns

    def stop(self) -> None:
        self.flush(1.0)


PLUGIN = PublisherPlugin("stdout", StdoutPublisherConfig, StdoutPublisher, "JSON lines on standard output")
