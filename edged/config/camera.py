"""The base of every `[camera]` table: the keys each source kind has, and how a failed source reconnects.

Each kind's own table is defined in its plugin file under edged/sources/ (see edged/sources/base.py).
"""

from __future__ import annotations

from pydantic import Field, model_validator

from edged.config.base import Table


class ReconnectConfig(Table):
    """Exponential backoff with jitter and a cap, for sources that fail or end while live."""

    initial_s: float = Field(1.0, gt=0, description="First wait after a failure.")
    max_s: float = Field(30.0, gt=0, description="Longest wait between attempts.")
    multiplier: float = Field(2.0, ge=1.0)
    jitter: float = Field(0.2, ge=0.0, le=1.0, description="Random ± fraction of each wait.")
    max_attempts: int = Field(0, ge=0, description="0 = retry for ever (a daemon's default).")

    @model_validator(mode="after")
    def _initial_within_cap(self) -> ReconnectConfig:
        if self.initial_s > self.max_s:
            raise ValueError(f"initial_s ({self.initial_s:g}) must not be larger than max_s ({self.max_s:g})")
        return self


class SourceConfig(Table):
    """Keys every `[camera]` type has. Subclasses set `type: Literal["<name>"]`."""

    type: str
    id: str = Field("camera", min_length=1, description="Source id reported with every result.")
    reconnect: ReconnectConfig = Field(default_factory=ReconnectConfig)

    def is_live(self) -> bool:
        """Live sources produce frames whether read or not (latest frame wins); others wait for the pipeline."""
        return True
