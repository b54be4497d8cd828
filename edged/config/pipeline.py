"""The `[pipeline]` table: rate limit, region of interest, orientation, stats and shutdown."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from edged.config.base import Table


class PipelineConfig(Table):
    max_fps: float = Field(0.0, ge=0, description="Most inferences per second; 0 = as fast as the model allows.")
    interval_s: float = Field(0.0, ge=0, description="One result every N seconds (overrides max_fps when set).")
    roi: list[float] | None = Field(None, description="Normalized [xmin, ymin, xmax, ymax] crop fed to the model.")
    rotate: Literal[0, 90, 180, 270] = Field(0, description="Clockwise rotation applied to every frame.")
    flip: Literal["none", "horizontal", "vertical", "both"] = "none"
    stats_interval_s: float = Field(10.0, gt=0, description="How often stats are logged and published.")
    shutdown_timeout_s: float = Field(5.0, gt=0, description="Longest a clean stop may take before exiting anyway.")
    black_frame_level: int = Field(
        8, ge=0, le=255, description="Frames whose brightest sampled pixel is below this count as black."
    )

    @field_validator("roi")
    @classmethod
    def _roi_shape(cls, value: list[float] | None) -> list[float] | None:
        if value is None:
            return value
        if len(value) != 4:
            raise ValueError("roi is [xmin, ymin, xmax, ymax], 4 numbers between 0 and 1")
        xmin, ymin, xmax, ymax = value
        if not (0 <= xmin < xmax <= 1 and 0 <= ymin < ymax <= 1):
            raise ValueError("roi needs 0 <= xmin < xmax <= 1 and 0 <= ymin < ymax <= 1")
        return value

    @model_validator(mode="after")
    def _one_rate(self) -> PipelineConfig:
        if self.max_fps and self.interval_s:
            raise ValueError("set either max_fps or interval_s, not both")
        return self

    @property
    def min_period_s(self) -> float:
        """Shortest time between two inferences (0 = no limit)."""
        if self.interval_s:
            return self.interval_s
        return 1.0 / self.max_fps if self.max_fps else 0.0
