"""Staged rollouts: a deterministic bucket per device, salted per model and version.

A device takes part in a version's rollout when its bucket is below the percentage. The bucket depends only on
(model name, version, device id), so raising 10 % to 50 % keeps the first 10 % (their buckets are still below),
and each version draws a fresh sample (the salt), so the same devices are not always the first to get a new model.
"""

from __future__ import annotations

import hashlib

BUCKETS = 10_000


def bucket(device_id: str, name: str, version: int) -> int:
    """0 … 9999, uniform over device ids; stable across restarts, machines and Python versions."""
    digest = hashlib.sha256(f"edged-rollout\0{name}\0{version}\0{device_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def takes_part(device_id: str, name: str, version: int, percent: int) -> bool:
    return bucket(device_id, name, version) < percent * (BUCKETS // 100)
