"""What the unit's sandbox lets the daemon reach, checked against what the config names (`edged doctor`).

The unit runs edged as a dynamic user with a read-only file system, a private /tmp, no /home, closed devices and a
few address families (systemd/edged.service). A config that names a file in /home, a secret readable only by root,
a state directory outside StateDirectory= or a camera of a device class the unit does not allow works from a shell
and fails under systemd: this says which, and what to do instead.
"""

from __future__ import annotations

import grp
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from edged.config.app import AppConfig
from edged.service.unit import CREDENTIALS_DIR, UnitFile

PROTECTED_HOME = (PurePosixPath("/home"), PurePosixPath("/root"), PurePosixPath("/run/user"))
PRIVATE_TMP = (PurePosixPath("/tmp"), PurePosixPath("/var/tmp"))


@dataclass(frozen=True)
class Finding:
    key: str  # the config key the problem is about
    problem: str
    fix: str


def _under(path: PurePosixPath, roots: tuple[PurePosixPath, ...] | list[PurePosixPath]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def _paths_of(unit: UnitFile, key: str) -> list[PurePosixPath]:
    """Paths of a *Paths= setting (space separated, with systemd's -/+ prefixes dropped)."""
    return [PurePosixPath(part.lstrip("-+:")) for value in unit.values(key) for part in value.split()]


def _state_dirs(unit: UnitFile) -> list[PurePosixPath]:
    return [PurePosixPath("/var/lib") / part for value in unit.values("StateDirectory") for part in value.split()]


def _credential_names(unit: UnitFile) -> set[str]:
    names = set()
    for key in ("LoadCredential", "LoadCredentialEncrypted", "SetCredential", "SetCredentialEncrypted"):
        for value in unit.values(key):
            names.add(value.split(":", 1)[0])
    return names


def _groups(unit: UnitFile) -> set[int]:
    found = set()
    for value in unit.values("SupplementaryGroups"):
        for name in value.split():
            try:
                found.add(grp.getgrnam(name).gr_gid)
            except KeyError:
                continue
    return found


def _stranger_may(path: Path, groups: set[int], need: int) -> bool:
    """Whether a user that owns nothing here (a dynamic user in `groups`) has `need` (R_OK, X_OK) on `path`."""
    try:
        info = path.stat()
    except OSError:
        return True  # missing: other checks report it
    other = {os.R_OK: stat.S_IROTH, os.X_OK: stat.S_IXOTH}[need]
    group = {os.R_OK: stat.S_IRGRP, os.X_OK: stat.S_IXGRP}[need]
    return bool(info.st_mode & other) or (info.st_gid in groups and bool(info.st_mode & group))


def _readable_by_dynamic_user(path: Path, groups: set[int]) -> bool:
    if not _stranger_may(path, groups, os.R_OK):
        return False
    return all(_stranger_may(parent, groups, os.X_OK) for parent in path.parents)


def _named_files(config: AppConfig) -> Iterator[tuple[str, Path, bool]]:
    """(key, path, is a secret) for the files edged reads."""
    model = config.model
    yield "model.path", model.path, False
    if model.labels is not None:
        yield "model.labels", model.labels, False
    if model.cpu_model is not None:
        yield "model.cpu_model", model.cpu_model, False
    if config.hosting is not None:
        yield "hosting.trusted_root", config.hosting.trusted_root, False
    publisher: Any = config.publisher
    for key, secret in (("password_file", True), ("tls_ca_file", False), ("tls_cert_file", False),
                        ("tls_key_file", True)):  # fmt: skip
        value = getattr(publisher, key, None)
        if isinstance(value, Path):
            yield f"publisher.{key}", value, secret
    camera: Any = config.camera
    if config.camera.type == "images" and isinstance(getattr(camera, "path", None), Path):
        yield "camera.path", camera.path, False
    source = getattr(camera, "source", None)
    if config.camera.type == "opencv" and isinstance(source, str):
        text = source.strip()
        if not text.isdigit() and "://" not in text and not text.startswith("/dev/"):
            yield "camera.source", Path(text), False


def _char_device_classes() -> dict[int, str]:
    """major → name of the character devices (/proc/devices), as DeviceAllow=char-NAME uses them."""
    classes: dict[int, str] = {}
    try:
        text = Path("/proc/devices").read_text()
    except OSError:
        return classes
    section = ""
    for line in text.splitlines():
        if line.endswith(":"):
            section = line
            continue
        parts = line.split()
        if section.startswith("Character") and len(parts) == 2 and parts[0].isdigit():
            classes[int(parts[0])] = parts[1]
    return classes


def _camera_device(config: AppConfig) -> Path | None:
    source = getattr(config.camera, "source", None)
    if config.camera.type != "opencv" or not isinstance(source, str):
        return None
    text = source.strip()
    if text.isdigit():
        return Path(f"/dev/video{int(text)}")
    return Path(text) if text.startswith("/dev/") else None


def _uses_network(config: AppConfig) -> bool:
    source = getattr(config.camera, "source", "")
    return config.publisher.type == "mqtt" or config.hosting is not None or "://" in str(source)


def sandbox_findings(unit: UnitFile, config: AppConfig, *, state_dir_set: bool = True) -> list[Finding]:
    """Every way the unit's sandbox keeps edged from something the config names (empty: it reaches them all).

    `state_dir_set`: the file sets state_dir; when it does not, the service uses $STATE_DIRECTORY (the unit's
    StateDirectory=), whatever the default resolves to for the user running this check.
    """
    found: list[Finding] = []
    protect_home = unit.last("ProtectHome").lower()
    private_tmp = unit.flag("PrivateTmp")
    dynamic = unit.flag("DynamicUser")
    groups = _groups(unit)
    inaccessible = _paths_of(unit, "InaccessiblePaths")
    credentials = _credential_names(unit)
    move = "move it to /var/lib/edged (the state directory) or /etc/edged"
    for key, path, secret in _named_files(config):
        where = PurePosixPath(path)
        if _under(where, [CREDENTIALS_DIR]):
            name = where.relative_to(CREDENTIALS_DIR).parts[0] if where != CREDENTIALS_DIR else ""
            if name not in credentials:
                found.append(Finding(key, f"{path} is a credential the unit does not load",
                                     f"add LoadCredential={name}:/etc/edged/credentials/{name} (edged service install "
                                     f"--credential {name}=FILE)"))  # fmt: skip
            continue
        if protect_home in ("yes", "true", "tmpfs") and _under(where, PROTECTED_HOME):
            found.append(Finding(key, f"{path} is under a home directory, which ProtectHome= hides", move))
        elif private_tmp and _under(where, PRIVATE_TMP):
            found.append(Finding(key, f"{path} is in /tmp, which PrivateTmp= replaces with an empty one", move))
        elif _under(where, inaccessible):
            found.append(Finding(key, f"{path} is under InaccessiblePaths=", move))
        elif dynamic and not _under(where, _state_dirs(unit)) and not _readable_by_dynamic_user(path, groups):
            fix = (
                f"keep it secret with systemd credentials: edged service install --credential NAME={path}, then "
                f'{key} = "{CREDENTIALS_DIR}/NAME"'
                if secret
                else f"make it readable by others (chmod o+r {path}, and o+x on its folders), or {move}"
            )
            found.append(Finding(key, f"{path} is not readable by the service's dynamic user (DynamicUser=yes)", fix))
    state = PurePosixPath(config.state_dir)
    strict = unit.last("ProtectSystem").lower() == "strict"
    writable = _state_dirs(unit) + _paths_of(unit, "ReadWritePaths")
    if strict and (state_dir_set or not _state_dirs(unit)) and not _under(state, writable):
        found.append(Finding("state_dir", f"{state} is read-only under ProtectSystem=strict",
                             "leave state_dir unset (the unit's StateDirectory, /var/lib/edged) or add it to "
                             "ReadWritePaths= (systemctl edit edged)"))  # fmt: skip
    found.extend(_device_findings(unit, config))
    if _uses_network(config):
        families = " ".join(unit.values("RestrictAddressFamilies"))
        if unit.flag("PrivateNetwork"):
            found.append(Finding("publisher", "PrivateNetwork=yes cuts the service off the network it needs",
                                 "remove PrivateNetwork= from the unit"))  # fmt: skip
        elif families and not families.startswith("~") and "AF_INET" not in families.split():
            found.append(Finding("publisher", "RestrictAddressFamilies= does not allow AF_INET",
                                 "allow AF_INET AF_INET6 in RestrictAddressFamilies="))  # fmt: skip
    return found


def _device_findings(unit: UnitFile, config: AppConfig) -> list[Finding]:
    policy = unit.last("DevicePolicy", "auto").lower()
    if policy not in ("closed", "strict") and not unit.flag("PrivateDevices"):
        return []
    allowed = [value.split()[0] for value in unit.values("DeviceAllow") if value.split()]
    found = []
    device = _camera_device(config)
    if device is not None and device.exists():
        try:
            major = os.major(device.stat().st_rdev)
        except OSError:
            major = -1
        kind = _char_device_classes().get(major)
        if str(device) not in allowed and (kind is None or f"char-{kind}" not in allowed):
            found.append(Finding("camera.source", f"{device} (char-{kind or '?'}) is not in the unit's DeviceAllow=",
                                 f"add DeviceAllow=char-{kind or 'NAME'} rw (systemctl edit edged)"))  # fmt: skip
    if "_edgetpu" in config.model.path.name and config.model.accelerator != "cpu":
        if not {"char-usb_device", "char-apex"} & set(allowed):
            found.append(Finding("model.path", "an Edge TPU model, but DeviceAllow= allows no Coral device",
                                 "add DeviceAllow=char-usb_device rw and DeviceAllow=char-apex rw"))  # fmt: skip
        if "plugdev" not in " ".join(unit.values("SupplementaryGroups")).split():
            found.append(
                Finding(
                    "model.path",
                    "an Edge TPU model, but the service is not in the plugdev group that "
                    "the Coral udev rule gives access to",
                    "add SupplementaryGroups=plugdev",
                )
            )
    return found
