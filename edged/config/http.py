"""The `[http]` table: the local status page, its JSON API, the live view, /metrics and /healthz (off unless set).

No I/O here: the token file is read when the server starts (edged/app/web/auth.py), so the config can be printed
and compared without leaking it.
"""

from __future__ import annotations

import ipaddress
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from edged.config.base import FilePath, Table

LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")


def split_listen(value: str) -> tuple[str, int]:
    """ "127.0.0.1:8080" / "[::1]:8080" / "localhost:8080" → (host, port); ValueError naming the fix."""
    text = value.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"{value!r}: write an IPv6 address as '[::1]:8080'")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise ValueError(f"{value!r} is not 'address:port' (e.g. '127.0.0.1:8080')")
        if ":" in host:
            raise ValueError(f"{value!r}: write an IPv6 address in brackets, as '[{host}]:{port_text}'")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{value!r}: the port must be a number from 1 to 65535")
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HttpConfig(Table):
    """The status page and API. Loopback only unless a token is set; every POST needs the token."""

    PATH_KEYS: ClassVar[tuple[str, ...]] = ("token_file",)

    listen: str = Field(description="address:port; a non-loopback address requires auth = 'token'.")
    auth: Literal["none", "token"] = Field(
        "none", description="'token': every request from elsewhere and every POST needs the token."
    )
    token_file: FilePath | None = Field(
        None, description="File whose first line is the token; default: the systemd credential 'http-token'."
    )
    public_url: str | None = Field(
        None, description="How others reach the page (Home Assistant's link to it); default: from listen."
    )
    stream_fps: float = Field(5.0, gt=0, le=30, description="Most frames per second sent to each live view.")
    max_streams: int = Field(4, ge=1, le=32, description="Live views (MJPEG) served at once.")
    max_event_streams: int = Field(4, ge=1, le=32, description="Event streams (server-sent events) served at once.")
    health_max_age_s: float = Field(
        30.0, gt=0, description="/healthz reports 503 when no frame or no result came for this long."
    )

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        split_listen(value)
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("give the URL the page is reached at, starting with http:// or https://")
        return value

    @model_validator(mode="after")
    def _secure(self) -> HttpConfig:
        host, _ = split_listen(self.listen)
        if not is_loopback(host) and self.auth != "token":
            raise ValueError(
                f'listen = {self.listen!r} is reachable from other machines: set auth = "token" (and token_file, '
                "or the systemd credential 'http-token'), or listen on 127.0.0.1"
            )
        if self.token_file is not None and self.auth != "token":
            raise ValueError('token_file is set but auth is "none": set auth = "token" to use it')
        return self

    @property
    def host(self) -> str:
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return split_listen(self.listen)[1]

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def page_url(self, hostname: str) -> str:
        """The page's address for others (Home Assistant's configuration_url)."""
        if self.public_url:
            return self.public_url
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            host = hostname
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/"
