"""The device side of model hosting, on one thread of its own: check → download → install → validate → swap →
probation → commit, or roll back and block the hash (Mender's Install → Commit → Rollback; TUF verifies).

It never blocks frames: everything but the swap itself runs here, off the hot path, and the swap is one reference
assignment between two frames (ModelManager.activate). It never stops the daemon because the host is unreachable:
it logs, reports an `update_check_failed` event, backs off (edged/hosting/schedule.py) and keeps the current
model. At start, with or without a network, it loads the last committed version, else the bundled model.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from edged.app.activation import Activator
from edged.config.hosting import HostingConfig
from edged.errors import CommandRefused, EdgedError, HostingError
from edged.hosting.client import HostingClient
from edged.hosting.schedule import first_check_delay, next_check_delay
from edged.hosting.selection import Offer
from edged.hosting.store import InstalledVersion, Store
from edged.inference import runtime
from edged.inference.engine import ModelBundle
from edged.results import utc_iso

if TYPE_CHECKING:
    from edged.app.daemon import Daemon

log = logging.getLogger(__name__)

#: Longest a command waits for the update thread to take its request (a check in progress finishes first).
REQUEST_TIMEOUT_S = 300.0
#: Least time between two `update_downloading` progress events.
PROGRESS_EVERY_S = 1.0
#: Selection reasons that are the normal life of a fleet, not worth an `update_rejected` event.
_QUIET_SKIPS = ("not in the", "channel ", "pinned to", "withdrawn", "rolled back here")


class Stopping(HostingError):
    """The daemon is stopping: the download in progress is abandoned (nothing half-written stays)."""


@dataclasses.dataclass
class Request:
    kind: str  # "check" | "install" | "rollback"; "wake", "retune" (a reload) from the daemon itself
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    result: dict[str, Any] | None = None
    error: str | None = None

    def answer(self, result: dict[str, Any] | None = None, error: str | None = None) -> None:
        self.result, self.error = result, error
        self.done.set()


class Updates:
    def __init__(self, daemon: Daemon, hosting: HostingConfig, rng: random.Random | None = None) -> None:
        self.daemon = daemon
        self.hosting = hosting
        self.store = Store(daemon.config.state_dir, hosting.keep_versions)
        self.client: HostingClient | None = None
        self._rng = rng or random.Random()
        self._requests: queue.Queue[Request] = queue.Queue()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._failures = 0
        self._announced: tuple[int, str] | None = None
        self._rejected: set[tuple[int, str]] = set()
        self._pending: InstalledVersion | None = None  # installed, waiting for the install window
        self._offer: Offer | None = None
        self.activator = Activator(daemon, hosting, self.store, self._set, self._reject_event)
        self._resume_probation: InstalledVersion | None = None
        self._last_progress = 0.0
        self._startup_events: list[tuple[str, dict[str, Any]]] = []  # emitted once the publisher runs
        #: update checks since start, by outcome (the status page's /metrics: edged_update_checks_total{outcome})
        self.checks: dict[str, int] = {"up_to_date": 0, "available": 0, "failed": 0}
        self.status: dict[str, Any] = {
            "name": hosting.name, "channel": hosting.channel, "auto_install": hosting.auto_install,
            "state": "idle", "current_version": None, "available_version": None, "available_notes": "",
            "progress": None, "last_check_at": None, "next_check_at": None, "last_error": None,
        }  # fmt: skip

    # ---- status, for state() and the Home Assistant update entity ----------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return dict(self.status)

    def _set(self, publish: bool = True, **fields: Any) -> None:
        with self._lock:
            self.status.update(fields)
        if publish:
            self.daemon.state_changed()

    # ---- start-up: which model to load (the main thread, before any frame) --------------------------------------
    def startup_bundle(self, bundled: Callable[[], ModelBundle]) -> ModelBundle:
        """The last committed (or on-probation) version if one is installed and loads, else the bundled model."""
        try:
            decision = self.store.startup()
        except HostingError as exc:
            log.error("hosting: the state in %s cannot be used (%s); running the bundled model", self.store.paths.root,
                      exc)  # fmt: skip
            return bundled()
        for note in decision.notes:
            log.warning("hosting: %s", note)
        if decision.rolled_back:
            self._startup_events.append(("update_rolled_back", {
                "name": self.hosting.name, "from_version": decision.left_version,
                "to_version": self.activator.version_of(self.store.current()), "reason": decision.rolled_back,
            }))  # fmt: skip
        installed = decision.load
        while installed is not None:
            try:
                bundle = self.activator.load(installed)
            except EdgedError as exc:
                reason = f"installed version {installed.version} does not load any more: {exc}"
                log.error("hosting: %s; going back", reason)
                left = installed.version
                installed = self.store.rollback(reason)
                self._startup_events.append(("update_rolled_back", {
                    "name": self.hosting.name, "from_version": left, "to_version": self.activator.version_of(installed),
                    "reason": reason,
                }))  # fmt: skip
                decision = dataclasses.replace(decision, in_probation=False)
                continue
            log.info("hosting: running %s version %s from %s", installed.name, installed.version, installed.directory)
            self._set(publish=False, current_version=installed.version)
            if decision.in_probation:
                self._resume_probation = installed
            return bundle
        return bundled()

    def _client(self) -> HostingClient:
        if self.client is None:
            bundle = self.daemon.models.current if self.daemon.models else None
            accelerator = self.daemon.config.model.accelerator
            has_tpu = accelerator != "cpu" and (
                (bundle is not None and bundle.accelerator.startswith("edgetpu")) or runtime.edgetpu_present()
            )
            self.client = HostingClient(self.hosting, self.daemon.config.state_dir, self.daemon.config.device_id,
                                        has_edgetpu=has_tpu)  # fmt: skip
        return self.client

    # ---- commands (from the long command thread) -----------------------------------------------------------------
    def request(self, kind: str) -> dict[str, Any]:
        if self._stop.is_set():
            raise CommandRefused("edged is stopping")
        request = Request(kind)
        self._requests.put(request)
        if not request.done.wait(REQUEST_TIMEOUT_S):
            raise CommandRefused(f"the update thread is busy (a download or a check); try {kind} again later")
        if request.error is not None:
            raise CommandRefused(request.error)
        return request.result or {}

    def retune(self, hosting: HostingConfig) -> None:
        """New [hosting] settings from a reload (the same repository, name and root): the next check uses them
        (URL, channel, pin, limits: the client is rebuilt), and the check schedule restarts with the new interval."""
        with self._lock:
            self.hosting = hosting
            self.activator.hosting = hosting
            self.store.keep_versions = hosting.keep_versions
            self.client = None
            self.status.update(channel=hosting.channel, auto_install=hosting.auto_install)
        self._requests.put(Request("retune"))

    # ---- the thread ----------------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the thread to end (a download in progress is abandoned at its next chunk)."""
        self._stop.set()
        self._requests.put(Request("wake"))

    def run(self) -> None:
        for name, fields in self._startup_events:
            self.daemon.emit(name, fields)
        if self._resume_probation is not None:
            self.activator.begin_probation(self._resume_probation, None, resumed=True)
        next_at = time.monotonic() + first_check_delay(float(self.hosting.interval_s), float(self.hosting.jitter),
                                                       self._rng)  # fmt: skip
        while not self._stop.is_set():
            now = time.monotonic()
            timeout = max(0.0, next_at - now)
            if self.activator.probation is not None or self._pending is not None:
                timeout = min(timeout, 0.5)
            try:
                request: Request | None = self._requests.get(timeout=timeout)
            except queue.Empty:
                request = None
            if self._stop.is_set():
                break
            self.activator.watch_probation()
            self._activate_when_window_opens()
            if request is not None and request.kind == "retune":
                next_at = self._schedule_next()
            elif request is not None and request.kind != "wake":
                self._handle(request)
            elif time.monotonic() >= next_at:
                self._check(install=self.hosting.auto_install)
                next_at = self._schedule_next()
        if self.activator.probation is not None:
            self.activator.probation.close()
        try:
            self.store.stopped_cleanly()  # a probation in progress goes on at the next start; this is no crash
        except HostingError as exc:
            log.warning("hosting: %s", exc)
        for pending in list(self._requests.queue):
            pending.answer(error="edged is stopping")

    def _schedule_next(self) -> float:
        delay = next_check_delay(float(self.hosting.interval_s), float(self.hosting.jitter), self._failures,
                                 float(self.hosting.retry_max_s), self._rng)  # fmt: skip
        self._set(publish=False, next_check_at=utc_iso(time.time() + delay))
        return time.monotonic() + delay

    def _handle(self, request: Request) -> None:
        if request.kind == "check":
            result = self._check(install=False)
            if "error" in result:
                request.answer(error=result["error"])
                return
            request.answer(result)
            if self.hosting.auto_install and self._offer is not None and self.activator.probation is None:
                self._install(self._offer, honour_window=True)
        elif request.kind == "install":
            offer = self._offer
            if offer is None:
                self._check(install=False)
                offer = self._offer
            if offer is None:
                request.answer(error="no update is available for this device")
                return
            trial = self.activator.probation
            if trial is not None:
                request.answer(error=f"version {trial.installed.version} is still on probation; try again when it "
                                     "is committed")  # fmt: skip
                return
            request.answer({"installing": offer.version, "name": offer.name})
            self._install(offer, honour_window=False)
        elif request.kind == "rollback":
            try:
                to = self.activator.rollback("the rollback command", block=False)
            except HostingError as exc:
                request.answer(error=str(exc))
                return
            request.answer({"rolled_back_to": to, "pinned": "until a newer version is published"})

    # ---- check, download, install -----------------------------------------------------------------------------
    def _check(self, install: bool) -> dict[str, Any]:
        self._set(state="checking")
        try:
            client = self._client()
            offer = client.check(self.store.local_facts())
        except HostingError as exc:
            return self._check_failed(exc)
        self._failures = 0
        selection = client.last_selection
        self._set(publish=False, last_check_at=utc_iso(time.time()), last_error=None, state="idle")
        current = self.store.state.current
        if selection is not None:
            self._report_skips(selection.skipped, current.version if current else 0)
            if offer is None and not selection.current_allowed and current is not None:
                reason = f"version {current.version} may no longer run on this device ({selection.note})"
                try:
                    self.activator.rollback(reason, block=False)
                except HostingError as exc:
                    log.error("hosting: %s", exc)
        self._offer = offer
        self.checks["up_to_date" if offer is None else "available"] += 1
        if offer is None:
            self._set(available_version=None, available_notes="")
            return {"current_version": self._current_version(), "available_version": None,
                    "note": selection.note if selection else "up to date"}  # fmt: skip
        if self._announced != (offer.version, offer.sha256):
            self._announced = (offer.version, offer.sha256)
            log.info("hosting: %s version %s is available (%s)", offer.name, offer.version, offer.reason)
            self.daemon.emit("update_available", {"name": offer.name, "version": offer.version,
                                                  "notes": offer.meta.notes, "reason": offer.reason})  # fmt: skip
        self._set(available_version=offer.version, available_notes=offer.meta.notes)
        if install and self.activator.probation is None:  # one change at a time: a version on probation finishes first
            self._install(offer, honour_window=True)
        return {"current_version": self._current_version(), "available_version": offer.version, "note": offer.reason}

    def _check_failed(self, exc: HostingError) -> dict[str, Any]:
        self._failures += 1
        self.checks["failed"] += 1
        delay = next_check_delay(float(self.hosting.interval_s), 0.0, self._failures,
                                 float(self.hosting.retry_max_s), self._rng)  # fmt: skip
        log.warning("hosting: update check failed (%s); keeping the current model, next attempt in about %.0f s",
                    exc, delay)  # fmt: skip
        self._set(state="idle", last_error=str(exc), last_check_at=utc_iso(time.time()))
        self.daemon.emit("update_check_failed", {"reason": str(exc), "next_attempt_s": round(delay, 1),
                                                 "failures": self._failures})  # fmt: skip
        return {"error": f"the update check failed: {exc}"}

    def _report_skips(self, skipped: Mapping[int, str], current: int) -> None:
        for version, reason in skipped.items():
            if version <= current or any(reason.startswith(quiet) for quiet in _QUIET_SKIPS):
                continue
            if (version, reason) not in self._rejected:
                self._rejected.add((version, reason))
                self._reject_event(version, reason)

    def _reject_event(self, version: int, reason: str) -> None:
        log.warning("hosting: %s version %s rejected: %s", self.hosting.name, version, reason)
        self.daemon.emit("update_rejected", {"name": self.hosting.name, "version": version, "reason": reason})

    def _current_version(self) -> int | None:
        current = self.store.state.current
        return current.version if current else None

    def _progress(self, offer: Offer) -> Callable[[int, int], None]:
        def report(received: int, total: int) -> None:
            if self._stop.is_set():
                raise Stopping("edged is stopping; the download was abandoned")
            now = time.monotonic()
            if now - self._last_progress < PROGRESS_EVERY_S and received < total:
                return
            self._last_progress = now
            percent = round(100.0 * received / total, 1) if total else 100.0
            self._set(progress=percent)
            self.daemon.emit("update_downloading", {"name": offer.name, "version": offer.version, "percent": percent,
                                                    "bytes": received, "total_bytes": total})  # fmt: skip

        return report

    def _install(self, offer: Offer, honour_window: bool) -> None:
        client = self._client()
        self._set(state="downloading", progress=0.0)
        self._last_progress = 0.0
        try:
            staged = client.download(offer, self._progress(offer))
            installed = self.store.install(staged)
        except Stopping:
            return
        except HostingError as exc:
            self._set(state="idle", progress=None, last_error=str(exc))
            log.error("hosting: %s version %s was not installed: %s", offer.name, offer.version, exc)
            self._reject_event(offer.version, str(exc))
            return
        self._set(progress=None)
        window = self.hosting.window()
        if honour_window and window is not None and not window.contains(dt.datetime.now().time()):
            log.info("hosting: version %s is downloaded; it is activated inside the install window %s",
                     installed.version, self.hosting.install_window)  # fmt: skip
            self._pending = installed
            self._set(state="waiting_for_window")
            return
        self.activator.activate(installed)

    def _activate_when_window_opens(self) -> None:
        pending, window = self._pending, self.hosting.window()
        if pending is None or (window is not None and not window.contains(dt.datetime.now().time())):
            return
        self._pending = None
        self.activator.activate(pending)

    # ---- validation, swap, probation, rollback ---------------------------------------------------------------
