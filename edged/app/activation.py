"""Activating a downloaded, installed version: validate it off the hot path, swap it in between two frames,
watch its health window, then commit it, or roll back to the previous version (or the bundled model) and block
its hash. One version change at a time; the crash marker is on disk before the new model runs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from edged.app.hosted import Probation, ValidationFailed, hosted_model_config, hosted_settings, validate
from edged.config.hosting import HostingConfig
from edged.errors import EdgedError, HostingError
from edged.hosting.store import InstalledVersion, Store
from edged.inference.engine import ModelBundle
from edged.inference.loader import load_bundle

if TYPE_CHECKING:
    from edged.app.daemon import Daemon

log = logging.getLogger("edged.app.updates")


class Activator:
    def __init__(
        self,
        daemon: Daemon,
        hosting: HostingConfig,
        store: Store,
        set_status: Callable[..., None],
        reject: Callable[[int, str], None],
    ) -> None:
        self.daemon = daemon
        self.hosting = hosting
        self.store = store
        self._set = set_status
        self._reject = reject
        self.probation: Probation | None = None

    def load(self, installed: InstalledVersion) -> ModelBundle:
        config = hosted_model_config(self.daemon.config.model, installed)
        bundle = load_bundle(config, version=str(installed.version))
        bundle.settings = hosted_settings(installed)
        return bundle

    @staticmethod
    def version_of(installed: InstalledVersion | None) -> int | None:
        return installed.version if installed is not None else None

    def _running_latency_ms(self) -> float | None:
        value = self.daemon.stats_snapshot(reset=False)["inference_ms"]["p50"]
        return float(value) if value else None

    def activate(self, installed: InstalledVersion) -> None:
        self._set(state="validating")
        before = self._running_latency_ms()
        try:
            self.store.begin_validation(installed)
            checked = validate(installed, self.daemon.config, self.hosting, before)
        except (ValidationFailed, HostingError) as exc:
            with_reason = str(exc)
            try:
                self.store.reject(installed, with_reason)
            except HostingError as store_error:
                log.error("hosting: %s", store_error)
            self._set(state="idle", last_error=with_reason)
            self._reject(installed.version, with_reason)
            return
        try:
            self.store.begin_probation(installed)  # the crash marker is on disk before the model runs
        except HostingError as exc:
            checked.bundle.close()
            self._set(state="idle", last_error=str(exc))
            log.error("hosting: %s", exc)
            return
        assert self.daemon.models is not None
        self.daemon.models.activate(checked.bundle, f"hosted version {installed.version}")
        self.daemon.emit(
            "update_activated",
            {
                "name": installed.name,
                "version": installed.version,
                "sha256": installed.sha256,
                "latency_ms": round(checked.latency_ms, 2),
            },
        )
        self._set(publish=False, current_version=installed.version, available_version=None)
        self.begin_probation(installed, before)

    def begin_probation(self, installed: InstalledVersion, before_ms: float | None, resumed: bool = False) -> None:
        probation = Probation(installed, self.daemon.stats_counters, self.daemon.results, self.hosting, before_ms)
        probation.start()
        self.probation = probation
        log.info("hosting: version %s on probation for %g s%s", installed.version, self.hosting.health_window_s,
                 " (again, after a restart)" if resumed else "")  # fmt: skip
        self._set(state="probation")

    def watch_probation(self) -> None:
        probation = self.probation
        if probation is None:
            return
        verdict, why = probation.verdict()
        if verdict == "running":
            return
        probation.close()
        self.probation = None
        installed = probation.installed
        if verdict == "passed":
            try:
                self.store.commit(installed)
            except HostingError as exc:
                log.error("hosting: %s", exc)
                return
            log.info("hosting: version %s committed (%s)", installed.version, why)
            self.daemon.emit("update_committed", {"name": installed.name, "version": installed.version})
            self._set(state="idle")
            return
        reason = f"version {installed.version} failed its health window: {why}"
        log.error("hosting: %s; rolling back", reason)
        try:
            self.rollback(reason, block=True)
        except HostingError as exc:
            log.error("hosting: the rollback failed: %s", exc)

    def rollback(self, reason: str, block: bool) -> int | None:
        """Back to the previous version (or the bundled model), swapped in like any other; returns its version."""
        left = self.store.state.current
        if self.probation is not None:
            self.probation.close()
            self.probation = None
        target = self.store.rollback(reason, block)
        while True:
            try:
                bundle = self.load(target) if target is not None else load_bundle(self.daemon.config.model)
                break
            except EdgedError as exc:
                if target is None:
                    raise HostingError(f"the bundled model does not load either: {exc}") from exc
                target = self.store.rollback(f"version {target.version} does not load: {exc}")
        assert self.daemon.models is not None
        self.daemon.models.activate(bundle, f"rollback: {reason}")
        to = self.version_of(target)
        left_version = left.version if left else None
        self.daemon.emit("update_rolled_back", {"name": self.hosting.name, "from_version": left_version,
                                                "to_version": to, "reason": reason})  # fmt: skip
        self._set(state="idle", current_version=to, last_error=reason)
        return to
