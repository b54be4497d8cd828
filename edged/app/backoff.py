"""Exponential backoff with jitter and a cap: how a failed source waits before the next attempt."""

from __future__ import annotations

import random

from edged.config.camera import ReconnectConfig


class Backoff:
    """Delays initial, initial×m, initial×m², … capped at max, each randomized by ± jitter."""

    def __init__(self, config: ReconnectConfig, rng: random.Random | None = None) -> None:
        self.config = config
        self.attempts = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        base = min(self.config.max_s, self.config.initial_s * self.config.multiplier**self.attempts)
        self.attempts += 1
        spread = base * self.config.jitter
        return max(0.0, base + self._rng.uniform(-spread, spread))

    @property
    def exhausted(self) -> bool:
        return bool(self.config.max_attempts) and self.attempts >= self.config.max_attempts

    def reset(self) -> None:
        self.attempts = 0
