"""Installed versions on the device: immutable folders, one crash-safe record of which one runs, and recovery.

    versions/<version>/        the version's files and version.json (the manifest, written last), made as
                               versions/.installing-<version>-<random>/ and renamed into place: a folder named
                               like a version is always complete
    current -> versions/<v>    a symlink that mirrors state.json (state.json decides; recover() repairs it)
    state.json                 see store_state.py

Install → (validate) → probation → commit, or rollback and block the hash: Mender's state machine, with a crash
marker so that a model that kills the process is given up after two starts (startup()).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edged.errors import HostingError
from edged.hosting.client import StagedVersion, local_name
from edged.hosting.faults import test_only_crash_point
from edged.hosting.files import atomic_write, fsync_dir, remove_tree
from edged.hosting.layout import VersionMeta
from edged.hosting.paths import StatePaths
from edged.hosting.selection import LocalFacts
from edged.hosting.store_state import (
    Blocked,
    RollbackPin,
    StoreState,
    Trial,
    UnreadableState,
    VersionRef,
    read_state,
    write_state,
)
from edged.hosting.translate import os_errors_as_hosting

MANIFEST = "version.json"
GIVE_UP_AFTER_STARTS = 2


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class InstalledVersion:
    """An installed version: immutable files the daemon loads by these paths (never through `current`)."""

    directory: Path
    meta: VersionMeta
    variant: str
    model: Path
    sha256: str
    cpu_model: Path | None
    labels: Path | None
    golden: tuple[tuple[Path, str], ...]
    files: dict[str, str]  # local name → sha256

    @property
    def version(self) -> int:
        return self.meta.version

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def notes(self) -> str:
        return self.meta.notes

    def model_settings(self) -> dict[str, Any]:
        """The version's [model] settings with its own files: merge into the device's [model] table."""
        settings = {**self.meta.settings(), "path": self.model, "version": str(self.version), "name": self.name}
        if self.labels is not None:
            settings["labels"] = self.labels
        if self.cpu_model is not None:
            settings["cpu_model"] = self.cpu_model
        return settings


@dataclass(frozen=True)
class StartupDecision:
    """Which model to load at start: `load` None means the bundled [model] path."""

    load: InstalledVersion | None
    in_probation: bool
    rolled_back: str | None = None
    notes: tuple[str, ...] = ()
    left_version: int | None = None  # the version rolled back from, when rolled_back


@dataclass
class RecoveryReport:
    notes: list[str] = field(default_factory=list)


def _read_manifest(directory: Path) -> dict[str, Any]:
    data = json.loads((directory / MANIFEST).read_bytes())
    if not isinstance(data, dict):
        raise ValueError("not an object")
    return data


class Store:
    def __init__(self, state_dir: Path, keep_versions: int = 3) -> None:
        self.paths = StatePaths(state_dir)
        self.keep_versions = keep_versions
        self.state = StoreState()

    # -- reading ------------------------------------------------------------------------------------------------

    def load_installed(self, version: int, verify: bool = True) -> InstalledVersion:
        """The installed version, its manifest read and (with verify) every file hash-checked."""
        directory = self.paths.version_dir(version)
        try:
            manifest = _read_manifest(directory)
            meta = VersionMeta.model_validate(manifest["meta"])
            files: dict[str, str] = dict(manifest["files"])
            roles: dict[str, str] = dict(manifest["roles"])
        except (OSError, ValueError, KeyError, TypeError, ValidationError) as exc:
            raise HostingError(f"{directory} is not a complete installed version ({exc})") from exc
        if verify:
            for name, digest in files.items():
                try:
                    actual = sha256_of(directory / name)
                except OSError as exc:
                    raise HostingError(f"{directory / name} cannot be read: {exc.strerror or exc}") from exc
                if actual != digest:
                    raise HostingError(f"{directory / name} does not match its sha256 (the disk changed it)")
        by_role = {role: directory / name for name, role in roles.items() if role != "golden"}
        model_role = "edgetpu_model" if manifest.get("variant") == "edgetpu" else "model"
        model = by_role[model_role]
        golden = tuple((directory / local_name(g.image), g.expected) for g in meta.golden)
        return InstalledVersion(
            directory=directory,
            meta=meta,
            variant=str(manifest.get("variant", "cpu")),
            model=model,
            sha256=files[model.name],
            cpu_model=by_role.get("model") if model_role == "edgetpu_model" else None,
            labels=by_role.get("labels"),
            golden=golden,
            files=files,
        )

    def current(self) -> InstalledVersion | None:
        ref = self.state.current
        return self.load_installed(ref.version, verify=False) if ref else None

    def local_facts(self) -> LocalFacts:
        """What selection needs from the store."""
        current = self.state.current
        return LocalFacts(
            current_version=current.version if current else None,
            current_sha256=current.sha256 if current else None,
            blocked=frozenset(self.state.blocked),
            rollback_above=self.state.rollback_pin.above if self.state.rollback_pin else None,
        )

    def installed_versions(self) -> list[int]:
        if not self.paths.versions.is_dir():
            return []
        return sorted(int(p.name) for p in self.paths.versions.iterdir() if p.name.isdigit() and p.is_dir())

    # -- writing ------------------------------------------------------------------------------------------------

    def _save(self) -> None:
        self.paths.root.mkdir(parents=True, exist_ok=True)
        write_state(self.paths.state_file, self.state)
        self._mirror_current()

    def _mirror_current(self) -> None:
        link = self.paths.current
        ref = self.state.current
        if ref is None:
            with contextlib.suppress(FileNotFoundError):
                link.unlink()
            return
        target = f"versions/{ref.version}"
        if link.is_symlink() and os.readlink(link) == target:
            return
        temp = link.with_name(f".current.{secrets.token_hex(4)}")
        os.symlink(target, temp)
        os.replace(temp, link)
        fsync_dir(self.paths.root)

    def install(self, staged: StagedVersion) -> InstalledVersion:
        """Move a verified download into versions/<version>/ (files re-hashed and fsynced, folder renamed into
        place and its parent fsynced). Not current yet: begin_probation() switches."""
        offer = staged.offer
        final = self.paths.version_dir(offer.version)
        if final.is_dir():
            with contextlib.suppress(HostingError):
                existing = self.load_installed(offer.version)
                if existing.sha256 == offer.sha256:
                    remove_tree(staged.directory)
                    return existing
            self._discard(final)
        self.paths.versions.mkdir(parents=True, exist_ok=True)
        temp = self.paths.versions / f".installing-{offer.version}-{secrets.token_hex(4)}"
        files: dict[str, str] = {}
        roles: dict[str, str] = {}
        try:
            temp.mkdir()
            for item in staged.files:
                name = local_name(item.path)
                target = temp / name
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(item.local, target)
                digest = sha256_of(target)
                if digest != item.sha256:
                    raise HostingError(f"{name} changed on disk after it was verified (sha256 {digest[:12]}…)")
                files[name], roles[name] = digest, item.role
                test_only_crash_point("install")
            for folder in {temp / n for n in files if "/" in n}:
                fsync_dir(folder.parent)
            manifest = {"meta": offer.meta.model_dump(mode="json", by_alias=True), "variant": offer.variant}
            atomic_write(temp / MANIFEST, json.dumps({**manifest, "files": files, "roles": roles}, indent=1).encode())
            os.replace(temp, final)
            fsync_dir(self.paths.versions)
        except OSError as exc:
            remove_tree(temp)
            remove_tree(staged.directory)
            from edged.hosting.translate import translate

            raise translate(exc, f"installing {offer.name} version {offer.version}", "", self.paths.root) from exc
        except HostingError:
            remove_tree(temp)
            remove_tree(staged.directory)
            raise
        remove_tree(staged.directory)
        installed = self.load_installed(offer.version, verify=False)
        self.prune(keep_also=(offer.version,))
        return installed

    def _discard(self, directory: Path) -> None:
        """Rename out of the way first, so a crash mid-delete never leaves a half folder named like a version."""
        trash = directory.with_name(f".trash-{directory.name}-{secrets.token_hex(4)}")
        with contextlib.suppress(FileNotFoundError):
            os.replace(directory, trash)
            fsync_dir(directory.parent)
        remove_tree(trash)

    @os_errors_as_hosting("updating the installed model versions")
    def prune(self, keep_also: tuple[int, ...] = ()) -> list[int]:
        """Remove the oldest versions past keep_versions; never current, previous or the version on trial."""
        protected = set(keep_also)
        for ref in (self.state.current, self.state.previous, self.state.trial):
            if ref is not None:
                protected.add(ref.version)
        installed = self.installed_versions()
        keep = set(installed[-self.keep_versions :]) | protected
        removed = [v for v in installed if v not in keep]
        for version in removed:
            self._discard(self.paths.version_dir(version))
        return removed

    @os_errors_as_hosting("updating the installed model versions")
    def begin_validation(self, version: InstalledVersion) -> None:
        """Mark a version as being validated: a crash while loading it counts against it at the next starts."""
        self.state.trial = Trial(version=version.version, sha256=version.sha256, phase="validating")
        self._save()

    @os_errors_as_hosting("updating the installed model versions")
    def begin_probation(self, version: InstalledVersion) -> None:
        """Make `version` current with a probation marker; the daemon swaps it in after this returns."""
        test_only_crash_point("before-switch")
        current = self.state.current
        if current is None or current.version != version.version:
            self.state.previous = current
        self.state.current = VersionRef(version=version.version, sha256=version.sha256)
        self.state.trial = Trial(version=version.version, sha256=version.sha256, phase="probation")
        self._save()
        test_only_crash_point("probation")

    @os_errors_as_hosting("updating the installed model versions")
    def commit(self, version: InstalledVersion) -> None:
        """A clean health window: the version stays, the marker goes, a rollback pin below it is lifted."""
        trial = self.state.trial
        if trial is None or trial.version != version.version or trial.phase != "probation":
            raise HostingError(f"version {version.version} is not on probation; nothing to commit")
        self.state.trial = None
        pin = self.state.rollback_pin
        if pin is not None and version.version > pin.above:
            self.state.rollback_pin = None
        self._save()
        self.prune()

    @os_errors_as_hosting("updating the installed model versions")
    def stopped_cleanly(self) -> None:
        """The daemon stops on purpose: a trial in progress is not a crash, so the next start does not count it."""
        if self.state.trial is not None and not self.state.trial.stopped_cleanly:
            self.state.trial.stopped_cleanly = True
            self._save()

    @os_errors_as_hosting("updating the installed model versions")
    def block(self, sha256: str, version: int, reason: str) -> None:
        self.state.blocked[sha256] = Blocked(version=version, reason=reason)
        self._save()

    @os_errors_as_hosting("updating the installed model versions")
    def reject(self, version: InstalledVersion, reason: str) -> None:
        """Validation failed: block the hash, end the trial; current never changed."""
        if self.state.trial is not None and self.state.trial.version == version.version:
            self.state.trial = None
        self.state.blocked[version.sha256] = Blocked(version=version.version, reason=reason)
        self._save()

    @os_errors_as_hosting("updating the installed model versions")
    def rollback(self, reason: str, block: bool = True) -> InstalledVersion | None:
        """Back to the previous version (None: the bundled model), pinned until a newer one than the one left is
        published; with block, the left version's hash is never installed again."""
        left = self.state.current
        if left is None:
            raise HostingError("the bundled model is running; there is no hosted version to roll back from")
        if block:
            self.state.blocked[left.sha256] = Blocked(version=left.version, reason=reason)
        self.state.current, self.state.previous = self.state.previous, None
        self.state.trial = None
        self.state.rollback_pin = RollbackPin(above=left.version, reason=reason)
        self._save()
        return self.current()

    # -- start-up -----------------------------------------------------------------------------------------------

    @os_errors_as_hosting("updating the installed model versions")
    def recover(self) -> RecoveryReport:
        """Clean what a crash left (partial downloads and installs) and make current name a complete,
        hash-checked version: else the previous one, else the bundled model."""
        report = RecoveryReport()
        for leftover in (self.paths.downloads, self.paths.staging):
            if leftover.exists():
                for item in leftover.iterdir():
                    remove_tree(item)
                    report.notes.append(f"removed an unfinished download {item.name}")
        if self.paths.versions.is_dir():
            for item in self.paths.versions.iterdir():
                if item.name.startswith((".installing-", ".trash-")):
                    remove_tree(item)
                    report.notes.append(f"removed an unfinished install {item.name}")
        try:
            self.state = read_state(self.paths.state_file)
        except UnreadableState as exc:
            aside = self.paths.state_file.with_name(f"state.json.unreadable-{secrets.token_hex(4)}")
            os.replace(self.paths.state_file, aside)
            self.state = StoreState()
            report.notes.append(f"state.json was unreadable ({exc}); set aside as {aside.name}, starting fresh")
        for _ in range(2):  # current, then previous in its place
            ref = self.state.current
            if ref is None:
                break
            try:
                installed = self.load_installed(ref.version)
                if installed.sha256 != ref.sha256:
                    raise HostingError(f"version {ref.version} on disk is not the one state.json names")
                break
            except HostingError as exc:
                report.notes.append(f"current version {ref.version} is unusable ({exc}); going back")
                self.state.current, self.state.previous = self.state.previous, None
        self._save()
        return report

    @os_errors_as_hosting("updating the installed model versions")
    def startup(self) -> StartupDecision:
        """recover(), then count an unfinished trial; after GIVE_UP_AFTER_STARTS such starts, give up on it:
        a version on probation is rolled back to the previous one and its hash is blocked."""
        notes = self.recover().notes
        trial = self.state.trial
        rolled_back: str | None = None
        left: int | None = None
        if trial is not None and trial.stopped_cleanly:
            trial.stopped_cleanly = False  # a stop on purpose: the trial goes on, and this start does not count
            self._save()
        elif trial is not None:
            trial.unfinished_starts += 1
            if trial.unfinished_starts >= GIVE_UP_AFTER_STARTS:
                reason = (
                    f"version {trial.version} did not finish its {trial.phase} in {trial.unfinished_starts} starts "
                    "(the process crashed or hung with it)"
                )
                if trial.phase == "probation" and self.state.current and self.state.current.version == trial.version:
                    self.rollback(reason)
                    rolled_back, left = reason, trial.version
                else:
                    self.state.blocked[trial.sha256] = Blocked(version=trial.version, reason=reason)
                    self.state.trial = None
                notes.append(reason)
            self._save()
        trial = self.state.trial
        in_probation = trial is not None and trial.phase == "probation"
        return StartupDecision(self.current(), in_probation, rolled_back, tuple(notes), left)
