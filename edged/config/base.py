"""The base of every configuration table: strict types, unknown keys refused, values frozen.

TOML has real booleans, integers, floats and strings, so a value of the wrong type is a mistake worth naming
(`loop = "yes"`, `threshold = "0.5"`, `top_k = 3.0`, `loop = 0`) rather than something to coerce. The one
exception is a file path, which TOML can only write as a string: fields typed `FilePath` accept one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict
from pydantic import Strict as StrictMode

from edged.config.credentials import is_credential

#: A path given as a TOML string; relative ones are made relative to the config file (see Table.PATH_KEYS), except
#: `%credentials%/NAME`, a systemd credential (edged/config/credentials.py).
FilePath = Annotated[Path, StrictMode(False)]


class Table(BaseModel):
    """One TOML table: unknown keys are errors (they are usually typos), types are strict, values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    #: Keys of this table holding file paths, resolved against the config file's folder when relative.
    PATH_KEYS: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def resolve_relative_paths(cls, table: dict[str, Any], base: Path) -> None:
        """Rewrite relative paths in the raw `table` (before validation) to be relative to `base`."""
        for key in cls.PATH_KEYS:
            value = table.get(key)
            if isinstance(value, str) and value and not Path(value).is_absolute() and not is_credential(value):
                table[key] = str(base / value)
