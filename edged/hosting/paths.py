"""Where hosting keeps its state under state_dir (one filesystem, so every install step is a rename)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StatePaths:
    root: Path

    @property
    def metadata(self) -> Path:
        """python-tuf's trusted metadata cache."""
        return self.root / "hosting" / "metadata"

    @property
    def cache(self) -> Path:
        """Verified small targets (the repository index)."""
        return self.root / "hosting" / "cache"

    @property
    def downloads(self) -> Path:
        """Temporary files of downloads in progress (unnamed: nothing survives a crash)."""
        return self.root / "hosting" / "downloads"

    @property
    def staging(self) -> Path:
        """Verified downloads waiting to be installed: staging/<version>.<random>/."""
        return self.root / "hosting" / "staging"

    @property
    def versions(self) -> Path:
        """Installed versions: versions/<version>/, written as versions/.installing-* and renamed into place."""
        return self.root / "versions"

    @property
    def current(self) -> Path:
        """A symlink to versions/<version> mirroring state.json's current, for people and scripts."""
        return self.root / "current"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    def version_dir(self, version: int) -> Path:
        return self.versions / str(version)
