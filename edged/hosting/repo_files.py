"""A repository directory on the publisher's disk: reading its metadata chain, and writing a new state in the order
that keeps every static host consistent (targets first, then targets/snapshot metadata, timestamp.json last).

Consistent snapshots: every metadata file but timestamp.json is written as `N.role.json` and every target as
`<sha256>.<name>`, and nothing is overwritten. A CDN or a half-finished upload therefore never serves a mix: a
device follows timestamp.json to exactly one snapshot, one targets file and the bytes they name.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securesystemslib.signer import Signer
from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, TargetFile, Targets, Timestamp
from tuf.api.serialization import DeserializationError
from tuf.api.serialization.json import JSONSerializer

from edged.errors import HostingError
from edged.hosting.files import atomic_write, fsync_dir
from edged.hosting.layout import INDEX_PATH, Index

_ROOT_FILE = re.compile(r"^(\d+)\.root\.json$")
SERIALIZER = JSONSerializer(compact=False)

#: how long each role's signature lasts; `refresh` renews them (root's lifetime is init's --expires-days)
LIFETIME = {
    Timestamp.type: dt.timedelta(days=7),
    Snapshot.type: dt.timedelta(days=30),
    Targets.type: dt.timedelta(days=365),
}
#: `refresh` renews a role whose signature expires within this
RENEW_WITHIN = {
    Timestamp.type: dt.timedelta(days=7),  # always
    Snapshot.type: dt.timedelta(days=15),
    Targets.type: dt.timedelta(days=60),
    Root.type: dt.timedelta(days=60),
}


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def _read(path: Path, kind: type[Any]) -> Metadata[Any]:
    try:
        metadata: Metadata[Any] = Metadata.from_bytes(path.read_bytes())
    except FileNotFoundError as exc:
        raise HostingError(
            f"{path} is missing: {path.parent.parent} is not a complete edged repository (create one with "
            "`edged hosting init`)"
        ) from exc
    except OSError as exc:
        raise HostingError(f"{path} cannot be read: {exc.strerror or exc}") from exc
    except DeserializationError as exc:
        raise HostingError(f"{path} is not valid TUF metadata: {exc}") from exc
    if not isinstance(metadata.signed, kind):
        raise HostingError(f"{path} holds {metadata.signed.type} metadata, not {kind.type}")
    return metadata


def _meta_file(data: bytes, version: int) -> MetaFile:
    return MetaFile(version=version, length=len(data), hashes={"sha256": hashlib.sha256(data).hexdigest()})


@dataclass
class RepositoryFiles:
    """The current, verified metadata of a repository directory."""

    path: Path
    root: Metadata[Root]
    timestamp: Metadata[Timestamp]
    snapshot: Metadata[Snapshot]
    targets: Metadata[Targets]

    @property
    def metadata_dir(self) -> Path:
        return self.path / "metadata"

    @property
    def targets_dir(self) -> Path:
        return self.path / "targets"

    @staticmethod
    def load(path: Path, resigning: str | None = None) -> RepositoryFiles:
        """The repository's current metadata, each checked against root's keys; `resigning` names a role whose
        signature is about to be replaced (a key rotation that stopped half-way left it signed by the old key)."""
        metadata = path / "metadata"
        if not metadata.is_dir():
            raise HostingError(f"{path} is not an edged repository (no metadata/ folder); create one with init")
        versions = [int(m.group(1)) for p in metadata.iterdir() if (m := _ROOT_FILE.match(p.name))]
        if not versions:
            raise HostingError(f"{metadata} has no N.root.json; create the repository with `edged hosting init`")
        root = _read(metadata / f"{max(versions)}.root.json", Root)
        timestamp = _read(metadata / "timestamp.json", Timestamp)
        snapshot_version = timestamp.signed.snapshot_meta.version
        snapshot = _read(metadata / f"{snapshot_version}.snapshot.json", Snapshot)
        targets_meta = snapshot.signed.meta.get("targets.json")
        if targets_meta is None:
            raise HostingError(f"{metadata}/{snapshot_version}.snapshot.json lists no targets.json")
        targets = _read(metadata / f"{targets_meta.version}.targets.json", Targets)
        files = RepositoryFiles(path, root, timestamp, snapshot, targets)
        for role, md in ((Root.type, root), ("timestamp", timestamp), ("snapshot", snapshot), ("targets", targets)):
            if role == resigning:
                continue
            try:
                root.signed.verify_delegate(role, md.signed_bytes, md.signatures)
            except UnsignedMetadataError as exc:
                raise HostingError(f"{metadata}: {role} metadata is not signed by its key in root.json: {exc}") from exc
        return files

    def read_index(self) -> Index:
        info = self.targets.signed.targets.get(INDEX_PATH)
        if info is None:
            return Index()
        stored = self.target_file(info)
        try:
            data = stored.read_bytes()
        except OSError as exc:
            raise HostingError(f"{stored} cannot be read: {exc.strerror or exc}") from exc
        return Index.from_bytes(data)

    def target_file(self, info: TargetFile) -> Path:
        """Where a target's bytes are stored: `<dir>/<sha256>.<name>` (consistent snapshots)."""
        folder, _, name = info.path.rpartition("/")
        digest = info.hashes["sha256"]
        return self.targets_dir / folder / f"{digest}.{name}"

    def add_target(self, path: str, data_file: Path, custom: dict[str, object]) -> TargetFile:
        """Hash a local file and store it under its consistent-snapshot name (fsynced)."""
        info = TargetFile.from_file(path, str(data_file), ["sha256"])
        info.unrecognized_fields["custom"] = custom
        stored = self.target_file(info)
        stored.parent.mkdir(parents=True, exist_ok=True)
        if not stored.exists():
            atomic_write(stored, data_file.read_bytes())
        self.targets.signed.targets[path] = info
        return info

    def add_target_bytes(self, path: str, data: bytes) -> TargetFile:
        info = TargetFile.from_data(path, data, ["sha256"])
        stored = self.target_file(info)
        if not stored.exists():
            atomic_write(stored, data)
        self.targets.signed.targets[path] = info
        return info

    def _write(self, md: Metadata[Any], signer: Signer, now: dt.datetime, lifetime: dt.timedelta, bump: bool) -> bytes:
        """Sign `md` (a new version unless this is the repository's first) and store it; returns the bytes."""
        if bump:
            md.signed.version += 1
        md.signed.expires = now + lifetime
        md.signatures.clear()
        md.sign(signer)
        data = md.to_bytes(SERIALIZER)
        role = md.signed.type
        name = "timestamp.json" if role == Timestamp.type else f"{md.signed.version}.{role}.json"
        atomic_write(self.metadata_dir / name, data)
        return data

    def write_targets(self, signers: dict[str, Signer], now: dt.datetime, bump: bool = True) -> None:
        """A new targets version, then the snapshot and timestamp that name it."""
        targets = self.targets
        data = self._write(targets, signers[Targets.type], now, LIFETIME[Targets.type], bump)
        self.snapshot.signed.meta["targets.json"] = _meta_file(data, targets.signed.version)
        self.write_snapshot(signers, now, bump)

    def write_snapshot(self, signers: dict[str, Signer], now: dt.datetime, bump: bool = True) -> None:
        snapshot = self.snapshot
        data = self._write(snapshot, signers[Snapshot.type], now, LIFETIME[Snapshot.type], bump)
        self.timestamp.signed.snapshot_meta = _meta_file(data, snapshot.signed.version)
        self.write_timestamp(signers, now, bump)

    def write_timestamp(self, signers: dict[str, Signer], now: dt.datetime, bump: bool = True) -> None:
        path = self.metadata_dir / "timestamp.json"
        before = path.stat().st_mtime if path.exists() else 0.0
        self._write(self.timestamp, signers[Timestamp.type], now, LIFETIME[Timestamp.type], bump)
        # nginx and Apache make ETags from the whole-second mtime and the size, and a new timestamp.json usually
        # has the old one's size: give each one a later second, or a device polling with If-None-Match would be
        # told "304 Not Modified" about a change made within the same second
        stamp = max(float(int(time.time())), float(int(before)) + 1.0)
        os.utime(path, (stamp, stamp))
        fsync_dir(self.metadata_dir)

    def write_root(self, signer: Signer, now: dt.datetime, lifetime: dt.timedelta, bump: bool = True) -> Path:
        """A root version (same keys, new expiry), kept as N.root.json and as root.json for people."""
        data = self._write(self.root, signer, now, lifetime, bump)
        atomic_write(self.metadata_dir / "root.json", data)
        return self.metadata_dir / f"{self.root.signed.version}.root.json"
