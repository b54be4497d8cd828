"""What edged itself left retained on the broker under its discovery topics, read at each connect.

edged subscribes to its own discovery topics, publishes a marker on <prefix>/sync and subscribes to it too: the
broker delivers the retained messages of a subscription before anything published after it, so when the marker
comes back every retained config has arrived. Then the cleanup plan (discovery.plan_cleanup) knows which
entities are stale and which per-entity configs a device-based config replaces.
"""

from __future__ import annotations

import threading
import uuid


class RetainedInventory:
    def __init__(self, filters: list[str], sync_topic: str) -> None:
        self.filters = filters
        self.sync_topic = sync_topic
        self._lock = threading.Lock()
        self._found: dict[str, bytes] = {}
        self._marker = b""
        self._done = threading.Event()
        self.collecting = False

    def begin(self) -> bytes:
        """Start a new collection; returns the marker to publish once subscribed."""
        with self._lock:
            self._found = {}
            self._marker = uuid.uuid4().hex.encode()
            self._done.clear()
            self.collecting = True
            return self._marker

    def offer(self, topic: str, payload: bytes, retained: bool) -> bool:
        """From paho's network thread: True when the message belonged to the inventory."""
        if topic == self.sync_topic:
            with self._lock:
                if payload == self._marker:
                    self._done.set()
            return True
        if not self.collecting or not topic.endswith("/config"):
            return False
        if retained:
            with self._lock:
                self._found[topic] = payload
        return True

    def wait(self, timeout_s: float) -> dict[str, bytes] | None:
        """The retained configs found, or None when the marker did not come back in time."""
        done = self._done.wait(timeout_s)
        with self._lock:
            self.collecting = False
            return dict(self._found) if done else None
