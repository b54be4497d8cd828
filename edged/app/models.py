"""The model manager: every change of the running model goes through here, one at a time.

A new bundle is loaded and checked off the hot path by the caller (a failed load never reaches this point), then
installed with one reference swap between two frames; the old bundle is closed only once the frame in flight,
which still uses it, is published. The hosting client, a reload with a new model path and a rollback all come
through `activate`.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from typing import Any

from edged.app.events import EventBus
from edged.app.holders import ModelHolder
from edged.inference.engine import ModelBundle

log = logging.getLogger(__name__)

#: How long a swap waits for the frame in flight before leaving the old bundle open (a hung model).
RELEASE_TIMEOUT_S = 60.0


def release_freed_memory() -> None:
    """Hand the freed interpreter's memory back to the system now (glibc keeps freed heap otherwise; on a Pi
    with 1 GB the difference between two models matters). A no-op where there is no glibc."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim: Any = None


class ModelManager:
    def __init__(self, holder: ModelHolder, events: EventBus, release_timeout_s: float = RELEASE_TIMEOUT_S) -> None:
        self.holder = holder
        self.events = events
        self.release_timeout_s = release_timeout_s
        self._lock = threading.Lock()  # one model change at a time
        self.swaps = 0

    @property
    def current(self) -> ModelBundle:
        return self.holder.current

    def activate(self, bundle: ModelBundle, reason: str) -> ModelBundle:
        """Make `bundle` the running model from the next frame on; returns the bundle it replaced (closed)."""
        with self._lock:
            old = self.holder.swap(bundle)
            self.swaps += 1
            log.info(
                "model %s %s (%s) replaces %s %s: %s", bundle.info.name, bundle.info.version,
                bundle.info.sha256[:12], old.info.name, old.info.version, reason,
            )  # fmt: skip
            self.events.event(
                "model_changed",
                {"model": bundle.info.as_dict(), "previous": old.info.as_dict(), "reason": reason},
            )
            if self.holder.wait_released(old, self.release_timeout_s):
                old.close()
                release_freed_memory()
            else:
                log.error(
                    "the frame in flight still uses the previous model after %.0f s; it is left open (a hung model?)",
                    self.release_timeout_s,
                )
            return old

    def close(self) -> None:
        """At shutdown, once inference has stopped."""
        with self._lock:
            self.holder.current.close()
