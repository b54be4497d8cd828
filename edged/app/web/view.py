"""The daemon as the web front end sees it: read-only views and the command surface, in one small adapter.

The front end never reaches into the pipeline's threads: it reads what the daemon already publishes (state,
stats, cumulative counters, the newest frame) and submits commands through the daemon's one dispatcher.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from edged.app.events import Broadcast, EventBus
from edged.app.liveness import DEFAULT_STALL_S
from edged.app.web.health import Sample
from edged.publish.base import CommandRequest, ReplySink

if TYPE_CHECKING:
    from edged.app.daemon import Daemon


class DaemonView:
    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon

    @property
    def events(self) -> EventBus:
        return self._daemon.events

    @property
    def results(self) -> Broadcast[dict[str, Any]]:
        return self._daemon.results

    @property
    def commands(self) -> tuple[str, ...]:
        return self._daemon.dispatcher.names

    def is_long(self, name: str) -> bool:
        spec = self._daemon.dispatcher.spec(name)
        return spec is not None and spec.long

    def submit(self, request: CommandRequest, reply: ReplySink) -> None:
        self._daemon.submit(request, reply)

    def state(self) -> dict[str, Any]:
        return self._daemon.state()

    def stats(self) -> dict[str, Any]:
        stats = self._daemon.stats()
        link = self.link_stats()
        if link is not None:
            stats["mqtt"] = dict(link)
        return stats

    def cumulative(self) -> dict[str, Any]:
        return self._daemon.stats_counters.cumulative()

    def link_stats(self) -> Mapping[str, Any] | None:
        """The publisher's own figures (the MQTT link and its buffer), when it has any."""
        holder = self._daemon.publishers
        figures = getattr(holder.current, "mqtt_stats", None) if holder is not None else None
        return figures() if callable(figures) else None

    def publisher_type(self) -> str:
        return self._daemon.config.publisher.type

    def hosting_state(self) -> Mapping[str, Any] | None:
        return self._daemon.hosting_state()

    @property
    def last_frame(self) -> object | None:
        worker = self._daemon.inference
        return worker.last if worker is not None else None

    def snapshot_jpeg(self, annotated: bool) -> bytes | None:
        return self._daemon.snapshot_jpeg(annotated)

    def health_sample(self) -> Sample:
        daemon = self._daemon
        cumulative = daemon.stats_counters.cumulative()
        now = time.monotonic()
        worker = daemon.inference
        liveness = daemon.liveness
        return Sample(
            now=now,
            captured=cumulative["totals"]["captured"],
            inferred=cumulative["totals"]["inferred"],
            source_state=cumulative["source_state"],
            paused=daemon.paused,
            live=daemon.config.camera.is_live(),
            stuck_s=worker.stuck_for(now) if worker is not None else 0.0,
            stall_limit_s=liveness.stall_s if liveness is not None else DEFAULT_STALL_S,
            min_period_s=daemon.config.pipeline.min_period_s,
        )
