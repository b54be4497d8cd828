"""The contract every frame source plugin fulfils; the pipeline's capture worker drives it."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Protocol

from edged.types import Frame

if TYPE_CHECKING:
    from edged.config.camera import CameraConfig


class FrameSource(Protocol):
    """A camera, stream, file, folder or synthetic scene.

    `open()` and `read()` raise SourceError with a message a user can act on. `read()` blocks until the next
    frame and returns None when a finite source is finished (a file without `loop`, a folder that is not
    watched). The capture worker reconnects a source that raised, by calling `close()` and `open()` again.
    Every method is called from the capture thread only.
    """

    id: str

    def open(self) -> None: ...

    def read(self) -> Frame | None: ...

    def close(self) -> None: ...

    def describe(self) -> str:
        """A short human description for logs, without secrets (credentials are masked in URLs)."""
        ...


#: `type` in [camera] → module holding a `create(config) -> FrameSource`, imported only when configured.
PLUGINS = {
    "opencv": "edged.sources.opencv",
    "picamera2": "edged.sources.picamera2",
    "images": "edged.sources.images",
    "synthetic": "edged.sources.synthetic",
}


def create_source(config: CameraConfig) -> FrameSource:
    """The source plugin for `config.type`, imported lazily so optional dependencies stay optional."""
    module = importlib.import_module(PLUGINS[config.type])
    source: FrameSource = module.create(config)
    return source
