"""`edged service install | uninstall`: the files of a service install, written under a root ("/" or a staging
folder for packaging). Running systemctl is the CLI's job; this only writes and removes files.

What an install writes, never replacing a config that is there:
  etc/systemd/system/edged.service       the shipped unit, for this prefix, with LoadCredential= lines
  etc/edged/config.toml                  from config.example.toml (model path under /var/lib/edged), or --config
  etc/edged/root.json                    a given TUF root ([hosting] trusted_root)
  etc/edged/credentials/NAME             secrets, mode 0600, handed to the service by systemd (LoadCredential=)
  var/lib/edged/models/NAME              a given model (systemd moves var/lib/edged into place at the first start)
Uninstall removes the unit (and its enablement links) and keeps the config, credentials and state.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath

from edged.config.advice import config_warnings
from edged.config.validate import check_text
from edged.errors import ConfigError, EdgedError
from edged.service.unit import CREDENTIALS_DIR, DEFAULT_CONFIG, UNIT_NAME, check_credential_name, render_unit

UNIT_DIR = PurePosixPath("/etc/systemd/system")
CONFIG_DIR = PurePosixPath("/etc/edged")
STATE_DIR = PurePosixPath("/var/lib/edged")
MODELS_DIR = STATE_DIR / "models"
EXAMPLE_MODEL = MODELS_DIR / "detector.tflite"
_MODEL_PATH_LINE = re.compile(r'^(\s*path\s*=\s*)"[^"]*"', re.M)


class ServiceError(EdgedError):
    """An install or uninstall step that cannot be done (nothing was half-written)."""


@dataclass
class Report:
    """What an install or uninstall did, for the CLI to print."""

    written: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    next_steps: list[str] = field(default_factory=list)


def _at(root: Path, path: PurePosixPath) -> Path:
    return root / str(path).lstrip("/")


def _write(target: Path, data: bytes, mode: int) -> None:
    """Write `target` atomically (a temporary file renamed into place), with `mode` from the start."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def example_config(model_path: PurePosixPath = EXAMPLE_MODEL) -> str:
    """config.example.toml with [model] path pointing at the state directory, where the unit lets edged read."""
    text = (resources.files("edged") / "data" / "config.example.toml").read_text(encoding="utf-8")
    start = text.index("[model]")
    end = text.find("\n[", start + 1)
    table = text[start : end if end != -1 else len(text)]
    rewritten, count = _MODEL_PATH_LINE.subn(lambda m: f'{m.group(1)}"{model_path}"', table, count=1)
    if count != 1:
        raise ServiceError("config.example.toml has no [model] path line to point at /var/lib/edged (a packaging bug)")
    return text[:start] + rewritten + text[start + len(table) :]


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ServiceError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc


def _config_text(source: Path | None, model: PurePosixPath) -> str:
    if source is None:
        return example_config(model)
    raw = _read(source, "the config file")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ServiceError(f"{source} is not UTF-8 text; save it as UTF-8") from exc


