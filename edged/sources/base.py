"""The contract every frame source plugin fulfils, and the base of every `[camera]` table.

A plugin is one module in `edged/sources/` holding its config model (a `SourceConfig` subclass whose `type` is a
Literal), its "live or not" rule (`SourceConfig.is_live`), its source class, and `PLUGIN`, the registry entry.
`edged.sources.registry` lists the plugin modules, one line each.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from edged.config.camera import SourceConfig
from edged.types import Frame


class FrameSource(Protocol):
    """A camera, stream, file, folder or synthetic scene.

    `open()` and `read()` raise SourceError with a message a user can act on; `SourceError.permanent` marks a
    failure that waiting cannot heal (a missing file, a missing module), which is never retried. `read()` blocks
    until the next frame and returns None when a finite source is finished (a file without `loop`, a folder that
    is not watched). The capture worker reconnects a source that raised a transient error, by calling `close()`
    and `open()` again. Every method is called from the capture thread only, except `interrupt()`.
    """

    id: str

    def open(self) -> None: ...

    def read(self) -> Frame | None: ...

    def close(self) -> None: ...

    def describe(self) -> str:
        """A short human description for logs, without secrets (credentials are masked in URLs)."""
        ...


class Interruptible(Protocol):
    def interrupt(self) -> None:
        """Make a `read()` that is waiting (for a new file, say) return None soon; called from another thread."""
        ...


class KeepsState(Protocol):
    def use_state_dir(self, folder: Path) -> None:
        """Keep state files in the configured `state_dir` (called before `open()`; without it nothing is kept)."""
        ...


@dataclass(frozen=True)
class SourcePlugin:
    """A registry entry: the `type` name, its config model, and how to build the source from that config."""

    type: str
    config: builtins.type[SourceConfig]
    create: Callable[[Any], FrameSource]
    summary: str = ""
    #: The smallest valid `[camera]` table of this kind besides `type` (docs, contract tests).
    example: Mapping[str, Any] = field(default_factory=dict)


def create_source(config: SourceConfig) -> FrameSource:
    """The source plugin for `config.type`."""
    from edged.sources.registry import SOURCES

    plugin = SOURCES.get(config.type)
    if plugin is None:
        raise KeyError(f"no source plugin for type {config.type!r}")
    return plugin.create(config)
