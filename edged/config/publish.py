"""The `[publisher]` table: where results go. `stdout` prints JSON lines; `mqtt` is the daemon's normal mode."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edged.config.model import Strict


class StdoutPublisherConfig(Strict):
    """One JSON object per line on standard output: for development, the demo and piping into jq."""

    type: Literal["stdout"]
    results: bool = Field(True, description="Print every result.")
    stats: bool = Field(False, description="Also print the periodic stats objects.")
    events: bool = Field(False, description="Also print lifecycle events (source state, model changes).")


PublisherConfig = StdoutPublisherConfig