def install(
    root: Path,
    prefix: PurePosixPath,
    *,
    config: Path | None = None,
    trusted_root: Path | None = None,
    model: Path | None = None,
    credentials: dict[str, Path] | None = None,
) -> Report:
    """Write the service's files under `root`. Everything is read and checked before the first file is written."""
    report = Report()
    if not prefix.is_absolute():
        raise ServiceError(f"--prefix {prefix}: give an absolute path (the unit runs {prefix}/bin/edged from /)")
    credentials = {check_credential_name(name): path for name, path in (credentials or {}).items()}
    secrets = {name: _read(path, f"the secret for credential {name!r}") for name, path in credentials.items()}
    model_path = MODELS_DIR / model.name if model is not None else EXAMPLE_MODEL
    model_bytes = _read(model, "the model") if model is not None else None
    root_json = _read(trusted_root, "the trusted root") if trusted_root is not None else None
    config_target = _at(root, DEFAULT_CONFIG)
    text = _config_text(config, model_path)
    checked, problems = check_text(text, str(DEFAULT_CONFIG), base=Path(str(CONFIG_DIR)))
    if checked is None:
        raise ConfigError("the config to install is invalid:\n  " + "\n  ".join(problems))
    if not (_at(root, prefix) / "bin" / "edged").exists():
        where = _at(root, prefix) / "bin" / "edged"
        if root == Path("/"):
            raise ServiceError(f"{where} does not exist: install edged there first (python3 -m venv {prefix} && "
                               f"{prefix}/bin/pip install .), or give --prefix")  # fmt: skip
        report.warnings.append(f"{where} does not exist yet; the unit runs {prefix}/bin/edged")
    credential_paths = {name: CONFIG_DIR / "credentials" / name for name in credentials}
    unit = render_unit(prefix, DEFAULT_CONFIG, credential_paths)

    unit_target = _at(root, UNIT_DIR / UNIT_NAME)
    _write(unit_target, unit.encode(), 0o644)
    report.written.append(unit_target)
    if config_target.exists():
        report.kept.append(config_target)
    else:
        _write(config_target, text.encode(), 0o644)
        report.written.append(config_target)
    if root_json is not None:
        target = _at(root, CONFIG_DIR / "root.json")
        _write(target, root_json, 0o644)
        report.written.append(target)
    for name, data in secrets.items():
        target = _at(root, credential_paths[name])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.parent.chmod(0o700)
        _write(target, data, 0o600)
        report.written.append(target)
    if model_bytes is not None:
        target = _at(root, model_path)
        _write(target, model_bytes, 0o644)
        report.written.append(target)
    installed_text = _read(config_target, "the config").decode("utf-8-sig", errors="replace")
    installed, problems = check_text(installed_text, str(DEFAULT_CONFIG), base=Path(str(CONFIG_DIR)))
    if installed is None:  # a config that was kept may be anything
        report.warnings.extend(f"the kept config is invalid: {problem}" for problem in problems)
    else:
        report.warnings.extend(config_warnings(installed, installed_text, str(DEFAULT_CONFIG), service_config=True,
                                               exists=lambda p: _at(root, PurePosixPath(p)).exists()))  # fmt: skip
    report.next_steps = _next_steps(prefix, model is not None, credential_paths, trusted_root is not None)
    return report


def _next_steps(prefix: PurePosixPath, has_model: bool, credentials: dict[str, PurePosixPath],
                has_root: bool) -> list[str]:  # fmt: skip
    steps = []
    if not has_model:
        steps.append(f"copy your model to {EXAMPLE_MODEL} (or point [model] path at it)")
    steps.append(f'edit {DEFAULT_CONFIG}: the camera, and the [publisher] (type = "mqtt", host, ...)')
    for name in credentials:
        steps.append(f'in the config, read the secret {name!r} as "{CREDENTIALS_DIR}/{name}" (e.g. publisher.'
                     "password_file)")  # fmt: skip
    if has_root:
        steps.append(f'set [hosting] url, name and trusted_root = "{CONFIG_DIR}/root.json"')
    steps.append(f"{prefix}/bin/edged check-config {DEFAULT_CONFIG}")
    steps.append(f"{prefix}/bin/edged doctor --config {DEFAULT_CONFIG}")
    steps.append("systemctl enable --now edged")
    steps.append("journalctl -u edged -f")
    return steps


def uninstall(root: Path) -> Report:
    """Remove the unit and its enablement links; keep /etc/edged (config, root.json, credentials) and the state."""
    report = Report()
    unit_dir = _at(root, UNIT_DIR)
    unit = unit_dir / UNIT_NAME
    wants = [d for d in unit_dir.iterdir() if d.name.endswith((".wants", ".requires"))] if unit_dir.is_dir() else []
    links = sorted(d / UNIT_NAME for d in wants if (d / UNIT_NAME).is_symlink())
    for path in [*links, unit]:
        if path.is_symlink() or path.exists():
            path.unlink()
            report.removed.append(path)
    for kept in (_at(root, CONFIG_DIR), _at(root, STATE_DIR), _at(root, PurePosixPath("/var/lib/private/edged"))):
        if kept.exists():
            report.kept.append(kept)
    if not report.removed:
        report.warnings.append(f"{unit} was not installed; nothing to remove")
    return report
