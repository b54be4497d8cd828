"""When a device checks its repository next: the interval with ±jitter, and exponential backoff after failures.

Pure functions of the settings, the failure count and a random source, shared by the update thread and the fleet
simulation in tools/bench_fleet.py (so the simulation measures exactly what devices do).
"""

from __future__ import annotations

import random

#: The first retry after a failed check waits interval_s / RETRY_DIVISOR, doubling up to retry_max_s.
RETRY_DIVISOR = 10.0


def next_check_delay(interval_s: float, jitter: float, failures: int, retry_max_s: float, rng: random.Random) -> float:
    """Seconds until the next check: `interval_s` ± `jitter` after a success; after `failures` consecutive failed
    checks, interval_s / 10 doubling per failure, capped at retry_max_s (never above interval_s, so a failing
    host is retried at least as often as a healthy one is checked), with the same jitter."""
    if failures <= 0:
        base = interval_s
    else:
        base = min(retry_max_s, interval_s, interval_s / RETRY_DIVISOR * 2 ** (failures - 1))
    spread = base * jitter
    return max(0.0, base + rng.uniform(-spread, spread))


def first_check_delay(interval_s: float, jitter: float, rng: random.Random) -> float:
    """The first check after start: soon, but spread over up to a tenth of the interval, so a fleet that powers up
    together (after an outage) does not hit the host in one second."""
    return rng.uniform(0.0, min(interval_s / RETRY_DIVISOR, 60.0))
