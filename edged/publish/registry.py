"""Every publisher kind edged knows: one line per plugin module (see edged/publish/base.py).

Modules are imported when first needed; the MQTT plugin imports paho only when an MQTT publisher is built.
"""

from __future__ import annotations

from edged.plugins import Registry
from edged.publish.base import PublisherPlugin

PUBLISHERS: Registry[PublisherPlugin] = Registry(
    "publisher",
    [
        "edged.publish.stdout",
        "edged.publish.mqtt",
        "edged.publish.null",
    ],
)
