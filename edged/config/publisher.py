"""The base of every `[publisher]` table; each kind's own table is in its plugin under edged/publish/."""

from __future__ import annotations

from edged.config.base import Table


class PublisherConfig(Table):
    """Keys every `[publisher]` type has. Subclasses set `type: Literal["<name>"]`."""

    type: str

    def entity_labels(self) -> list[str]:
        """Labels this publisher gives entities or topics of their own (checked against the model's labels)."""
        return []
