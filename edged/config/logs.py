"""The `[logging]` table: the line format, and levels per component (a logger name and everything under it)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from edged.config.base import Table

_LOGGER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")

Level = Literal["debug", "info", "warning", "error"]


class LoggingConfig(Table):
    format: Literal["auto", "text", "journal", "json"] = Field(
        "auto", description="auto: journal under systemd (priorities, no timestamps), else text."
    )
    levels: dict[str, Level] = Field(
        default_factory=dict, description='Per component, e.g. { "edged.publish" = "debug" }.'
    )

    @field_validator("levels")
    @classmethod
    def _logger_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _LOGGER_NAME.match(name):
                raise ValueError(
                    f'{name!r} is not a logger name; use dotted names such as "edged.publish" or '
                    '"edged.app.daemon" (the name each log line shows)'
                )
        return value
