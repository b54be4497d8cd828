"""`edged hosting rotate-key`: replace one role's signing key (a lost laptop, a departing maintainer, a routine
change) through a new root version, which devices fetch and verify by themselves at their next check.

TUF's rule for root version N+1: it must be signed by a threshold of root N's root keys *and* of its own. For an
online role (targets, snapshot, timestamp) the root key does not change and signs alone; rotating the root key
itself needs the old and the new root key to sign (cross-signing), which is why the old root key must be at hand.

Order, so that a crash at any step leaves a repository its key directory can still sign for:
1. the new private key is written beside the old one as `<role>.pem.new` (0600);
2. root N+1, naming the new key instead of the old, is written (`N+1.root.json`, then `root.json`);
3. the role's own metadata is re-signed with the new key (targets → snapshot → timestamp as needed);
4. the old key file is kept as `<role>.<keyid>.retired.pem` and the new one takes its name.
Run again after a crash, the command finds `<role>.pem.new` and finishes from the step it reached.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner, Signer, SSlibKey
from tuf.api.metadata import Root, Snapshot, Targets, Timestamp

from edged.errors import HostingError
from edged.hosting import keys
from edged.hosting.files import atomic_write, fsync_dir
from edged.hosting.repo_files import SERIALIZER, RepositoryFiles, utc_now

ROLES = (Root.type, *keys.ONLINE_ROLES)
#: A rotated root never expires sooner than this from now.
MIN_ROOT_LIFETIME = dt.timedelta(days=30)


@dataclass
class RotationResult:
    role: str
    root_version: int
    new_keyid: str
    key_file: Path
    old_keyids: list[str]
    resigned: list[str] = field(default_factory=list)
    retired: list[Path] = field(default_factory=list)
    resumed: bool = False


def _pending_path(key_dir: Path, role: str) -> Path:
    path = keys.key_path(key_dir, role)
    return path.with_name(path.name + ".new")


def _signer_from_file(path: Path) -> CryptoSigner:
    private = load_pem_private_key(path.read_bytes(), None)
    if not isinstance(private, Ed25519PrivateKey):
        raise HostingError(f"{path} is not an ed25519 key; delete it and run rotate-key again")
    return CryptoSigner(private, SSlibKey.from_crypto(private.public_key()))


def _new_or_pending(key_dir: Path, role: str) -> tuple[CryptoSigner, bool]:
    """The new key: the one a run interrupted before left behind, or a fresh one written 0600 first."""
    pending = _pending_path(key_dir, role)
    if pending.exists():
        return _signer_from_file(pending), True
    pending.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    signer = CryptoSigner.generate_ed25519()
    atomic_write(pending, signer.private_bytes, mode=0o600)
    return signer, False


def _need_root_key(key_dir: Path, role: str) -> None:
    if not keys.key_path(key_dir, Root.type).exists():
        raise HostingError(
            f"rotating the {role} key needs the offline root key, {keys.key_path(key_dir, Root.type)}: plug in "
            "the media that holds it (or give --keys the directory that has root/), then run this again"
        )


def _write_root(files: RepositoryFiles, signers: list[Signer], now: dt.datetime) -> None:
    """Root N+1 signed by every signer given (the old root key; for a root rotation the new one too)."""
    md = files.root
    md.signed.version += 1
    md.signed.expires = max(md.signed.expires, now + MIN_ROOT_LIFETIME)
    md.signatures.clear()
    for signer in signers:
        md.sign(signer, append=True)
    data = md.to_bytes(SERIALIZER)
    atomic_write(files.metadata_dir / f"{md.signed.version}.root.json", data)
    atomic_write(files.metadata_dir / "root.json", data)
    fsync_dir(files.metadata_dir)


def _resign(files: RepositoryFiles, role: str, key_dir: Path, new: CryptoSigner, now: dt.datetime) -> list[str]:
    """The role's metadata signed by its new key (and what names it, so devices see it at once)."""
    if role == Root.type:
        return []
    root = files.root.signed
    signers: dict[str, Signer] = {r: keys.load_signer(key_dir, r, root) for r in keys.ONLINE_ROLES if r != role}
    signers[role] = new
    if role == Targets.type:
        files.write_targets(signers, now)
        return [Targets.type, Snapshot.type, Timestamp.type]
    if role == Snapshot.type:
        files.write_snapshot(signers, now)
        return [Snapshot.type, Timestamp.type]
    files.write_timestamp(signers, now)
    return [Timestamp.type]


def _switch_files(key_dir: Path, role: str, old_keyids: list[str]) -> list[Path]:
    path, pending = keys.key_path(key_dir, role), _pending_path(key_dir, role)
    retired: list[Path] = []
    if path.exists():
        tag = old_keyids[0][:12] if old_keyids else "old"
        target = path.with_name(f"{role}.{tag}.retired.pem")
        os.replace(path, target)
        retired.append(target)
    os.replace(pending, path)
    fsync_dir(path.parent)
    return retired


def rotate(repo_dir: Path, role: str, key_dir: Path | None = None, now: dt.datetime | None = None) -> RotationResult:
    """Replace `role`'s key: a new root version names the new key instead of the old; see the module docstring."""
    if role not in ROLES:
        raise HostingError(f"--role {role!r}: give one of {', '.join(ROLES)}")
    now = now or utc_now()
    key_dir = key_dir or keys.default_key_dir(repo_dir)
    keys.check_outside(key_dir, repo_dir)
    if not _pending_path(key_dir, role).exists():
        _need_root_key(key_dir, role)  # before anything is written
    new, resumed = _new_or_pending(key_dir, role)
    # after an interrupted run, root may already name the new key while the role is still signed by the old one
    files = RepositoryFiles.load(repo_dir, resigning=role if resumed and role != Root.type else None)
    root = files.root.signed
    old_keyids = [k for k in root.roles[role].keyids if k != new.public_key.keyid]
    if new.public_key.keyid not in root.roles[role].keyids:  # root N+1 not written yet
        _need_root_key(key_dir, role)
        old_root = keys.load_signer(key_dir, Root.type, root)
        for keyid in list(root.roles[role].keyids):
            root.revoke_key(keyid, role)
        root.add_key(new.public_key, role)
        _write_root(files, [old_root, new] if role == Root.type else [old_root], now)
    else:
        old_keyids = []  # the previous run already replaced them in root
    result = RotationResult(
        role, files.root.signed.version, new.public_key.keyid, keys.key_path(key_dir, role), old_keyids, resumed=resumed
    )
    result.resigned = _resign(files, role, key_dir, new, now)
    result.retired = _switch_files(key_dir, role, old_keyids)
    return result
