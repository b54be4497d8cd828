"""The publisher for `[publisher] type`, imported lazily."""

from __future__ import annotations

from edged.config.app import AppConfig
from edged.publish.base import Publisher


def create_publisher(config: AppConfig) -> Publisher:
    from edged.publish.stdout import StdoutPublisher

    return StdoutPublisher(config.publisher)
