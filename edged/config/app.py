"""The whole configuration file, and its loading with errors that name the TOML key and line.

`[camera]` and `[publisher]` are tables whose `type` picks a plugin; the plugin's own config model (in its file
under edged/sources/ or edged/publish/) validates the rest of the table. Validation never does I/O beyond reading
the file itself.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    SerializeAsAny,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
)
from pydantic_core import PydanticCustomError

from edged.config.base import FilePath, Table
from edged.config.camera import SourceConfig
from edged.config.errors import describe_errors, read_config_text
from edged.config.hosting import HostingConfig
from edged.config.http import HttpConfig
from edged.config.logs import LoggingConfig
from edged.config.model import ModelConfig
from edged.config.pipeline import PipelineConfig
from edged.config.publisher import PublisherConfig
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


def _plugin_table(kind: str, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Validate a `[camera]` / `[publisher]` table with the config model of the plugin its `type` names."""
    from edged.publish.registry import PUBLISHERS
    from edged.sources.registry import SOURCES

    registry = SOURCES if kind == "camera" else PUBLISHERS
    base = SourceConfig if kind == "camera" else PublisherConfig
    if isinstance(value, base):
        return value
    if not isinstance(value, dict):
        raise PydanticCustomError("table_type", "{m}", {"m": f"must be a table ([{kind}] with a `type` key)"})
    names = ", ".join(repr(name) for name in registry.names())
    if "type" not in value:
        raise PydanticCustomError("missing_type", "{m}", {"m": f"required key is missing; use one of {names}"})
    plugin = registry.get(value["type"]) if isinstance(value["type"], str) else None
    if plugin is None:
        message = f"{value['type']!r} is not a known {kind} type; use one of {names}"
        raise PydanticCustomError("unknown_type", "{m}", {"m": message})
    return plugin.config.model_validate(value)


def _camera(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    return _plugin_table("camera", value, handler)


def _publisher(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    return _plugin_table("publisher", value, handler)


def _default_publisher() -> PublisherConfig:
    from edged.publish.stdout import StdoutPublisherConfig

    return StdoutPublisherConfig(type="stdout")


CameraTable = Annotated[SerializeAsAny[SourceConfig], WrapValidator(_camera)]
PublisherTable = Annotated[SerializeAsAny[PublisherConfig], WrapValidator(_publisher)]


class AppConfig(Table):
    device_id: str = Field(default_factory=default_device_id, description="Names this device in topics and ids.")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    model: ModelConfig
    camera: CameraTable
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    publisher: PublisherTable = Field(default_factory=_default_publisher)
    state_dir: FilePath = Field(
        default_factory=default_state_dir, description="Hosting's metadata, downloads, versions."
    )
    hosting: HostingConfig | None = None
    http: HttpConfig | None = None

    @field_validator("device_id")
    @classmethod
    def _topic_safe(cls, value: str) -> str:
        if not _DEVICE_ID.match(value):
            raise ValueError("use 1–64 letters, digits, '-' or '_' (it becomes part of MQTT topics)")
        return value


def resolve_relative_paths(data: dict[str, Any], base: Path) -> None:
    """Relative file paths in the config are relative to the config file, not to the working directory."""
    from edged.publish.registry import PUBLISHERS
    from edged.sources.registry import SOURCES

    for key, table_model in (("model", ModelConfig), ("hosting", HostingConfig), ("http", HttpConfig)):
        table = data.get(key)
        if isinstance(table, dict):
            table_model.resolve_relative_paths(table, base)
    state_dir = data.get("state_dir")
    if isinstance(state_dir, str) and state_dir and not Path(state_dir).is_absolute():
        data["state_dir"] = str(base / state_dir)
    for key, registry in (("camera", SOURCES), ("publisher", PUBLISHERS)):
        table = data.get(key)
        if isinstance(table, dict) and isinstance(table.get("type"), str):
            plugin = registry.get(table["type"])
            if plugin is not None:
                plugin.config.resolve_relative_paths(table, base)


def parse_config(text: str, origin: str = "<config>", base: Path | None = None) -> AppConfig:
    """Validate TOML text; ConfigError listing every problem with its key and line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: not valid TOML: {exc}") from exc
    if base is not None:
        resolve_relative_paths(data, base)
    try:
        return AppConfig.model_validate(data)
    except ValidationError as exc:
        problems = describe_errors(exc, data, text, origin)
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems)) from exc


def load_config(path: Path) -> AppConfig:
    """Read and validate the configuration file at `path`."""
    text = read_config_text(path)
    return parse_config(text, str(path), path.resolve().parent)
