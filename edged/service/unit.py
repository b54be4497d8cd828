"""The shipped unit (systemd/edged.service, packaged as edged/data/edged.service), rendered for an install, and
read back for `edged doctor`.

The packaged file is the one source: an install only changes the prefix edged runs from, the config path, and adds
`LoadCredential=` lines, so the hardening that tests/test_systemd_unit.py scores is the hardening installed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath

from edged.errors import ConfigError

DEFAULT_PREFIX = PurePosixPath("/opt/edged")
DEFAULT_CONFIG = PurePosixPath("/etc/edged/config.toml")
UNIT_NAME = "edged.service"
#: Where systemd puts the credentials of a system service (systemd.exec(5), $CREDENTIALS_DIRECTORY).
CREDENTIALS_DIR = PurePosixPath("/run/credentials") / UNIT_NAME
_CREDENTIAL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: The comment in the packaged unit after which an install adds its LoadCredential= lines.
_ANCHOR = "(e.g. publisher.password_file)\n"


def packaged_unit() -> str:
    return (resources.files("edged") / "data" / UNIT_NAME).read_text(encoding="utf-8")


def check_credential_name(name: str) -> str:
    """Credential names become file names under /run/credentials: letters, digits, '-', '_', '.'."""
    if not _CREDENTIAL_NAME.match(name) or name in (".", ".."):
        raise ConfigError(
            f"{name!r} is not a credential name; use letters, digits, '-', '_' or '.' (e.g. mqtt-password)"
        )
    return name


def render_unit(
    prefix: PurePosixPath = DEFAULT_PREFIX,
    config: PurePosixPath = DEFAULT_CONFIG,
    credentials: Mapping[str, PurePosixPath] | None = None,
) -> str:
    """The unit to install: edged from `prefix`, reading `config`, with one LoadCredential= per credential."""
    text = packaged_unit()
    text = text.replace(f"{DEFAULT_PREFIX}/bin/edged", f"{prefix}/bin/edged")
    text = text.replace(str(DEFAULT_CONFIG), str(config))
    if credentials:
        lines = "".join(f"LoadCredential={check_credential_name(name)}:{path}\n" for name, path in credentials.items())
        assert _ANCHOR in text, "the packaged unit lost the comment where credentials go"
        text = text.replace(_ANCHOR, _ANCHOR + lines, 1)
    return text


@dataclass
class UnitFile:
    """A unit file read back: its [Service] settings (a key may repeat) and where it came from."""

    path: Path
    service: dict[str, list[str]] = field(default_factory=dict)

    def values(self, key: str) -> list[str]:
        """Every value of `key`, after systemd's rule that an empty assignment resets the list."""
        found: list[str] = []
        for value in self.service.get(key, []):
            if value == "":
                found = []
            else:
                found.append(value)
        return found

    def last(self, key: str, default: str = "") -> str:
        values = self.service.get(key, [])
        return values[-1] if values else default

    def flag(self, key: str) -> bool:
        return self.last(key).lower() in ("yes", "true", "1", "on")


def read_unit(path: Path) -> UnitFile:
    """Parse a unit file and its drop-ins (`path`.d/*.conf, later ones win), as systemd would read [Service]."""
    unit = UnitFile(path)
    files = [path, *sorted(path.with_name(path.name + ".d").glob("*.conf"))]
    for file in files:
        section = ""
        pending = ""
        for raw in file.read_text(encoding="utf-8").splitlines():
            line = pending + raw.strip()
            pending = ""
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
                continue
            key, sep, value = line.partition("=")
            if sep and section == "Service":
                unit.service.setdefault(key.strip(), []).append(value.strip())
    return unit
