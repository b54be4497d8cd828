"""The daemon: config → model, source, publisher → supervised threads → a clean stop within a time limit.

It owns the replaceable parts (the current config, the model holder and its manager, the publisher holder, the
mailbox between capture and inference) and the control surface every front end uses. Threads are started only
through `self.threads`; the supervisor (edged/app/supervisor.py) runs the main loop and decides the exit status.
"""

from __future__ import annotations

import logging
import math
import socket
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from edged import __version__
from edged.annotate import annotate
from edged.app.capture import CaptureSide
from edged.app.control import CommandSpec, Dispatcher
from edged.app.events import Broadcast, EventBus
from edged.app.holders import ConfigRef, ModelHolder, PublisherHolder
from edged.app.inference import InferenceWorker, roi_of
from edged.app.liveness import Liveness
from edged.app.mailbox import LatestFrameMailbox
from edged.app.models import ModelManager
from edged.app.sdnotify import SystemdNotifier
from edged.app.stats import Stats
from edged.app.supervisor import EXIT_ERROR, EXIT_OK, Supervisor
from edged.app.threads import Crash, Threads
from edged.config.app import AppConfig
from edged.config.camera import SourceConfig
from edged.errors import CommandRefused, EdgedError
from edged.inference.engine import ModelBundle, decode_params, known_label_index
from edged.inference.loader import load_bundle
from edged.inference.preprocess import InputRecipe
from edged.publish.base import CommandRequest, Control, NetworkLoop, Publisher, ReplySink, create_publisher
from edged.results import utc_iso
from edged.sources.base import FrameSource

if TYPE_CHECKING:
    from edged.app.updates import Updates
    from edged.app.web.server import WebServer

log = logging.getLogger(__name__)

#: A label counts as detected from this score when neither model.threshold nor its label threshold says more.
DETECTED_AT = 0.5
PAUSE_WAIT_S = 10.0  # longer than any sane model's invoke; pause() never blocks forever


