"""Validation that reports instead of raising: every problem of a config file at once, each `file:line: key: why`.

`load_config` raises on the same problems; `edged check-config` and a reload want the list itself (to print it,
publish it in an event, and keep running the previous configuration).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edged.config.app import AppConfig, resolve_relative_paths
from edged.config.errors import describe_errors, read_config_text
from edged.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def toml_problem(exc: tomllib.TOMLDecodeError, origin: str) -> str:
    """`file:line: not valid TOML: ...` from tomllib's "... (at line L, column C)" message."""
    message = str(exc)
    line = None
    marker = "(at line "
    if marker in message:
        head, _, tail = message.rpartition(marker)
        number = tail.split(",", 1)[0].strip(" )")
        if number.isdigit():
            line, message = int(number), f"{head.strip()} (column {tail.split('column', 1)[-1].strip(' )')})"
    where = f"{origin}:{line}" if line else origin
    return f"{where}: not valid TOML: {message}"


def check_text(text: str, origin: str = "<config>", base: Path | None = None) -> tuple[AppConfig | None, list[str]]:
    """(the config, []) when valid, else (None, every problem)."""
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return None, [toml_problem(exc, origin)]
    if base is not None:
        resolve_relative_paths(data, base)
    try:
        return AppConfig.model_validate(data), []
    except ValidationError as exc:
        return None, describe_errors(exc, data, text, origin)


def check_file(path: Path) -> tuple[AppConfig | None, list[str], str]:
    """(the config or None, problems, the file's text) for the config file at `path`."""
    try:
        text = read_config_text(path)
    except ConfigError as exc:
        return None, [str(exc)], ""
    config, problems = check_text(text, str(path), path.resolve().parent)
    return config, problems, text
