"""The bounded buffer where messages wait while the broker is away: ours, so its bound is ours, not paho's.

Results queue in order and are bounded by count and by age; on overflow the oldest are dropped and counted, so
a long outage costs the oldest results rather than memory or the newest data. Other messages (state, stats,
events, replies, discovery, label values) are few; retained ones are coalesced by topic, since only the last
value of a retained topic matters. Not thread-safe: the sender guards it with its own lock.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

#: Non-result messages kept while offline (stats every 10 s and a few events fit for hours).
MAX_OTHER = 1000


@dataclass
class Message:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    queued_at: float
    is_result: bool = False
    properties: Any = None  # MQTT 5 properties (a reply's correlation data), or None


@dataclass
class DropCounts:
    overflow: int = 0
    expired: int = 0
    other: int = 0

    def total(self) -> int:
        return self.overflow + self.expired + self.other


@dataclass
class Outbox:
    max_results: int
    max_age_s: float
    max_other: int = MAX_OTHER
    results: deque[Message] = field(default_factory=deque)
    other: OrderedDict[object, Message] = field(default_factory=OrderedDict)
    dropped: DropCounts = field(default_factory=DropCounts)
    unreported: DropCounts = field(default_factory=DropCounts)
    _keys: itertools.count[int] = field(default_factory=itertools.count)

    def __len__(self) -> int:
        return len(self.results) + len(self.other)

    def put_result(self, message: Message) -> int:
        """Queue a result; returns how many old results were dropped to make room."""
        dropped = 0
        while len(self.results) >= self.max_results:
            self.results.popleft()
            dropped += 1
        self.results.append(message)
        if dropped:
            self.dropped.overflow += dropped
            self.unreported.overflow += dropped
        return dropped

    def put_other(self, message: Message, coalesce: bool | None = None) -> None:
        """Queue a non-result message; a retained one replaces a queued one on the same topic."""
        key: object = message.topic if (message.retain if coalesce is None else coalesce) else next(self._keys)
        self.other.pop(key, None)
        self.other[key] = message
        while len(self.other) > self.max_other:
            self.other.popitem(last=False)
            self.dropped.other += 1
            self.unreported.other += 1

    def expire(self, now: float) -> int:
        """Drop results older than max_age_s; returns how many."""
        expired = 0
        limit = now - self.max_age_s
        while self.results and self.results[0].queued_at < limit:
            self.results.popleft()
            expired += 1
        if expired:
            self.dropped.expired += expired
            self.unreported.expired += expired
        return expired

    def pop(self, now: float) -> Message | None:
        """The next message to send: other messages first (few, and state must not wait behind a backlog)."""
        if self.other:
            return self.other.popitem(last=False)[1]
        self.expire(now)
        return self.results.popleft() if self.results else None

    def push_front(self, message: Message) -> None:
        """Put back a message that could not be handed over, keeping its place in the order."""
        if message.is_result:
            self.results.appendleft(message)
        else:
            key = next(self._keys)
            self.other[key] = message
            self.other.move_to_end(key, last=False)

    def take_unreported(self) -> DropCounts:
        """Drops since the last call, for the event that reports them."""
        counts, self.unreported = self.unreported, DropCounts()
        return counts
