"""Config errors a person can act on: each names the file, the line, the TOML key, what is wrong and the fix."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from edged.errors import ConfigError
from edged.files import read_user_file

_TYPE_WORDS = {
    "bool_type": "true or false (a TOML boolean, without quotes)",
    "int_type": "a whole number such as 3 (without quotes or a decimal point)",
    "float_type": "a number such as 0.5 (without quotes)",
    "string_type": 'a string in quotes, e.g. "text"',
    "list_type": "an array, e.g. [1, 2]",
    "dict_type": "a table",
    "model_type": "a table",
    "literal_error": None,
}


def read_config_text(path: Path) -> str:
    """The config file's text; ConfigError (with the line) when it is missing, unreadable or not UTF-8."""
    raw = read_user_file(
        path, "configuration file", ConfigError, missing_hint="start from config.example.toml",
        directory_hint=f"give the file itself, e.g. {path}/config.toml",
    )  # fmt: skip
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ConfigError(
            f"{path}:1: the file is UTF-16 (as Windows Notepad's 'Unicode' saves it), not UTF-8; save it as UTF-8, "
            f"e.g. `iconv -f UTF-16 -t UTF-8 {path.name} > fixed.toml`"
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(
            f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {column}, likely Latin-1 or "
            f"Windows-1252); save the file as UTF-8, e.g. `iconv -f LATIN1 -t UTF-8 {path.name} > fixed.toml`"
        ) from exc


def line_of(text: str, loc: tuple[int | str, ...]) -> int | None:
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
        return line_of(text, tuple(keys[:-1]))
    return best


def _model_types(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [found for arg in get_args(annotation) for found in _model_types(arg)]


def _plugins(table: str) -> dict[str, type[BaseModel]]:
    from edged.publish.registry import PUBLISHERS
    from edged.sources.registry import SOURCES

    registry = SOURCES if table == "camera" else PUBLISHERS
    return {name: plugin.config for name, plugin in registry.all().items()}


def _model_at(path: tuple[str, ...], data: Any) -> type[BaseModel] | None:
    """The config model of the table at `path`, following each plugin table's `type` in the raw data."""
    from edged.config.app import AppConfig

    model: type[BaseModel] | None = AppConfig
    value = data
    for depth, part in enumerate(path):
        if model is None or part not in model.model_fields:
            return None
        value = value.get(part) if isinstance(value, dict) else None
        if depth == 0 and part in ("camera", "publisher"):
            kind = value.get("type") if isinstance(value, dict) else None
            model = _plugins(part).get(kind) if isinstance(kind, str) else None
        else:
            found = _model_types(model.model_fields[part].annotation)
            model = found[0] if found else None
    return model


def _unknown_key(loc: tuple[str, ...], data: Any) -> str:
    key, parent = loc[-1], loc[:-1]
    if not parent:
        for table in ("publisher", "camera"):
            if key in _plugins(table):
                return (
                    f"unknown table: {key} settings go under [{table}] with type = {key!r} "
                    f'(write [{table}] then type = "{key}" and the {key} keys below it)'
                )
    if parent == ("camera",) or parent == ("publisher",):
        table = parent[0]
        plugins = _plugins(table)
        written = data.get(table, {}).get("type") if isinstance(data.get(table), dict) else None
        if key in plugins:
            return f'{key!r} is a {table} type, not a key: write type = "{key}" and that type\'s keys'
        owners = [name for name, model in plugins.items() if key in model.model_fields and name != written]
        model = plugins.get(written) if isinstance(written, str) else None
        if owners and model is not None:
            keys = ", ".join(k for k in model.model_fields if k not in ("type", "id", "reconnect"))
            return (
                f"unknown key for {table} type {written!r}: `{key}` belongs to type {' / '.join(map(repr, owners))}; "
                f"type {written!r} takes {keys}"
            )
    model = _model_at(parent, data)
    known = sorted(model.model_fields) if model is not None else []
    close = difflib.get_close_matches(key, known, n=1)
    if close and close[0] != key:
        return f"unknown key (did you mean {close[0]!r}?)"
    return "unknown key (see config.example.toml for every option)"


def _message(error: dict[str, Any], loc: tuple[str, ...], data: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return _unknown_key(loc, data)
    if kind == "missing":
        return "required key is missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind in _TYPE_WORDS and _TYPE_WORDS[kind] is not None:
        given = error.get("input")
        return f"must be {_TYPE_WORDS[kind]}, not {type(given).__name__} {given!r}"
    return message


def describe_errors(exc: ValidationError, data: Any, text: str, origin: str) -> list[str]:
    """One line per problem: `file:line: key: message`."""
    problems = []
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"])
        if error["type"] in ("missing_type", "unknown_type"):
            loc = (*loc, "type")
        key = ".".join(loc) or "(top level)"
        line = line_of(text, loc)
        where = f"{origin}:{line}" if line else origin
        problems.append(f"{where}: {key}: {_message(dict(error), loc, data)}")
    return problems
