"""The publisher contract, and the control surface a publisher may offer remotely (MQTT commands)."""

from __future__ import annotations

from typing import Any, Protocol


class AppControl(Protocol):
    """What a publisher may ask of the running daemon (remote commands)."""

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    @property
    def paused(self) -> bool: ...

    def stats(self) -> dict[str, Any]: ...

    def state(self) -> dict[str, Any]: ...

    def snapshot_jpeg(self, annotated: bool) -> bytes | None:
        """The newest frame as JPEG (optionally with its results drawn), or None before the first frame."""
        ...

    def check_update(self) -> dict[str, Any]: ...


class Publisher(Protocol):
    """Receives every result and the daemon's stats, state and events.

    `publish_*` are called from the pipeline's threads and must return quickly: a publisher that talks to the
    network buffers (within a stated bound) rather than blocking the inference loop, and never raises for a
    transient outage. `flush` waits (up to a limit) until what was handed over has been delivered.
    """

    def start(self, control: AppControl) -> None: ...

    def publish_result(self, result: dict[str, Any]) -> None: ...

    def publish_stats(self, stats: dict[str, Any]) -> None: ...

    def publish_state(self, state: dict[str, Any]) -> None: ...

    def publish_event(self, event: dict[str, Any]) -> None: ...

    def flush(self, timeout_s: float) -> bool: ...

    def stop(self) -> None: ...
