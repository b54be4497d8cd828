"""The device side: python-tuf's ngclient Updater, configured with edged's limits, bootstrapped from trusted_root.

edged does not re-check what the Updater verifies (signatures, thresholds, expiry, versions, lengths, hashes); it
chooses what to ask for (selection.py), caps sizes, keeps downloads in state_dir, and translates every failure
into a HostingError naming the check and the fix (translate.py). No threads: edged/app calls this off the hot path.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import urllib3
from tuf.api.exceptions import DownloadError, RepositoryError
from tuf.api.metadata import TargetFile
from tuf.ngclient import Updater, UpdaterConfig

from edged import __version__
from edged.config.hosting import HostingConfig
from edged.errors import HostingError
from edged.hosting.fetcher import EdgedFetcher, FetchStats, Progress
from edged.hosting.files import free_bytes, fsync_dir, remove_tree
from edged.hosting.layout import INDEX_PATH, FileRole, Index, read_version_meta
from edged.hosting.paths import StatePaths
from edged.hosting.selection import DeviceFacts, LocalFacts, Offer, PublishedFile, PublishedVersion, Selection, select

_FOREIGN = (RepositoryError, DownloadError, urllib3.exceptions.HTTPError, OSError, ValueError)


@dataclass(frozen=True)
class Catalog:
    """Everything the repository publishes, as verified metadata describes it."""

    models: dict[str, dict[int, PublishedVersion]]
    broken: dict[str, str] = field(default_factory=dict)  # "name/version" → why it cannot be read

    def versions(self, name: str) -> dict[int, PublishedVersion]:
        return self.models.get(name, {})


@dataclass(frozen=True)
class StagedFile:
    role: FileRole
    path: str  # the target path in the repository
    local: Path
    sha256: str
    length: int


@dataclass(frozen=True)
class StagedVersion:
    """A verified download in state_dir, ready for store.install()."""

    directory: Path
    offer: Offer
    files: tuple[StagedFile, ...]


def local_name(target_path: str) -> str:
    """'NAME/7/golden/0-cat.jpg' → 'golden/0-cat.jpg': the file's place inside its version folder."""
    parts = target_path.split("/", 2)
    if len(parts) != 3 or not parts[2] or ".." in parts[2].split("/"):
        raise HostingError(f"target path {target_path!r} is not NAME/VERSION/FILE; the repository is not edged's")
    return parts[2]


