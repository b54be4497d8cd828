"""A test-only frame source kind, `type = "scripted"`, in one file: its config model, its live rule, the source,
and its registry entry. Registering it (`SOURCES.register("support.plugins.scripted")`) is all it takes for the
config to accept it and the daemon to run it, which is what the plugin tests prove.

It draws flat frames whose value is the frame index, and can misbehave on purpose: raise an unexpected exception
(a bug) at a given frame, or hang inside read() ignoring every stop request (a stuck driver) until `RELEASE` is
set.
"""

from __future__ import annotations

import threading
from typing import Literal

import numpy as np
from pydantic import Field

from edged.config.camera import SourceConfig
from edged.sources.base import SourcePlugin
from edged.types import Frame

#: Set to let a source hung by `hang_at` return (each test that hangs one sets it when done).
RELEASE = threading.Event()


class ScriptedCamera(SourceConfig):
    type: Literal["scripted"]
    frames: int = Field(10, ge=0, description="Frames before the end; 0 = never ends.")
    width: int = Field(64, ge=16)
    height: int = Field(48, ge=16)
    live: bool = Field(False, description="Live (latest frame wins) or back-pressure (every frame inferred).")
    crash_at: int = Field(-1, description="Raise an unexpected RuntimeError when reading this frame.")
    hang_at: int = Field(-1, description="Block inside read() at this frame until RELEASE is set.")

    def is_live(self) -> bool:
        return self.live


class ScriptedSource:
    def __init__(self, config: ScriptedCamera) -> None:
        self.id = config.id
        self.config = config
        self.index = 0
        self.opened = 0
        self.closed = 0

    def describe(self) -> str:
        return f"scripted source ({self.config.frames} frames)"

    def open(self) -> None:
        self.opened += 1

    def read(self) -> Frame | None:
        config = self.config
        if config.frames and self.index >= config.frames:
            return None
        if self.index == config.crash_at:
            raise RuntimeError(f"scripted crash at frame {self.index}")
        if self.index == config.hang_at:
            RELEASE.wait()
        image = np.full((config.height, config.width, 3), self.index % 256, np.uint8)
        self.index += 1
        return Frame.now(image, self.id, self.index - 1)

    def close(self) -> None:
        self.closed += 1


PLUGIN = SourcePlugin("scripted", ScriptedCamera, ScriptedSource, "frames from a test script")