class DaemonRuntime:
    """What publishers get from the daemon: the control surface and supervised threads (publish.base.Runtime)."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon

    @property
    def control(self) -> Control:
        return self._daemon

    def spawn(self, name: str, target: Callable[[], None]) -> threading.Thread:
        return self._daemon.threads.spawn(name, target)

    def start_network_loop(self, client: NetworkLoop) -> None:
        self._daemon.threads.start_network_loop(client)

    def request_stop(self, reason: str, exit_code: int = 0) -> None:
        self._daemon.request_stop(reason, exit_code)


class Daemon:
    """Runs until stopped (signal, command, a bug) or until a finite source is finished."""

    def __init__(
        self,
        config: AppConfig,
        *,
        publisher: Publisher | None = None,
        source: FrameSource | None = None,
        bundle: ModelBundle | None = None,
        retry_source: bool = True,
        config_path: Path | None = None,
    ) -> None:
        self.settings = ConfigRef(config)
        self.config_path = config_path  # what a reload re-reads (None: an embedded daemon, nothing to reload)
        self.stop_event = threading.Event()
        self.paused_event = threading.Event()
        self.stats_counters = Stats()
        self.events = EventBus()
        self.results: Broadcast[dict[str, Any]] = Broadcast("results", recent=50)
        self.mailbox = LatestFrameMailbox()
        self.threads = Threads(self._on_crash)
        self.runtime = DaemonRuntime(self)
        self.dispatcher = Dispatcher()
        self.capture = CaptureSide(self.threads, self.settings, self.mailbox, self.stats_counters,
                                   self._source_state, self.emit, self._input_recipe)  # fmt: skip
        self.models: ModelManager | None = None
        self.publishers: PublisherHolder | None = None
        self.inference: InferenceWorker | None = None
        self._inference_thread: threading.Thread | None = None
        self.update_thread: threading.Thread | None = None
        self.started = threading.Event()  # set once start() has finished: every part runs
        self._publisher = publisher
        self._source = source
        self._bundle = bundle
        self._retry_source = retry_source
        self._stop_lock = threading.Lock()
        self.stop_reason: str | None = None
        self.stop_code = EXIT_OK
        self.started_at = time.time()
        self.notifier: SystemdNotifier | None = None
        self.liveness: Liveness | None = None  # set by the supervisor while it runs
        self.updates: Updates | None = None  # model hosting, when [hosting] is configured
        self.web: WebServer | None = None  # the status page, when [http] is set (edged/app/web/)
        self._register_commands()
        self.events.add_callback(self._forward_event)

    @property
    def config(self) -> AppConfig:
        return self.settings.current

    # ---- commands ---------------------------------------------------------------------------------------------
    def _register_commands(self) -> None:
        register = self.dispatcher.register
        register(CommandSpec("pause", lambda _: self.pause(), summary="stop producing results"))
        register(CommandSpec("resume", lambda _: self.resume(), summary="produce results again"))
        register(CommandSpec("snapshot", self._snapshot_command, {"annotated": bool},
                             summary="publish the newest frame as a JPEG"))  # fmt: skip
        register(CommandSpec("stats", lambda _: self.stats(), summary="the stats of the current window"))
        register(CommandSpec("state", lambda _: self.state(), summary="what is running"))
        register(CommandSpec("check_update", lambda _: self._hosting("check"), long=True,
                             summary="look for a newer model version now"))  # fmt: skip
        register(CommandSpec("install_update", lambda _: self._hosting("install"), long=True,
                             summary="install the available version (with auto_install = false)"))  # fmt: skip
        register(CommandSpec("rollback", lambda _: self._hosting("rollback"), long=True,
                             summary="go back to the previous model version, pinned until a newer one"))  # fmt: skip
        register(CommandSpec("reload", lambda _: self.reload(), long=True,
                             summary="re-read the config file and apply it (as SIGHUP does)"))  # fmt: skip
        register(CommandSpec("set_paused", self._set_paused, {"paused": bool},
                             summary="pause (true) or resume (false): Home Assistant's switch"))  # fmt: skip

    def submit(self, request: CommandRequest, reply: ReplySink) -> None:
        self.dispatcher.submit(request, reply)

    def pause(self) -> dict[str, Any]:
        """Returns once the frame in flight is published, so a "paused" reply means no further results."""
        self.paused_event.set()
        worker = self.inference
        if worker is not None:
            if worker.inferring.acquire(timeout=PAUSE_WAIT_S):
                worker.inferring.release()
            else:
                log.warning(
                    "paused; the frame in flight is taking over %.0f s and will still be published", PAUSE_WAIT_S
                )
        self.emit("paused", {})
        return {"paused": self.paused}

    def resume(self) -> dict[str, Any]:
        self.paused_event.clear()
        self.emit("resumed", {})
        return {"paused": self.paused}

    def _set_paused(self, args: Mapping[str, Any]) -> dict[str, Any]:
        if "paused" not in args:
            raise CommandRefused('set_paused needs {"paused": true} or {"paused": false}')
        return self.pause() if args["paused"] else self.resume()

    def label_thresholds(self) -> dict[str, float]:
        """Every label the model reports, with the score at which it counts as detected: model.label_thresholds,
        else model.threshold, else 0.5 (classification reports the top k whatever their score, so a detected
        label needs a threshold of its own). Labels excluded by the config are left out."""
        bundle = self.models.current if self.models else None
        if bundle is None:
            return {}
        params = decode_params(bundle.spec, bundle.model_config(self.config.model))  # as the inference thread does
        found: dict[str, float] = {}
        for name, threshold in zip(bundle.spec.labels.names, params.thresholds.tolist(), strict=False):
            if math.isfinite(threshold):
                found[name] = threshold if threshold > 0 else DETECTED_AT
        return found

    @property
    def paused(self) -> bool:
        return self.paused_event.is_set()

    def _snapshot_command(self, args: Mapping[str, Any]) -> dict[str, Any]:
        if self.publishers is None:
            raise CommandRefused("edged is still starting")
        return self.publishers.current.publish_snapshot(args.get("annotated"))

    def stats(self) -> dict[str, Any]:
        return self.stats_snapshot(reset=False)

    def state(self) -> dict[str, Any]:
        bundle = self.models.current if self.models else None
        config = self.config
        return {
            "device_id": config.device_id,
            "edged_version": __version__,
            "run_id": self.inference.run_id if self.inference else None,
            "started_at": utc_iso(self.started_at),
            "uptime_s": round(time.time() - self.started_at, 1),
            "model": bundle.info.as_dict() if bundle else None,
            "task": bundle.spec.task if bundle else None,
            "accelerator": bundle.accelerator if bundle else None,
            "source": {"id": config.camera.id, "type": config.camera.type, "state": self.stats_counters.source_state},
            "paused": self.paused,
            **({"hosting": self.updates.snapshot()} if self.updates is not None else {}),
            **({"page_url": self.page_url()} if config.http is not None else {}),
        }

    def page_url(self) -> str | None:
        """Where the status page is reached (Home Assistant's configuration_url), when [http] is on."""
        http = self.config.http
        return http.page_url(socket.gethostname()) if http is not None else None

    def hosting_state(self) -> dict[str, Any] | None:
        """Model hosting as the status page and /metrics show it (docs/http.md#model-hosting-on-the-page); None
        without [hosting]: the state's `hosting` part, plus `checks` (outcome → count since start)."""
        if self.updates is None:
            return None
        return {**self.updates.snapshot(), "checks": dict(self.updates.checks)}

    def snapshot_jpeg(self, annotated: bool) -> bytes | None:
        last = self.inference.last if self.inference else None
        if last is None:
            return None
        frame, prediction = last.frame, last.prediction
        image = (
            frame.image
            if frame.color == "bgr"
            else np.asarray(cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR), dtype=np.uint8)
        )
        if annotated:
            image = annotate(image, prediction.labels, prediction.objects)
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        return encoded.tobytes() if ok else None

    def reload(self) -> dict[str, Any]:
        """Re-read the config file and apply what changed (edged/app/reload.py); systemd sees RELOADING=1, then
        READY=1 whatever the outcome (a refused reload leaves the previous config running)."""
        from edged.app.reload import reload_config

        notifier = self.notifier
        if notifier is not None:
            notifier.reloading()
        try:
            return reload_config(self)
        finally:
            if notifier is not None:
                notifier.ready(self.status_line())

    def _hosting(self, kind: str) -> dict[str, Any]:
        if self.updates is None:
            raise CommandRefused("model hosting is not configured (add a [hosting] table)")
        return self.updates.request(kind)

    def state_changed(self) -> None:
        """Publish the state now (the update thread's progress, a model change)."""
        if self.publishers is not None:
            self.publishers.publish_state(self.state())

    # ---- events, state, stats -----------------------------------------------------------------------------------
    def emit(self, event: str, fields: Mapping[str, Any]) -> None:
        self.events.event(event, dict(fields))

    def _forward_event(self, event: dict[str, Any]) -> None:
        publishers = self.publishers
        if publishers is None:
            return
        publishers.publish_event(event)
        if event["event"] in ("source_state", "paused", "resumed", "model_changed", "config_reloaded"):
            publishers.publish_state(self.state())

    def _source_state(self, state: str, detail: str) -> None:
        if state == self.stats_counters.source_state:
            return
        self.stats_counters.source_state = state
        self.emit("source_state", {"source": self.config.camera.id, "state": state, "detail": detail})
        if self.notifier is not None:
            self.notifier.status(self.status_line())

    def status_line(self) -> str:
        """systemd's STATUS=: what runs, and the source's state (not "running" while reconnecting)."""
        bundle = self.models.current if self.models else None
        name = bundle.info.name if bundle else "?"
        return f"{self.stats_counters.source_state}: {name} on {self.config.camera.id}"

    def stats_snapshot(self, reset: bool = True) -> dict[str, Any]:
        snapshot = self.stats_counters.snapshot(reset=reset)
        snapshot["device_id"] = self.config.device_id
        snapshot["at"] = utc_iso(time.time())
        snapshot["paused"] = self.paused
        if self.inference is not None:
            snapshot["seq"] = self.inference.seq
            snapshot["inference_failures"] = self.stats_counters.totals["inference_failures"]
        return snapshot

    def report_stats(self) -> str:
        """Log and publish the stats of the last interval; returns the line for systemd's STATUS=."""
        snapshot = self.stats_snapshot()
        line = "in {:.1f} fps, out {:.1f} fps, dropped {}, skipped {}, inference p50 {} ms p95 {} ms, source {}".format(
            snapshot["input_fps"], snapshot["output_fps"], snapshot["dropped"], snapshot["skipped"],
            snapshot["inference_ms"]["p50"], snapshot["inference_ms"]["p95"], snapshot["source_state"],
        )  # fmt: skip
        log.info("stats: %s", line)
        if self.publishers is not None:
            self.publishers.publish_stats(snapshot)
        return line

    # ---- stopping ------------------------------------------------------------------------------------------------
    def request_stop(self, reason: str = "stop requested", exit_code: int = EXIT_OK, log_line: str = "") -> None:
        """Ask for a clean stop; the first reason (and its exit status) is the one reported."""
        with self._stop_lock:
            if self.stop_reason is None:
                self.stop_reason = reason
                self.stop_code = exit_code
                if log_line:
                    log.info("%s", log_line)
        self.stop_event.set()

    def _on_crash(self, crash: Crash) -> None:
        self.request_stop(f"thread {crash.thread} crashed", EXIT_ERROR)

    def _input_recipe(self) -> InputRecipe | None:
        """What the capture side prepares inputs for: the model running now (a swap is noticed at the next frame)."""
        return self.models.current.recipe if self.models is not None else None

    def inference_alive(self) -> bool:
        return self._inference_thread is not None and self._inference_thread.is_alive()

    # ---- replacing parts while frames flow -----------------------------------------------------------------------
    def apply_settings(self, config: AppConfig) -> None:
        """Make `config` current: live settings (thresholds, labels, rates, ROI, orientation) apply from the next
        frame on. Parts that need rebuilding (camera, publisher, model) are replaced by the methods below."""
        self.settings.replace(config)

    def restart_capture(self, camera: SourceConfig, source: FrameSource | None = None) -> None:
        """Replace the camera; inference waits on the mailbox meanwhile and goes on with the new frames."""
        self.capture.restart(camera, self.config.pipeline.shutdown_timeout_s, source)

    def swap_publisher(self, publisher: Publisher) -> int:
        """Replace the publisher (a new broker); results it had not delivered yet go to the new one, in order."""
        assert self.publishers is not None, "start() first"
        moved = self.publishers.swap(publisher, self.runtime)
        publisher.publish_state(self.state())
        return moved

    # ---- start -----------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Load the model, open the publisher and the source, start the threads. Raises EdgedError on a bad setup,
        after releasing whatever it had started (threads, the broker connection, the model's delegate)."""
        from edged.app.startup import start_daemon

        start_daemon(self)

    def run(self, *, handle_signals: bool = True) -> int:
        """Start, supervise until stopped or finished, then shut down. Returns the exit status."""
        self.notifier = SystemdNotifier()
        supervisor = Supervisor(self, self.notifier)
        if handle_signals:
            supervisor.install_signal_handlers()
        try:
            self.start()
        except BaseException:
            supervisor.restore_signal_handlers()
            self.notifier.close()
            raise
        return supervisor.run()

    def shutdown(self, forced: threading.Event | None = None) -> int:
        from edged.app.startup import shutdown_daemon

        return shutdown_daemon(self, forced or threading.Event())

    # ---- what start() builds (used by startup.py) -----------------------------------------------------------------
    def build_model(self) -> ModelBundle:
        config = self.config

        def bundled() -> ModelBundle:
            return self._bundle or load_bundle(config.model, roi=roi_of(config))

        if config.hosting is not None:
            from edged.app.updates import Updates  # python-tuf is imported only when hosting is configured

            self.updates = Updates(self, config.hosting)
            bundle = self.updates.startup_bundle(bundled)
        else:
            bundle = bundled()
        for name in config.publisher.entity_labels():  # Home Assistant entities for labels it never reports
            try:
                known_label_index(name, bundle.spec, "publisher.labels")
            except EdgedError:
                bundle.close()
                raise
        return bundle

    def build_publisher(self) -> Publisher:
        return self._publisher or create_publisher(self.config.publisher, self.config.device_id)

    def attach(self, bundle: ModelBundle, publisher: Publisher) -> None:
        self.models = ModelManager(ModelHolder(bundle), self.events)
        self.publishers = PublisherHolder(publisher)
        self.inference = InferenceWorker(
            self.models.holder, self.mailbox, self.publishers, self.stats_counters, self.settings, self.results,
            self.stop_event, self.paused_event,
        )  # fmt: skip

    def start_inference(self) -> None:
        assert self.inference is not None
        self._inference_thread = self.threads.spawn("edged-inference", self.inference.run)

    @property
    def given_source(self) -> FrameSource | None:
        return self._source

    @property
    def retry_source(self) -> bool:
        return self._retry_source
