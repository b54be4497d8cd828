"""Streams that several consumers follow: lifecycle events, and results.

A push subscriber is a callback run on the emitting thread, so it must be quick (the MQTT publisher only
serializes and queues). A pull subscription is a bounded queue that a slow consumer (a web page's event stream)
drains at its own pace: when it falls behind, its oldest items are dropped and counted, and the emitter never
waits for it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from edged.results import utc_iso

log = logging.getLogger(__name__)

T = TypeVar("T")


class Subscription(Generic[T]):
    def __init__(self, owner: Broadcast[T], maxlen: int) -> None:
        self._owner = owner
        self._items: deque[T] = deque(maxlen=maxlen)
        self._cond = threading.Condition()
        self.dropped = 0
        self.closed = False

    def _offer(self, item: T) -> None:
        with self._cond:
            if len(self._items) == self._items.maxlen:
                self.dropped += 1
            self._items.append(item)
            self._cond.notify_all()

    def get(self, timeout: float | None = None) -> T | None:
        """The oldest item not yet taken, waiting up to `timeout`; None on timeout or once closed."""
        with self._cond:
            self._cond.wait_for(lambda: bool(self._items) or self.closed, timeout)
            return self._items.popleft() if self._items else None

    def close(self) -> None:
        self._owner._unsubscribe(self)
        with self._cond:
            self.closed = True
            self._cond.notify_all()


class Broadcast(Generic[T]):
    """One stream, many consumers: push callbacks and pull subscriptions."""

    def __init__(self, name: str, recent: int = 0) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[T], None]] = []
        self._subscriptions: list[Subscription[T]] = []
        self.recent: deque[T] = deque(maxlen=recent)

    def add_callback(self, callback: Callable[[T], None]) -> Callable[[], None]:
        """Call `callback(item)` for every item, on the emitting thread; returns the function that removes it."""
        with self._lock:
            self._callbacks = [*self._callbacks, callback]

        def remove() -> None:
            with self._lock:
                self._callbacks = [c for c in self._callbacks if c is not callback]

        return remove

    def subscribe(self, maxlen: int = 256) -> Subscription[T]:
        subscription: Subscription[T] = Subscription(self, maxlen)
        with self._lock:
            self._subscriptions = [*self._subscriptions, subscription]
        return subscription

    def _unsubscribe(self, subscription: Subscription[T]) -> None:
        with self._lock:
            self._subscriptions = [s for s in self._subscriptions if s is not subscription]

    def emit(self, item: T) -> None:
        callbacks, subscriptions = self._callbacks, self._subscriptions  # copy-on-write lists: no lock held below
        if self.recent.maxlen:
            self.recent.append(item)
        for callback in callbacks:
            callback(item)
        for subscription in subscriptions:
            subscription._offer(item)


class EventBus(Broadcast[dict[str, object]]):
    """Lifecycle events (edged/schemas/event.schema.json): source state, pause, model changes, stalls, ..."""

    def __init__(self) -> None:
        super().__init__("events", recent=100)

    def event(self, name: str, fields: dict[str, object] | None = None) -> dict[str, object]:
        payload: dict[str, object] = {"event": name, "at": utc_iso(time.time()), **(fields or {})}
        self.emit(payload)
        return payload
