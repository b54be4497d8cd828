"""Secrets as systemd credentials: `password_file = "%credentials%/mqtt-password"`.

The shipped unit runs edged as a dynamic user (`DynamicUser=yes`): there is no `edged` user or group to give a
file to, a root-only secret is unreadable, and a world-readable one is readable by everyone. systemd's
`LoadCredential=NAME:/etc/edged/NAME` copies the file, readable by this service only, into a private directory
it names in `$CREDENTIALS_DIRECTORY`; a path written `%credentials%/NAME` in the config means that copy. It is
looked up when the file is used (the config object itself never reads the environment).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from edged.errors import ConfigError

CREDENTIALS = "%credentials%"
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")

#: Advice for a secret the service cannot read, true under the shipped unit (docs/operations.md#secrets).
USE_A_CREDENTIAL = (
    "under the shipped unit edged runs as a dynamic user, which cannot read a root-only file: hand it over as a "
    "systemd credential instead (`sudo edged service install --credential {name}={path}` adds the unit's "
    'LoadCredential= line) and set {key} = "%credentials%/{name}"; docs/operations.md#secrets'
)


def is_credential(value: str | Path) -> bool:
    return str(value).startswith(CREDENTIALS + "/")


def credential_advice(key: str, path: Path) -> str:
    """How to make the secret at `path` readable to the service without making it readable to anyone else."""
    return USE_A_CREDENTIAL.format(name=path.name, path=path, key=key)


def resolve_credential(path: Path, key: str, environ: Mapping[str, str] = os.environ) -> Path:
    """`%credentials%/NAME` → `$CREDENTIALS_DIRECTORY/NAME`; any other path is returned unchanged.

    ConfigError (naming `key`, the TOML key) when edged is not running under a unit that loads credentials, or the
    unit does not load that one.
    """
    text = str(path)
    if not is_credential(text):
        return path
    name = text[len(CREDENTIALS) + 1 :]
    if not _NAME.match(name):
        raise ConfigError(
            f"{key}: {text!r} is not a credential name: write %credentials%/NAME, NAME as in LoadCredential=NAME:..."
        )
    load = f"LoadCredential={name}:/etc/edged/credentials/{name}"
    tool = f"`sudo edged service install --credential {name}=FILE` adds it"
    directory = environ.get("CREDENTIALS_DIRECTORY", "")
    if not directory:
        raise ConfigError(
            f"{key}: {text} is a systemd credential, but $CREDENTIALS_DIRECTORY is not set: edged is not running "
            f"under a unit that loads credentials. The unit needs `{load}` ({tool}); running edged by hand, give "
            "the file's own path"
        )
    found = Path(directory) / name
    if not found.is_file():
        raise ConfigError(
            f"{key}: the unit loads no credential named {name!r} (nothing at {found}); it needs `{load}` ({tool})"
        )
    return found
