"""The signing keys of a repository: ed25519 through securesystemslib's CryptoSigner, PEM files readable by the
owner only.

    KEY_DIR/root/root.pem           the root key: meant to stay offline (move the folder to offline media)
    KEY_DIR/online/targets.pem      the keys publish, rollout, withdraw and refresh use
    KEY_DIR/online/snapshot.pem
    KEY_DIR/online/timestamp.pem
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner, SSlibKey
from tuf.api.metadata import Root

from edged.errors import HostingError
from edged.hosting.files import atomic_write

ONLINE_ROLES = ("targets", "snapshot", "timestamp")
ROOT_DIR = "root"
ONLINE_DIR = "online"


def default_key_dir(repo_dir: Path) -> Path:
    """Beside the repository, never inside it (everything in the repository is served to the world)."""
    resolved = repo_dir.resolve()
    return resolved.with_name(resolved.name + "-keys")


def check_outside(key_dir: Path, repo_dir: Path) -> None:
    key, repo = key_dir.resolve(), repo_dir.resolve()
    if key == repo or repo in key.parents:
        raise HostingError(
            f"the key directory {key_dir} is inside the repository {repo_dir}, which is served to everyone; "
            "choose --keys outside it"
        )


def key_path(key_dir: Path, role: str) -> Path:
    return key_dir / (ROOT_DIR if role == Root.type else ONLINE_DIR) / f"{role}.pem"


def generate(key_dir: Path) -> dict[str, CryptoSigner]:
    """New ed25519 keys for the four top-level roles, written 0600 in 0700 folders; refuses to overwrite."""
    signers: dict[str, CryptoSigner] = {}
    for role in (Root.type, *ONLINE_ROLES):
        path = key_path(key_dir, role)
        if path.exists():
            raise HostingError(f"{path} already exists: give init a new --keys directory (keys are never overwritten)")
    for role in (Root.type, *ONLINE_ROLES):
        path = key_path(key_dir, role)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path.parent, 0o700)
        signer = CryptoSigner.generate_ed25519()
        atomic_write(path, signer.private_bytes, mode=0o600)
        signers[role] = signer
    return signers


def load_signer(key_dir: Path, role: str, root: Root) -> CryptoSigner:
    """The signer of `role` from KEY_DIR, checked against the key root.json names for that role."""
    path = key_path(key_dir, role)
    folder = path.parent
    if not key_dir.is_dir():
        raise HostingError(
            f"key directory {key_dir} does not exist; give --keys the directory `edged hosting init` created"
        )
    if not folder.is_dir():
        where = "the offline root key (plug in the media that holds it)" if role == Root.type else "the online keys"
        raise HostingError(f"{folder} does not exist: {key_dir} does not hold {where}; check --keys")
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise HostingError(f"{path} is readable by others (mode {stat.filemode(mode)}); run: chmod 600 {path}")
        private = load_pem_private_key(path.read_bytes(), None)
    except FileNotFoundError as exc:
        raise HostingError(f"{path} is missing: the {role} key is not in {key_dir}; check --keys") from exc
    except PermissionError as exc:
        raise HostingError(f"{path} cannot be read: permission denied (run as the key owner)") from exc
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise HostingError(f"{path} is not an unencrypted PEM private key: {exc}") from exc
    role_keys = root.roles[role].keyids
    for keyid in role_keys:
        public = root.keys[keyid]
        if isinstance(public, SSlibKey):
            try:
                return CryptoSigner(private, public)
            except ValueError as exc:  # securesystemslib's KeyMismatchError, or another key type
                if keyid == role_keys[-1]:
                    raise HostingError(
                        f"{path} is not the {role} key of this repository (root.json names another key); "
                        "check --keys: it must be the directory created with this repository"
                    ) from exc
    raise HostingError(f"root.json names no usable {role} key; the repository was not made by edged hosting init")
