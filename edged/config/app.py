"""The whole configuration file, and its loading with errors that name the TOML key and line."""

from __future__ import annotations

import difflib
import os
import re
import socket
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from edged.config.camera import CameraConfig
from edged.config.hosting import HostingConfig
from edged.config.model import ModelConfig, Strict
from edged.config.pipeline import PipelineConfig
from edged.config.publish import PublisherConfig, StdoutPublisherConfig
from edged.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_DEVICE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def default_device_id() -> str:
    """The hostname, reduced to characters that are safe in MQTT topics and client ids."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname()).strip("-")
    return cleaned[:64] or "edged"


def default_state_dir() -> Path:
    """$STATE_DIRECTORY (systemd's StateDirectory=, /var/lib/edged under the unit), else ~/.local/state/edged."""
    given = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return Path(given) if given else Path.home() / ".local" / "state" / "edged"


class AppConfig(Strict):
    device_id: str = Field(default_factory=default_device_id, description="Names this device in topics and ids.")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    model: ModelConfig
    camera: CameraConfig
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    publisher: PublisherConfig = Field(default_factory=lambda: StdoutPublisherConfig(type="stdout"))
    state_dir: Path = Field(default_factory=default_state_dir, description="Hosting's metadata, downloads, versions.")
    hosting: HostingConfig | None = None

    @field_validator("device_id")
    @classmethod
    def _topic_safe(cls, value: str) -> str:
        if not _DEVICE_ID.match(value):
            raise ValueError("use 1–64 letters, digits, '-' or '_' (it becomes part of MQTT topics)")
        return value


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    """Relative file paths in the config are relative to the config file, not to the working directory."""
    for table, keys in (
        ("model", ("path", "labels", "cpu_model")),
        ("camera", ("path",)),
        ("publisher", ("password_file", "tls_ca_file", "tls_cert_file", "tls_key_file")),
        ("hosting", ("trusted_root",)),
    ):
        section = data.get(table)
        if isinstance(section, dict):
            for key in keys:
                value = section.get(key)
                if isinstance(value, str) and value and not Path(value).is_absolute():
                    section[key] = str(base / value)
    state_dir = data.get("state_dir")
    if isinstance(state_dir, str) and state_dir and not Path(state_dir).is_absolute():
        data["state_dir"] = str(base / state_dir)


def _line_of(text: str, loc: tuple[int | str, ...]) -> int | None:
    """The line of `loc` (a pydantic error location) in TOML `text`: the key's line, else its table's."""
    keys = [str(part) for part in loc if isinstance(part, str)]
    if not keys:
        return None
    table_re = re.compile(r"^\s*\[+\s*([^\]]+?)\s*\]+\s*(#.*)?$")
    key_re = re.compile(r"^\s*([A-Za-z0-9_\-\"']+)\s*=")
    current: list[str] = []
    best: int | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        table = table_re.match(line)
        if table:
            current = [part.strip().strip("\"'") for part in table.group(1).split(".")]
            if current == keys:
                best = number
            continue
        key = key_re.match(line)
        if key and [*current, key.group(1).strip("\"'")] == keys[: len(current) + 1]:
            if len(current) + 1 == len(keys):
                return number
            best = best or number
        elif key and not current and key.group(1) == keys[0]:
            best = best or number
    if best is None and len(keys) > 1:
        return _line_of(text, tuple(keys[:-1]))
    return best


def _describe(error: dict[str, Any], text: str, origin: str) -> str:
    loc = tuple(part for part in error["loc"] if not (isinstance(part, str) and part in _UNION_TAGS))
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        loc = (*loc, "type")
    key = ".".join(str(part) for part in loc) or "(top level)"
    line = _line_of(text, loc)
    where = f"{origin}:{line}" if line else origin
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        close = difflib.get_close_matches(str(loc[-1]), sorted(_known_keys()), n=1) if loc else []
        hint = f"did you mean {close[0]!r}?" if close else "see config.example.toml for every option"
        message = f"unknown key ({hint})"
    elif error["type"] == "missing":
        message = "required key is missing"
    elif error["type"] == "union_tag_invalid":
        message = f"{message}".replace("does not match any of the expected tags", "is not a known type; use one of")
    return f"{where}: {key}: {message}"


def _known_keys() -> set[str]:
    """Every key of every config table, for 'did you mean' hints."""
    from pydantic import BaseModel

    keys: set[str] = set()
    pending: list[type[BaseModel]] = [AppConfig]
    while pending:
        model = pending.pop()
        for name, field in model.model_fields.items():
            keys.add(name)
            for arg in _model_types(field.annotation):
                if arg not in pending:
                    pending.append(arg)
    return keys


def _model_types(annotation: Any) -> list[type[Any]]:
    from typing import get_args

    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [found for arg in get_args(annotation) for found in _model_types(arg)]


_UNION_TAGS = {"opencv", "picamera2", "images", "synthetic", "stdout", "mqtt"}


def parse_config(text: str, origin: str = "<config>", base: Path | None = None) -> AppConfig:
    """Validate TOML text; ConfigError listing every problem with its key and line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: not valid TOML: {exc}") from exc
    if base is not None:
        _resolve_paths(data, base)
    try:
        return AppConfig.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(dict(error), text, origin) for error in exc.errors()]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems)) from exc


def load_config(path: Path) -> AppConfig:
    """Read and validate the configuration file at `path`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"configuration file {path} does not exist (start from config.example.toml)") from exc
    except OSError as exc:
        raise ConfigError(f"configuration file {path} cannot be read: {exc.strerror or exc}") from exc
    return parse_config(text, str(path), path.resolve().parent)