class HostingClient:
    def __init__(
        self,
        config: HostingConfig,
        state_dir: Path,
        device_id: str,
        *,
        has_edgetpu: bool = False,
        edged_version: str = __version__,
    ) -> None:
        self.config = config
        self.paths = StatePaths(state_dir)
        self.device = DeviceFacts(device_id, config.channel, has_edgetpu, edged_version, config.pin_version)
        self.fetcher = EdgedFetcher(
            self.paths.downloads,
            connect_timeout_s=float(config.connect_timeout_s),
            metadata_deadline_s=float(config.metadata_deadline_s),
            download_deadline_s=float(config.download_deadline_s),
            user_agent=f"edged/{edged_version} python-tuf",
        )
        self.last_selection: Selection | None = None
        self._infos: dict[str, TargetFile] = {}
        self._updater: Updater | None = None

    @property
    def stats(self) -> FetchStats:
        return self.fetcher.stats

    def _trusted_root(self) -> bytes:
        path = self.config.trusted_root
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise HostingError(
                f"[hosting] trusted_root {path} does not exist: install the repository's root.json (printed by "
                "`edged hosting init`) on the device"
            ) from exc
        except OSError as exc:
            raise HostingError(f"[hosting] trusted_root {path} cannot be read: {exc.strerror or exc}") from exc

    def _new_updater(self) -> Updater:
        """A fresh Updater (one refresh each), trusting the newest root it verified before, from trusted_root on."""
        for folder in (self.paths.metadata, self.paths.cache, self.paths.downloads):
            folder.mkdir(parents=True, exist_ok=True)
        limits = UpdaterConfig(
            root_max_length=self.config.root_max_bytes,
            timestamp_max_length=self.config.timestamp_max_bytes,
            snapshot_max_length=self.config.snapshot_max_bytes,
            targets_max_length=self.config.targets_max_bytes,
            max_delegations=8,
        )
        try:
            return Updater(
                metadata_dir=str(self.paths.metadata),
                metadata_base_url=self.config.metadata_url,
                target_dir=str(self.paths.cache),
                target_base_url=self.config.targets_url,
                fetcher=self.fetcher,
                config=limits,
                bootstrap=self._trusted_root(),
            )
        except RepositoryError as exc:
            raise HostingError(
                f"[hosting] trusted_root {self.config.trusted_root} is not a valid TUF root.json ({exc}); install "
                "the root.json of the repository"
            ) from exc

    def _what(self, action: str) -> str:
        return f"{action} {self.config.url}"

    def catalog(self) -> Catalog:
        """Refresh the metadata (root → timestamp → snapshot → targets) and read every published version."""
        what = self._what("checking")
        try:
            updater = self._new_updater()
            updater.refresh()
            index_info = updater.get_targetinfo(INDEX_PATH)
            if index_info is None:
                self._updater, self._infos = updater, {}
                return Catalog({})
            index = self._index(updater, index_info)
            return self._read_catalog(updater, index)
        except HostingError:
            raise
        except _FOREIGN as exc:
            raise self._translated(exc, what) from exc

    def _translated(self, exc: BaseException, what: str) -> HostingError:
        from edged.hosting.translate import translate

        return translate(exc, what, self.config.url, self.paths.root)

    def _index(self, updater: Updater, info: TargetFile) -> Index:
        if info.length > self.config.index_max_bytes:
            raise HostingError(
                f"the repository's {INDEX_PATH} is {info.length} bytes, over index_max_bytes "
                f"({self.config.index_max_bytes}); raise the limit in [hosting] if that is right"
            )
        cached = updater.find_cached_target(info)
        path = cached or updater.download_target(info)
        return Index.from_bytes(Path(path).read_bytes())

    def _read_catalog(self, updater: Updater, index: Index) -> Catalog:
        models: dict[str, dict[int, PublishedVersion]] = {}
        broken: dict[str, str] = {}
        infos: dict[str, TargetFile] = {}
        for name in index.models:
            for number, primary in index.versions(name).items():
                key = f"{name}/{number}"
                try:
                    info = updater.get_targetinfo(primary)
                    if info is None:
                        raise HostingError(f"{INDEX_PATH} names {primary}, which the targets metadata does not list")
                    meta = read_version_meta(info.custom, primary)
                    files = []
                    for role, target in meta.target_paths():
                        found = info if target == primary else updater.get_targetinfo(target)
                        if found is None:
                            raise HostingError(f"{primary} lists {target}, which the targets metadata does not")
                        local_name(target)
                        files.append(PublishedFile(role, target, found.length, found.hashes.get("sha256", "")))
                        infos[target] = found
                    models.setdefault(name, {})[number] = PublishedVersion(meta, tuple(files))
                except HostingError as exc:
                    broken[key] = str(exc)
        self._updater, self._infos = updater, infos
        return Catalog(models, broken)

    def check(self, local: LocalFacts | None = None) -> Offer | None:
        """What this device should install now (None: nothing); the reasons are in `last_selection`."""
        catalog = self.catalog()
        selection = select(catalog.versions(self.config.name), self.device, local or LocalFacts())
        self.last_selection = selection
        return selection.offer

    def _check_space(self, offer: Offer) -> None:
        needed = 2 * offer.total_length + self.config.free_space_margin_bytes
        self.paths.staging.mkdir(parents=True, exist_ok=True)
        available = free_bytes(self.paths.staging)
        if available < needed:
            raise HostingError(
                f"not enough free space in {self.paths.root} for {offer.name} version {offer.version}: "
                f"{available} bytes free, {needed} needed (twice its {offer.total_length} bytes, as python-tuf "
                f"verifies a temporary copy, plus free_space_margin_bytes); free space there; nothing was downloaded"
            )

    def download(self, offer: Offer, progress: Progress | None = None) -> StagedVersion:
        """Download and verify every file of `offer` into state_dir/hosting/staging/; HostingError on any failure,
        with nothing left behind."""
        too_big = offer.total_length > self.config.max_model_bytes
        if too_big:
            raise HostingError(
                f"{offer.name} version {offer.version} is {offer.total_length} bytes, over max_model_bytes "
                f"({self.config.max_model_bytes}); raise the limit in [hosting] if that is right"
            )
        if self._updater is None or any(f.path not in self._infos for f in offer.files):
            self.catalog()
        updater = self._updater
        assert updater is not None
        self._check_space(offer)
        staging = self.paths.staging / f"{offer.version}.{secrets.token_hex(4)}"
        done = 0
        total = offer.total_length

        def overall(received: int, _: int) -> None:
            if progress is not None:
                progress(done + received, total)

        staged: list[StagedFile] = []
        what = self._what(f"downloading {offer.name} version {offer.version} from")
        try:
            staging.mkdir(parents=True)
            self.fetcher.progress = overall
            for item in offer.files:
                local = staging / local_name(item.path)
                local.parent.mkdir(parents=True, exist_ok=True)
                updater.download_target(self._infos[item.path], filepath=str(local))
                _fsync_file(local)
                staged.append(StagedFile(item.role, item.path, local, item.sha256, item.length))
                done += item.length
            fsync_dir(staging)
        except HostingError:
            remove_tree(staging)
            raise
        except _FOREIGN as exc:
            remove_tree(staging)
            raise self._translated(exc, what) from exc
        finally:
            self.fetcher.progress = None
        return StagedVersion(staging, offer, tuple(staged))


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
