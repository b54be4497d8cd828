"""Which published version this device should run: a pure function of what is published and what the device is.

Order of the rules, for each version from the newest down: pin (or channel), withdrawn, min_edged_version, the
variant this device can run (Edge TPU variant when it has a TPU, else the CPU model), blocked hashes, a rollback
pin, the rollout bucket. The first version that passes is the target. A target older than the current version is
offered only when the current one may no longer run here (withdrawn, blocked, moved off the channel, unpinned);
a device already on a version whose rollout was lowered stays on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from edged.hosting.layout import FileRole, VersionMeta, parse_edged_version
from edged.hosting.rollout import takes_part

Variant = Literal["cpu", "edgetpu"]


@dataclass(frozen=True)
class PublishedFile:
    role: FileRole
    path: str
    length: int
    sha256: str


@dataclass(frozen=True)
class PublishedVersion:
    """A version as its signed targets metadata describes it."""

    meta: VersionMeta
    files: tuple[PublishedFile, ...]

    def file(self, path: str) -> PublishedFile | None:
        return next((f for f in self.files if f.path == path), None)


@dataclass(frozen=True)
class DeviceFacts:
    device_id: str
    channel: str
    has_edgetpu: bool
    edged_version: str
    pin_version: int | None = None


@dataclass(frozen=True)
class LocalFacts:
    """What the store knows: the version running now, hashes never to install again, a rollback pin."""

    current_version: int | None = None
    current_sha256: str | None = None
    blocked: frozenset[str] = frozenset()
    rollback_above: int | None = None  # after a rollback: only versions newer than this are offered


@dataclass(frozen=True)
class Offer:
    """What this device should install now, and why."""

    name: str
    version: int
    variant: Variant
    model: PublishedFile  # the file the device will load
    files: tuple[PublishedFile, ...]  # every file to download, the model first
    meta: VersionMeta
    reason: str

    @property
    def total_length(self) -> int:
        return sum(f.length for f in self.files)

    @property
    def sha256(self) -> str:
        return self.model.sha256


@dataclass(frozen=True)
class Selection:
    offer: Offer | None
    target_version: int | None
    skipped: Mapping[int, str] = field(default_factory=dict)  # version → why this device does not take it
    current_allowed: bool = True
    note: str = ""


def _variant(published: PublishedVersion, device: DeviceFacts) -> tuple[Variant, PublishedFile] | str:
    files = published.meta.files
    if device.has_edgetpu and files.edgetpu:
        chosen = published.file(files.edgetpu)
        if chosen is not None:
            return "edgetpu", chosen
    if files.cpu:
        chosen = published.file(files.cpu)
        if chosen is not None:
            return "cpu", chosen
    if files.edgetpu and not files.cpu:
        return "an Edge-TPU-only version, and this device has no Edge TPU (publish a CPU model with it)"
    return "its model file is missing from the targets metadata"


def _refusal(published: PublishedVersion, device: DeviceFacts, local: LocalFacts, rollout: bool) -> str | None:
    """Why this device must not run `published` (None: it may); `rollout=False` ignores the rollout bucket."""
    meta = published.meta
    if device.pin_version is not None:
        if meta.version != device.pin_version:
            return f"pinned to version {device.pin_version}"
    elif meta.channel != device.channel:
        return f"channel {meta.channel!r}, this device follows {device.channel!r}"
    if meta.withdrawn:
        return "withdrawn"
    try:
        if parse_edged_version(device.edged_version) < parse_edged_version(meta.min_edged_version):
            return f"needs edged {meta.min_edged_version} or newer (this is {device.edged_version})"
    except ValueError:
        return f"min_edged_version {meta.min_edged_version!r} is not a version"
    variant = _variant(published, device)
    if isinstance(variant, str):
        return variant
    if variant[1].sha256 in local.blocked:
        return "blocked on this device (it failed validation or was rolled back)"
    rolled_back = local.rollback_above is not None and meta.version <= local.rollback_above
    if rolled_back and meta.version != local.current_version:
        return f"rolled back here: waiting for a version newer than {local.rollback_above}"
    in_rollout = takes_part(device.device_id, meta.name, meta.version, meta.rollout_percent)
    if rollout and device.pin_version is None and not in_rollout:
        return f"not in the {meta.rollout_percent}% rollout"
    return None


def select(published: Mapping[int, PublishedVersion], device: DeviceFacts, local: LocalFacts) -> Selection:
    skipped: dict[int, str] = {}
    target: PublishedVersion | None = None
    for number in sorted(published, reverse=True):
        refusal = _refusal(published[number], device, local, rollout=True)
        if refusal is None:
            target = published[number]
            break
        skipped[number] = refusal
    current = local.current_version
    current_allowed = current is None or (
        current in published and _refusal(published[current], device, local, rollout=False) is None
    )
    if target is None:
        note = "no published version is for this device"
        if not current_allowed:
            note += "; the current version may no longer run here (fall back to the bundled model)"
        return Selection(None, None, skipped, current_allowed, note)
    chosen = _variant(target, device)
    assert not isinstance(chosen, str)  # _refusal accepted this version, so it has a variant for this device
    variant, model = chosen
    twin = [f for f in target.files if f.role == "model" and f is not model]  # the CPU fallback of a TPU variant
    files = [model, *twin] + [f for f in target.files if f.role in ("labels", "golden")]
    number = target.meta.version
    if current is not None and number == current and model.sha256 == local.current_sha256:
        return Selection(None, number, skipped, current_allowed, "up to date")
    if current is not None and number < current and current_allowed:
        return Selection(None, number, skipped, current_allowed, f"keeping version {current}, newer than {number}")
    if current is None:
        reason = "first hosted version (replacing the bundled model)"
    elif number > current:
        reason = f"newer than version {current}"
    elif number == current:
        reason = f"version {current} is installed with other bytes"
    else:
        reason = f"version {current} may no longer run here ({skipped.get(current, 'not published')}): going back"
    offer = Offer(target.meta.name, number, variant, model, tuple(files), target.meta, reason)
    return Selection(offer, number, skipped, current_allowed, reason)
