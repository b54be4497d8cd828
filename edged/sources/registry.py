"""Every frame source kind edged knows: one line per plugin module (see edged/sources/base.py).

Modules are imported when first needed, and a plugin imports its optional dependency (picamera2) only when a
source is opened, so listing a kind here costs nothing on machines that never use it.
"""

from __future__ import annotations

from edged.plugins import Registry
from edged.sources.base import SourcePlugin

SOURCES: Registry[SourcePlugin] = Registry(
    "camera",
    [
        "edged.sources.opencv",
        "edged.sources.picamera2",
        "edged.sources.images",
        "edged.sources.synthetic",
    ],
)
