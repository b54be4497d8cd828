"""The replaceable parts the daemon owns: the current config, the current model bundle, the current publisher.

Each is swapped by one reference assignment and read by the pipeline at a frame boundary, so a change takes
effect between two frames. The model holder also tracks which bundle the frame in flight uses, so an old bundle
is closed only after that frame is done.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

from edged.config.app import AppConfig
from edged.inference.engine import ModelBundle
from edged.publish.base import Publisher, Runtime

log = logging.getLogger(__name__)


class ConfigRef:
    """The one current configuration; settings that may change live are read from here at a frame boundary."""

    def __init__(self, config: AppConfig) -> None:
        self._config = config
        self.generation = 0

    @property
    def current(self) -> AppConfig:
        return self._config

    def replace(self, config: AppConfig) -> AppConfig:
        old, self._config = self._config, config
        self.generation += 1
        return old


class ModelHolder:
    """The current bundle. `using()` marks the frame in flight; `wait_released(old)` waits for it to end."""

    def __init__(self, bundle: ModelBundle) -> None:
        self._bundle = bundle
        self._cond = threading.Condition()
        self._in_use: dict[int, int] = {}  # id(bundle) → frames using it right now

    @property
    def current(self) -> ModelBundle:
        return self._bundle

    @contextlib.contextmanager
    def using(self) -> Iterator[ModelBundle]:
        """The bundle for one frame: read once, so a swap takes effect at the next frame."""
        with self._cond:
            bundle = self._bundle
            self._in_use[id(bundle)] = self._in_use.get(id(bundle), 0) + 1
        try:
            yield bundle
        finally:
            with self._cond:
                left = self._in_use[id(bundle)] - 1
                if left:
                    self._in_use[id(bundle)] = left
                else:
                    del self._in_use[id(bundle)]
                    self._cond.notify_all()

    def swap(self, bundle: ModelBundle) -> ModelBundle:
        with self._cond:
            old, self._bundle = self._bundle, bundle
            return old

    def wait_released(self, bundle: ModelBundle, timeout_s: float) -> bool:
        """True once no frame uses `bundle` (it is no longer current); False if one still does after timeout_s."""
        with self._cond:
            return self._cond.wait_for(lambda: id(bundle) not in self._in_use, timeout_s)


class PublisherHolder:
    """The current publisher. `swap` starts the new one and hands it the old one's undelivered results."""

    def __init__(self, publisher: Publisher) -> None:
        self._publisher = publisher
        self._lock = threading.Lock()  # held per result: a swap never interleaves with a publish

    @property
    def current(self) -> Publisher:
        return self._publisher

    def publish_result(self, result: dict[str, Any]) -> None:
        with self._lock:
            self._publisher.publish_result(result)

    def publish_stats(self, stats: dict[str, Any]) -> None:
        self._publisher.publish_stats(stats)

    def publish_state(self, state: dict[str, Any]) -> None:
        self._publisher.publish_state(state)

    def publish_event(self, event: dict[str, Any]) -> None:
        self._publisher.publish_event(event)

    def swap(self, publisher: Publisher, runtime: Runtime) -> int:
        """Start `publisher`, move the old one's backlog into it in order, stop the old one. Returns the backlog."""
        publisher.start(runtime)
        old, moved = self.switch(publisher)
        self.retire(old)
        return moved

    def retire(self, old: Publisher) -> None:
        """Stop a publisher that `switch` replaced. It says goodbye (MQTT: a retained `offline`), which may land on
        the topic the current one uses (the same broker): the current one then announces itself again."""
        old.stop()
        reannounce = getattr(self._publisher, "reannounce", None)
        if callable(reannounce):
            reannounce()

    def switch(self, publisher: Publisher) -> tuple[Publisher, int]:
        """Make the started `publisher` current and hand it the old one's backlog, in order, between two results.

        Returns the old publisher (still running: the caller stops it) and how many results moved. A reload does
        the start and the stop itself, so that this step, the only one that must happen between two frames, is
        quick.
        """
        with self._lock:
            old = self._publisher
            backlog = old.take_backlog()
            for result in backlog:
                publisher.publish_result(result)
            self._publisher = publisher
        if backlog:
            log.info("handed %d undelivered result(s) to the new publisher", len(backlog))
        return old, len(backlog)
