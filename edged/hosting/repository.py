"""The publishing side: `edged hosting init | publish | rollout | withdraw | refresh`, and the local `status`.

Built on tuf.api.metadata with securesystemslib's ed25519 signers. Users never edit TUF metadata themselves.
Every command writes new files in the order repo_files describes and leaves the old ones, so a host that is
mid-upload or a CDN holding old copies never serves a state that does not verify.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from securesystemslib.signer import Signer
from tuf.api.exceptions import RepositoryError
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, Targets, Timestamp

from edged import __version__
from edged.config.hosting import check_model_name
from edged.errors import HostingError
from edged.hosting import keys
from edged.hosting.checks import CheckedVersion, check_version
from edged.hosting.layout import (
    CPU_FILE,
    EDGETPU_FILE,
    INDEX_PATH,
    GoldenImage,
    VersionFiles,
    VersionMeta,
    companion_custom,
    parse_edged_version,
    read_version_meta,
    safe_file_name,
    version_dir,
)
from edged.hosting.repo_files import RENEW_WITHIN, RepositoryFiles, utc_now

Report = Callable[[str], None]
#: the first edged release that reads this repository format
FORMAT_MIN_EDGED = "0.1.0"


def _quiet(_: str) -> None:
    return None


P = ParamSpec("P")
R = TypeVar("R")


def _translating(what: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """The publishing side's boundary: file-system and TUF serialization errors become HostingError."""

    def wrap(function: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(function)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return function(*args, **kwargs)
            except OSError as exc:
                where = f" ({exc.filename})" if exc.filename else ""
                raise HostingError(f"{what}: {exc.strerror or exc}{where}; check the path and its permissions") from exc
            except RepositoryError as exc:
                raise HostingError(f"{what}: TUF metadata could not be written or read: {exc}") from exc

        return run

    return wrap


@dataclass(frozen=True)
class InitResult:
    repo_dir: Path
    key_dir: Path
    root_json: Path
    root_expires: dt.datetime


@_translating("creating the repository")
def init(
    repo_dir: Path, key_dir: Path | None = None, expires_days: int = 365, now: dt.datetime | None = None
) -> InitResult:
    """A new repository (root, targets, snapshot, timestamp; consistent snapshots) and its ed25519 keys."""
    now = now or utc_now()
    key_dir = key_dir or keys.default_key_dir(repo_dir)
    if not 1 <= expires_days <= 3660:
        raise HostingError(f"--expires-days {expires_days}: give 1 to 3660 days")
    keys.check_outside(key_dir, repo_dir)
    if (repo_dir / "metadata").exists():
        raise HostingError(f"{repo_dir}/metadata already exists: {repo_dir} is already a repository")
    signers = keys.generate(key_dir)
    root = Root(version=1, expires=now, consistent_snapshot=True)
    for role, signer in signers.items():
        root.add_key(signer.public_key, role)
    (repo_dir / "metadata").mkdir(parents=True, exist_ok=True)
    (repo_dir / "targets").mkdir(parents=True, exist_ok=True)
    files = RepositoryFiles(
        repo_dir,
        Metadata(root),
        Metadata(Timestamp(version=1, expires=now, snapshot_meta=MetaFile(version=1))),
        Metadata(Snapshot(version=1, expires=now)),
        Metadata(Targets(version=1, expires=now)),
    )
    files.write_root(signers[Root.type], now, dt.timedelta(days=expires_days), bump=False)
    files.write_targets(dict(signers), now, bump=False)
    return InitResult(repo_dir, key_dir, repo_dir / "metadata" / "root.json", root.expires)


def _online_signers(files: RepositoryFiles, key_dir: Path) -> dict[str, Signer]:
    return {role: keys.load_signer(key_dir, role, files.root.signed) for role in keys.ONLINE_ROLES}


def _open(repo_dir: Path, key_dir: Path | None) -> tuple[RepositoryFiles, dict[str, Signer]]:
    key_dir = key_dir or keys.default_key_dir(repo_dir)
    keys.check_outside(key_dir, repo_dir)
    files = RepositoryFiles.load(repo_dir)
    return files, _online_signers(files, key_dir)


def versions_of(files: RepositoryFiles, name: str) -> dict[int, VersionMeta]:
    """Every published version of `name`, read from the signed custom metadata."""
    found: dict[int, VersionMeta] = {}
    for number, path in files.read_index().versions(name).items():
        info = files.targets.signed.targets.get(path)
        if info is None:
            raise HostingError(f"{INDEX_PATH} names {path}, which targets metadata does not list; republish")
        found[number] = read_version_meta(info.custom, path)
    return found


@dataclass(frozen=True)
class PublishResult:
    name: str
    version: int
    channel: str
    rollout_percent: int
    targets: tuple[str, ...]
    checked: CheckedVersion


@_translating("publishing")
def publish(
    repo_dir: Path,
    model: Path,
    name: str,
    *,
    key_dir: Path | None = None,
    labels: Path | None = None,
    edgetpu_model: Path | None = None,
    channel: str = "stable",
    rollout_percent: int = 100,
    notes: str = "",
    settings: Mapping[str, Any] | None = None,
    golden: Iterable[tuple[Path, str]] = (),
    min_edged_version: str | None = None,
    report: Report = _quiet,
    now: dt.datetime | None = None,
) -> PublishResult:
    """Check the model as a device would, then add it as the next version of `name`."""
    now = now or utc_now()
    settings = dict(settings or {})
    golden = list(golden)
    try:
        check_model_name(name)
    except ValueError as exc:
        raise HostingError(f"--name {name!r}: {exc}") from exc
    if not 0 <= rollout_percent <= 100:
        raise HostingError(f"--rollout {rollout_percent}: give a whole percentage from 0 to 100")
    if not channel or len(channel) > 64:
        raise HostingError("--channel: give a name of 1 to 64 characters")
    min_version = min_edged_version or FORMAT_MIN_EDGED
    try:
        parse_edged_version(min_version)
    except ValueError as exc:
        raise HostingError(f"--min-edged-version: {exc}") from exc
    for path, what in ((model, "MODEL"), (labels, "--labels"), (edgetpu_model, "--edgetpu-model")):
        if path is not None and not path.is_file():
            raise HostingError(f"{what} {path}: no such file")
    files, signers = _open(repo_dir, key_dir)
    report(f"checking {model.name} with edged's inspection (load and run it once)")
    checked = check_version(model, labels, edgetpu_model, settings, golden)
    for note in checked.notes:
        report(f"note: {note}")
    existing = versions_of(files, name)
    version = max(existing, default=0) + 1
    folder = version_dir(name, version)
    tpu_only = checked.tpu_only
    cpu_path = None if tpu_only else f"{folder}/{CPU_FILE}"
    tpu_source = model if tpu_only else edgetpu_model
    tpu_path = f"{folder}/{EDGETPU_FILE}" if tpu_source is not None else None
    labels_path = f"{folder}/{safe_file_name(labels.name)}" if labels is not None else None
    golden_meta = tuple(
        GoldenImage(image=f"{folder}/golden/{n}-{safe_file_name(image.name)}", expected=expected)
        for n, (image, expected) in enumerate(golden)
    )
    meta = VersionMeta(
        name=name,
        version=version,
        channel=channel,
        rollout_percent=rollout_percent,
        notes=notes,
        published=now.isoformat().replace("+00:00", "Z"),
        files=VersionFiles(cpu=cpu_path, edgetpu=tpu_path, labels=labels_path),
        model_json=json.dumps(settings, sort_keys=True),
        golden=golden_meta,
        min_edged_version=min_version,
    )
    report(f"adding {name} version {version} ({channel}, rollout {rollout_percent}%)")
    for role, target in meta.target_paths():
        custom = meta.custom() if target == meta.primary else companion_custom(role, name, version)
        source = {"model": model, "edgetpu_model": tpu_source, "labels": labels}.get(role)
        if role == "golden":
            source = golden[[g.image for g in golden_meta].index(target)][0]
        assert source is not None
        files.add_target(target, source, custom)
    index = files.read_index()
    index.models.setdefault(name, {})[str(version)] = meta.primary
    files.add_target_bytes(INDEX_PATH, index.to_bytes())
    report("signing targets, snapshot and timestamp")
    files.write_targets(signers, now)
    return PublishResult(name, version, channel, rollout_percent, tuple(p for _, p in meta.target_paths()), checked)


@_translating("changing the version")
def _edit_version(
    repo_dir: Path, key_dir: Path | None, name: str, version: int, now: dt.datetime | None, **changes: Any
) -> VersionMeta:
    now = now or utc_now()
    files, signers = _open(repo_dir, key_dir)
    existing = versions_of(files, name)
    if version not in existing:
        known = ", ".join(str(v) for v in sorted(existing)) or "none"
        raise HostingError(f"{name} has no version {version} in {repo_dir} (published versions: {known})")
    meta = existing[version].model_copy(update=changes)
    files.targets.signed.targets[meta.primary].unrecognized_fields["custom"] = meta.custom()
    files.write_targets(signers, now)
    return meta


def rollout(
    repo_dir: Path, name: str, version: int, percent: int, key_dir: Path | None = None, now: dt.datetime | None = None
) -> VersionMeta:
    """Set the share of devices that take `version` (raising it keeps every device already in)."""
    if not 0 <= percent <= 100:
        raise HostingError(f"--percent {percent}: give a whole percentage from 0 to 100")
    return _edit_version(repo_dir, key_dir, name, version, now, rollout_percent=percent)


def withdraw(
    repo_dir: Path, name: str, version: int, key_dir: Path | None = None, now: dt.datetime | None = None
) -> VersionMeta:
    """Mark a version withdrawn: devices go back to the newest version that is not."""
    return _edit_version(repo_dir, key_dir, name, version, now, withdrawn=True)


@dataclass
class RefreshResult:
    renewed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    expires: dict[str, dt.datetime] = field(default_factory=dict)


@_translating("refreshing the repository")
def refresh(repo_dir: Path, key_dir: Path | None = None, now: dt.datetime | None = None) -> RefreshResult:
    """Re-sign timestamp (always), snapshot and targets (when they expire soon), and root when its offline key
    is present and it expires soon (else a warning)."""
    now = now or utc_now()
    key_dir = key_dir or keys.default_key_dir(repo_dir)
    files, signers = _open(repo_dir, key_dir)
    result = RefreshResult()
    root = files.root.signed
    if root.expires - now < RENEW_WITHIN[Root.type]:
        if keys.key_path(key_dir, Root.type).exists():
            lifetime = max(root.expires - _issued(root), dt.timedelta(days=30))
            files.write_root(keys.load_signer(key_dir, Root.type, root), now, lifetime)
            result.renewed.append(f"root (version {files.root.signed.version})")
        else:
            result.warnings.append(
                f"root.json expires {root.expires:%Y-%m-%d}: run refresh once with the offline root key in "
                f"{keys.key_path(key_dir, Root.type).parent}, then give devices nothing: they follow by themselves"
            )
    if files.targets.signed.expires - now < RENEW_WITHIN[Targets.type]:
        files.write_targets(signers, now)
        result.renewed += ["targets", "snapshot", "timestamp"]
    elif files.snapshot.signed.expires - now < RENEW_WITHIN[Snapshot.type]:
        files.write_snapshot(signers, now)
        result.renewed += ["snapshot", "timestamp"]
    else:
        files.write_timestamp(signers, now)
        result.renewed.append("timestamp")
    result.expires = _expiries(files)
    return result


def _issued(root: Root) -> dt.datetime:
    """Roots carry no issue date: assume the lifetime init gave (365 days) when unknown."""
    return root.expires - dt.timedelta(days=365)


def _expiries(files: RepositoryFiles) -> dict[str, dt.datetime]:
    return {
        "root": files.root.signed.expires,
        "targets": files.targets.signed.expires,
        "snapshot": files.snapshot.signed.expires,
        "timestamp": files.timestamp.signed.expires,
    }


@dataclass(frozen=True)
class LocalStatus:
    versions: dict[str, dict[int, VersionMeta]]
    expires: dict[str, dt.datetime]
    metadata_versions: dict[str, int]
    edged_version: str = __version__


@_translating("reading the repository")
def status(repo_dir: Path) -> LocalStatus:
    """What the repository directory publishes, read and signature-checked locally (no keys needed)."""
    files = RepositoryFiles.load(repo_dir)
    index = files.read_index()
    return LocalStatus(
        versions={name: versions_of(files, name) for name in sorted(index.models)},
        expires=_expiries(files),
        metadata_versions={
            "root": files.root.signed.version,
            "targets": files.targets.signed.version,
            "snapshot": files.snapshot.signed.version,
            "timestamp": files.timestamp.signed.version,
        },
    )
