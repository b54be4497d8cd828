"""The effective configuration as TOML: every key with the value edged uses, defaults included (`check-config
--show`). Keys that are not set (TOML has no null) appear as comments. The text reads back as the same config.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel


def _key(name: str) -> str:
    return name if name.replace("_", "a").replace("-", "a").isalnum() else json.dumps(name)


def _value(value: Any, mask: Callable[[str], str]) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, (str, Path)):
        return json.dumps(mask(str(value)), ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(item, mask) for item in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{_key(str(k))} = {_value(v, mask)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def render_toml(config: BaseModel, mask: Callable[[str], str] = lambda text: text) -> str:
    """TOML text for `config`; strings go through `mask` (e.g. to hide passwords in URLs)."""
    lines: list[str] = []
    _table(config, [], lines, mask)
    return "\n".join(lines).strip() + "\n"


def _table(model: BaseModel, path: list[str], lines: list[str], mask: Callable[[str], str]) -> None:
    tables: list[tuple[str, BaseModel]] = []
    body: list[str] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            tables.append((name, value))
        elif value is None:
            body.append(f"# {_key(name)} is not set")
        else:
            body.append(f"{_key(name)} = {_value(value, mask)}")
    if path:
        lines.append("")
        lines.append("[" + ".".join(_key(part) for part in path) + "]")
    lines.extend(body)
    for name, table in tables:
        _table(table, [*path, name], lines, mask)
