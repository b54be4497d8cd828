"""`edged hosting rotate-key`: a device given the first root.json once follows key rotations by itself, through
a real nginx, and trusts only the new key afterwards; a rotation without the offline root key is refused, and one
interrupted half-way is finished by running it again."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hosting_support import CLASSIFIER, NAME, TEACHABLE, TEACHABLE_LABELS, Repo, edged
from support.nginx import Nginx
from tuf.api.metadata import Metadata, Root, Targets

from edged.config.hosting import HostingConfig
from edged.errors import HostingError
from edged.hosting import rotation
from edged.hosting.client import HostingClient
from edged.hosting.keys import key_path, load_signer
from edged.hosting.store import Store


def _device(url: str, trusted_root: Path, state: Path, device_id: str) -> tuple[HostingClient, Store]:
    """A device given `trusted_root` once, at install time."""
    config = HostingConfig(url=url, name=NAME, trusted_root=trusted_root, free_space_margin_bytes=0)
    store = Store(state)
    store.startup()
    return HostingClient(config, state, device_id, has_edgetpu=False), store


def _root(repo: Repo) -> Root:
    return Metadata[Root].from_file(str(repo.path / "metadata" / "root.json")).signed


def test_a_device_follows_an_online_key_rotation_and_refuses_the_old_key(
    tmp_path: Path, repo: Repo, nginx: Nginx, capsys: pytest.CaptureFixture[str]
) -> None:
    first_root = tmp_path / "first-root.json"  # what the device was given once, before any rotation
    shutil.copyfile(repo.root_json, first_root)
    repo.publish(CLASSIFIER)
    device, store = _device(nginx.url, first_root, tmp_path / "state", "device-1")
    offer = device.check(store.local_facts())
    assert offer is not None and offer.version == 1
    old_targets_key = _root(repo).roles[Targets.type].keyids[0]
    old_key_file = key_path(repo.keys, Targets.type).read_bytes()

    capsys.readouterr()
    assert edged("hosting", "rotate-key", repo.path, "--role", "targets", "--keys", repo.keys) == 0
    out = capsys.readouterr().out
    assert f"instead of {old_targets_key[:12]}" in out and "root version 2" in out
    root = _root(repo)
    assert root.version == 2 and old_targets_key not in root.roles[Targets.type].keyids
    assert old_targets_key not in root.keys  # revoked, not only unlisted
    retired = list((repo.keys / "online").glob("targets.*.retired.pem"))
    assert [p.read_bytes() for p in retired] == [old_key_file]
    assert (retired[0].stat().st_mode & 0o777) == 0o600 and (
        key_path(repo.keys, "targets").stat().st_mode & 0o777
    ) == 0o600

    repo.publish(TEACHABLE, "--labels", TEACHABLE_LABELS)  # signed with the new key, read from the key directory
    offer = device.check(store.local_facts())
    assert offer is not None and offer.version == 2  # the device walked root 1 → 2 by itself

    # the retired key can no longer sign for the repository
    stale = tmp_path / "stale-keys"
    shutil.copytree(repo.keys, stale)
    shutil.copyfile(retired[0], key_path(stale, Targets.type))
    with pytest.raises(HostingError, match="is not the targets key of this repository"):
        load_signer(stale, Targets.type, _root(repo))

    # a fresh device given only the first root.json also gets there
    fresh, fresh_store = _device(nginx.url, first_root, tmp_path / "fresh", "device-2")
    offer = fresh.check(fresh_store.local_facts())
    assert offer is not None and offer.version == 2


def test_rotating_the_root_key_is_cross_signed_and_devices_follow(
    tmp_path: Path, repo: Repo, nginx: Nginx, capsys: pytest.CaptureFixture[str]
) -> None:
    first_root = tmp_path / "first-root.json"
    shutil.copyfile(repo.root_json, first_root)
    old_root_key = _root(repo).roles[Root.type].keyids[0]
    assert edged("hosting", "rotate-key", repo.path, "--role", "root", "--keys", repo.keys) == 0
    assert "move it to offline media" in capsys.readouterr().out
    signed = Metadata[Root].from_file(str(repo.path / "metadata" / "2.root.json"))
    new_root_key = signed.signed.roles[Root.type].keyids[0]
    assert new_root_key != old_root_key and set(signed.signatures) == {old_root_key, new_root_key}  # cross-signed
    assert edged("hosting", "rotate-key", repo.path, "--role", "timestamp", "--keys", repo.keys) == 0  # new root key
    assert _root(repo).version == 3
    repo.publish(CLASSIFIER)
    assert edged("hosting", "verify", nginx.url, "--root", first_root, "--name", "shapes") == 0
    assert "would install version 1" in capsys.readouterr().out


def test_rotation_needs_the_offline_root_key_and_changes_nothing_without_it(
    tmp_path: Path, repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    offline = tmp_path / "offline-media"
    shutil.move(str(repo.keys / "root"), offline)
    before = sorted(p.name for p in (repo.path / "metadata").iterdir())
    assert edged("hosting", "rotate-key", repo.path, "--role", "snapshot", "--keys", repo.keys) == 1
    err = capsys.readouterr().err
    assert "needs the offline root key" in err and "plug in the media" in err and "Traceback" not in err
    assert sorted(p.name for p in (repo.path / "metadata").iterdir()) == before
    old_key = key_path(repo.keys, "snapshot").read_bytes()
    assert sorted(p.name for p in (repo.keys / "online").iterdir()) == ["snapshot.pem", "targets.pem", "timestamp.pem"]
    shutil.move(str(offline), repo.keys / "root")  # plugged in: the same command now works
    assert edged("hosting", "rotate-key", repo.path, "--role", "snapshot", "--keys", repo.keys) == 0
    assert key_path(repo.keys, "snapshot").read_bytes() != old_key and _root(repo).version == 2


def test_an_interrupted_rotation_is_finished_by_running_it_again(
    tmp_path: Path, repo: Repo, nginx: Nginx, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.publish(CLASSIFIER)

    def crash(*_: object) -> list[str]:
        raise KeyboardInterrupt  # as if the machine stopped right after root version 2 was written

    monkeypatch.setattr(rotation, "_resign", crash)
    with pytest.raises(KeyboardInterrupt):
        rotation.rotate(repo.path, Targets.type, repo.keys)
    monkeypatch.undo()
    assert _root(repo).version == 2 and (repo.keys / "online" / "targets.pem.new").exists()
    capsys.readouterr()
    assert edged("hosting", "rotate-key", repo.path, "--role", "targets", "--keys", repo.keys) == 0
    assert "finishing a rotation" in capsys.readouterr().err
    assert _root(repo).version == 2  # not rotated twice
    assert not (repo.keys / "online" / "targets.pem.new").exists()
    repo.publish(TEACHABLE, "--labels", TEACHABLE_LABELS)
    assert edged("hosting", "verify", nginx.url, "--root", repo.root_json, "--name", "shapes") == 0
    assert "would install version 2" in capsys.readouterr().out
