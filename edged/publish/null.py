"""A publisher that delivers nothing: `type = "null"` (only logs, stats and metrics), and the base of the
benchmark publishers, which override what they measure."""

from __future__ import annotations

from typing import Any, Literal

from edged.config.publisher import PublisherConfig
from edged.errors import CommandRefused
from edged.publish.base import PublisherPlugin, Runtime


class NullPublisherConfig(PublisherConfig):
    """Results go nowhere: for benchmarks, or when only the logs (and later the status page) are wanted."""

    type: Literal["null"]


class NullPublisher:
    def __init__(self, config: NullPublisherConfig | None = None, device_id: str = "") -> None:
        self.config = config

    def start(self, runtime: Runtime) -> None:
        return None

    def publish_result(self, result: dict[str, Any]) -> None:
        return None

    def publish_stats(self, stats: dict[str, Any]) -> None:
        return None

    def publish_state(self, state: dict[str, Any]) -> None:
        return None

    def publish_event(self, event: dict[str, Any]) -> None:
        return None

    def publish_snapshot(self, annotated: bool | None) -> dict[str, Any]:
        raise CommandRefused("this publisher has nowhere to put a picture")

    def flush(self, timeout_s: float) -> bool:
        return True

    def take_backlog(self) -> list[dict[str, Any]]:
        return []

    def stop(self) -> None:
        return None


PLUGIN = PublisherPlugin("null", NullPublisherConfig, NullPublisher, "results go nowhere")
