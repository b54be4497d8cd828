"""The `[hosting]` table: which TUF repository a device follows, and the limits every fetch from it obeys.

Bool and number fields are strict (a quoted "true" or "900" is a typo, not a value); paths may be strings.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import ClassVar
from urllib.parse import urlparse

from pydantic import Field, StrictBool, StrictFloat, StrictInt, field_validator, model_validator

from edged.config.base import FilePath, Table

_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
KIB = 1024
MIB = 1024 * KIB


def check_model_name(value: str) -> str:
    """Model names become folders in the repository and on devices: keep them to safe characters."""
    if not _MODEL_NAME.match(value) or ".." in value:
        raise ValueError("use 1–64 letters, digits, '-', '_' or '.', starting with a letter or digit")
    return value


class InstallWindow(Table):
    """Local wall-clock times between which a downloaded version may be activated; may wrap past midnight."""

    start: dt.time
    end: dt.time

    @staticmethod
    def parse(text: str) -> InstallWindow:
        match = _WINDOW.match(text.strip())
        if not match:
            raise ValueError(f"{text!r} is not a window: use 'HH:MM-HH:MM' (24-hour clock), e.g. '02:00-05:00'")
        h1, m1, h2, m2 = (int(part) for part in match.groups())
        if (h1, m1) == (h2, m2):
            raise ValueError(f"{text!r} is an empty window: start and end must differ (omit it for 'any time')")
        return InstallWindow(start=dt.time(h1, m1), end=dt.time(h2, m2))

    def contains(self, moment: dt.time) -> bool:
        if self.start < self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end  # e.g. 22:00-04:00


class HostingConfig(Table):
    PATH_KEYS: ClassVar[tuple[str, ...]] = ("trusted_root",)

    url: str = Field(description="The repository: metadata/ and targets/ under it.")
    name: str = Field(description="The model this device follows.")
    trusted_root: FilePath = Field(description="The repository's root.json, installed once with the device.")
    channel: str = Field("stable", min_length=1, max_length=64)
    interval_s: StrictInt | StrictFloat = Field(900, ge=10, description="Time between checks, with ±jitter.")
    jitter: StrictInt | StrictFloat = Field(0.2, ge=0.0, le=1.0)
    retry_max_s: StrictInt | StrictFloat = Field(
        3600, gt=0, description="Failed checks back off exponentially from interval_s/10 up to this."
    )
    auto_install: StrictBool = Field(True, description="false: announce and wait for an install command.")
    pin_version: StrictInt | None = Field(None, ge=1, description="Stay on this version.")
    install_window: str | None = Field(None, description="'HH:MM-HH:MM': activate only inside this window.")
    health_window_s: StrictInt | StrictFloat = Field(60, ge=0, description="Probation after a swap.")
    max_latency_ms: StrictInt | StrictFloat | None = Field(None, gt=0)
    max_latency_ratio: StrictInt | StrictFloat | None = Field(None, gt=0)
    keep_versions: StrictInt = Field(3, ge=1, le=100, description="Installed versions to keep.")
    # -- limits on every fetch
    connect_timeout_s: StrictInt | StrictFloat = Field(
        30, gt=0, description="Longest wait for a connection, and for the next bytes of a response."
    )
    metadata_deadline_s: StrictInt | StrictFloat = Field(120, gt=0, description="Longest one metadata file may take.")
    download_deadline_s: StrictInt | StrictFloat = Field(3600, gt=0, description="Longest one model download may take.")
    root_max_bytes: StrictInt = Field(256 * KIB, ge=KIB)
    timestamp_max_bytes: StrictInt = Field(16 * KIB, ge=KIB)
    snapshot_max_bytes: StrictInt = Field(256 * KIB, ge=KIB)
    targets_max_bytes: StrictInt = Field(4 * MIB, ge=KIB)
    index_max_bytes: StrictInt = Field(1 * MIB, ge=KIB, description="The repository's list of models and versions.")
    max_model_bytes: StrictInt = Field(1024 * MIB, ge=KIB, description="Refuse a version whose files are larger.")
    free_space_margin_bytes: StrictInt = Field(
        64 * MIB, ge=0, description="Free space left over after a download, or it is not started."
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"{value!r} is not an http(s) URL; give the repository's base URL")
        if parsed.query or parsed.fragment:
            raise ValueError("the repository URL takes no ?query or #fragment")
        return value if value.endswith("/") else value + "/"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_model_name(value)

    @field_validator("install_window")
    @classmethod
    def _window(cls, value: str | None) -> str | None:
        if value is not None:
            InstallWindow.parse(value)
        return value

    @model_validator(mode="after")
    def _retry_cap(self) -> HostingConfig:
        if self.retry_max_s < self.interval_s / 10:
            raise ValueError("retry_max_s must be at least interval_s / 10 (the first retry)")
        return self

    @property
    def metadata_url(self) -> str:
        return self.url + "metadata/"

    @property
    def targets_url(self) -> str:
        return self.url + "targets/"

    def window(self) -> InstallWindow | None:
        return InstallWindow.parse(self.install_window) if self.install_window else None
