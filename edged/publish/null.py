"""A publisher that delivers nothing: the base of the benchmark publishers, which override what they measure."""

from __future__ import annotations

from typing import Any

from edged.publish.base import AppControl


class NullPublisher:
    def start(self, control: AppControl) -> None:
        return None

    def publish_result(self, result: dict[str, Any]) -> None:
        return None

    def publish_stats(self, stats: dict[str, Any]) -> None:
        return None

    def publish_state(self, state: dict[str, Any]) -> None:
        return None

    def publish_event(self, event: dict[str, Any]) -> None:
        return None

    def flush(self, timeout_s: float) -> bool:
        return True

    def stop(self) -> None:
        return None
