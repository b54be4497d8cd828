"""The publisher contract, and what the running daemon offers its publishers and front ends.

A publisher plugin is one module (or package) holding its config model (a `PublisherConfig` subclass whose
`type` is a Literal), its publisher class, and `PLUGIN`, the registry entry; `edged.publish.registry` lists the
plugin modules. Publishers never start threads themselves: they ask the daemon's `Runtime` for them, so every
thread is supervised (an unexpected exception stops edged with a non-zero exit) and started in one place.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from edged.config.publisher import PublisherConfig

#: A command's reply (edged/schemas/command-reply.schema.json), handed to the front end that asked.
ReplySink = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class CommandRequest:
    """A command as a front end received it: its name and raw payload (parsed by the daemon's dispatcher).

    `retained` is MQTT's retain flag: a retained command would run again at every reconnect, so it is refused.
    """

    name: str
    payload: bytes = b"{}"
    origin: str = "mqtt"
    retained: bool = False


class Control(Protocol):
    """What a front end (MQTT commands, the HTTP page, a signal) may ask of the running daemon."""

    def submit(self, request: CommandRequest, reply: ReplySink) -> None:
        """Queue a command; `reply` is called exactly once, from a daemon thread, with its outcome."""
        ...

    def state(self) -> dict[str, Any]: ...

    def label_thresholds(self) -> dict[str, float]:
        """Every label the model reports, in its order, with the score at which it counts as detected."""
        ...

    def stats(self) -> dict[str, Any]: ...

    def snapshot_jpeg(self, annotated: bool) -> bytes | None:
        """The newest frame as JPEG (optionally with its results drawn), or None before the first frame."""
        ...


class Joinable(Protocol):
    def join(self, timeout: float | None = None) -> None: ...

    def is_alive(self) -> bool: ...


class NetworkLoop(Protocol):
    """A client library's own network thread (paho's loop_start/loop_stop)."""

    def loop_start(self) -> Any: ...

    def loop_stop(self) -> Any: ...


class Runtime(Protocol):
    """What the daemon gives a publisher when it starts: its control surface, and supervised threads."""

    @property
    def control(self) -> Control: ...

    def spawn(self, name: str, target: Callable[[], None]) -> Joinable:
        """Run `target` on a new supervised thread (an unexpected exception in it stops edged with exit 1)."""
        ...

    def start_network_loop(self, client: NetworkLoop) -> None:
        """Start a client library's own network thread (the one thread edged does not create itself)."""
        ...

    def request_stop(self, reason: str, exit_code: int = 0) -> None:
        """Ask the daemon to stop cleanly (e.g. stdout's reader went away)."""
        ...


class Publisher(Protocol):
    """Receives every result and the daemon's stats, state and events.

    `publish_*` are called from the pipeline's threads and must return quickly: a publisher that talks to the
    network buffers (within a stated bound) rather than blocking the inference loop, and never raises for a
    transient outage. `flush` waits (up to a limit) until what was handed over has been delivered.
    `take_backlog` hands over the results not yet delivered, oldest first, when the daemon replaces this
    publisher with another one (a new broker), so none is lost.
    """

    def start(self, runtime: Runtime) -> None: ...

    def publish_result(self, result: dict[str, Any]) -> None: ...

    def publish_stats(self, stats: dict[str, Any]) -> None: ...

    def publish_state(self, state: dict[str, Any]) -> None: ...

    def publish_event(self, event: dict[str, Any]) -> None: ...

    def publish_snapshot(self, annotated: bool | None) -> dict[str, Any]:
        """Publish the newest frame as a picture; raises CommandRefused when this publisher cannot."""
        ...

    def flush(self, timeout_s: float) -> bool: ...

    def take_backlog(self) -> list[dict[str, Any]]: ...

    def stop(self) -> None: ...


class Reconfigurable(Protocol):
    """Optional publisher methods a reload uses (looked up with getattr; a publisher may have neither)."""

    def reconfigure(self, config: PublisherConfig) -> bool:
        """Apply `config` in place and return True, or return False (and change nothing) when it needs a new
        publisher (another broker, other credentials, ...)."""
        ...

    def preflight(self) -> None:
        """Raise (PublishError) for what would make `start` fail, without starting anything."""
        ...


@dataclass(frozen=True)
class PublisherPlugin:
    """A registry entry: the `type` name, its config model, and how to build the publisher."""

    type: str
    config: builtins.type[PublisherConfig]
    create: Callable[[Any, str], Publisher]  # (its config, device_id) -> publisher
    summary: str = ""
    #: The smallest valid `[publisher]` table of this kind besides `type` (docs, contract tests).
    example: Mapping[str, Any] = field(default_factory=dict)


def create_publisher(config: PublisherConfig, device_id: str) -> Publisher:
    from edged.publish.registry import PUBLISHERS

    plugin = PUBLISHERS.get(config.type)
    if plugin is None:
        raise KeyError(f"no publisher plugin for type {config.type!r}")
    return plugin.create(config, device_id)
