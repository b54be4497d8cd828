"""Starting and stopping the daemon: in order, releasing what was started when a step fails, and within the
stop time limit (every wait is sliced, so a second signal forces the exit at once)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from edged.app.supervisor import EXIT_ERROR

if TYPE_CHECKING:
    from edged.app.daemon import Daemon
    from edged.inference.engine import ModelBundle

log = logging.getLogger("edged.app.daemon")

SLICE_S = 0.1


def start_daemon(daemon: Daemon) -> None:
    undo: list[Callable[[], None]] = []
    try:
        _start(daemon, undo)
    except BaseException:
        for step in reversed(undo):
            try:
                step()
            except Exception:  # releasing is best effort; the original error is the one to report
                log.debug("while undoing a failed start", exc_info=True)
        raise


def _start(daemon: Daemon, undo: list[Callable[[], None]]) -> None:
    config = daemon.config
    bundle = daemon.build_model()
    undo.append(bundle.close)
    log.info("model %s", describe_bundle(bundle))
    publisher = daemon.build_publisher()
    daemon.attach(bundle, publisher)
    dispatcher = daemon.dispatcher
    command_threads = [
        daemon.threads.spawn("edged-commands", dispatcher.run_quick),
        daemon.threads.spawn("edged-commands-long", dispatcher.run_long),
    ]

    def stop_commands() -> None:
        dispatcher.stop()
        for thread in command_threads:
            thread.join(2.0)

    undo.append(stop_commands)
    if config.http is not None:
        from edged.app.web import start_web  # waitress and prometheus-client only when [http] is on

        daemon.web = start_web(daemon)
        undo.append(daemon.web.stop)
    publisher.start(daemon.runtime)
    undo.append(publisher.stop)
    worker = daemon.capture.open(config.camera, daemon.given_source, retry=daemon.retry_source)
    undo.append(worker.source.close)
    assert daemon.inference is not None and daemon.publishers is not None
    daemon.publishers.publish_state(daemon.state())
    daemon.emit("started", {"run_id": daemon.inference.run_id, "source": worker.source.describe()})
    daemon.start_inference()
    undo.append(lambda: _stop_threads(daemon))
    daemon.capture.start(worker)
    if daemon.updates is not None:
        updates = daemon.updates
        thread = daemon.threads.spawn("edged-updates", updates.run)
        daemon.update_thread = thread

        def stop_updates() -> None:
            updates.stop()
            thread.join(2.0)

        undo.append(stop_updates)
    daemon.started.set()


_DETECTORS = {"ssd": "an SSD detector", "yolov5": "a YOLOv5 detector", "yolov8": "a YOLOv8 detector"}


def describe_bundle(bundle: ModelBundle) -> str:
    """'shapes_yolov8_int8 (sha256 5673badce538…): a YOLOv8 detector with 3 labels, on the CPU', for the log."""
    spec = bundle.spec
    detector = _DETECTORS.get(spec.decoder, f"a {spec.decoder} detector")
    kind = "a classifier" if spec.task == "classification" else detector
    where = "the CPU" if bundle.accelerator == "cpu" else f"the Edge TPU ({bundle.accelerator})"
    count = len(spec.labels.names)
    labels = f"{count} label{'s' if count != 1 else ''}"
    return f"{bundle.info.name} (sha256 {bundle.info.sha256[:12]}…): {kind} with {labels}, on {where}"


def _stop_threads(daemon: Daemon) -> None:
    daemon.stop_event.set()
    daemon.capture.stop(1.0)
    daemon.mailbox.close()
    if daemon._inference_thread is not None:
        daemon._inference_thread.join(2.0)


def _wait(done: Callable[[], bool], wait_step: Callable[[float], object], deadline: float,
          forced: threading.Event) -> bool:  # fmt: skip
    """Wait in short slices until `done()`, the deadline, or a forced exit; returns done()."""
    while not done() and not forced.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        wait_step(min(SLICE_S, remaining))
    return done()


def shutdown_daemon(daemon: Daemon, forced: threading.Event) -> int:
    """Stop capture, finish the frame in flight, flush the publisher, all within shutdown_timeout_s."""
    deadline = time.monotonic() + daemon.config.pipeline.shutdown_timeout_s
    daemon.request_stop()  # no-op when a reason was given already
    if daemon.updates is not None:
        daemon.updates.stop()
    code = daemon.stop_code
    reason = daemon.stop_reason or "stop requested"
    capture_stopped = daemon.capture.stop(max(0.0, min(SLICE_S, deadline - time.monotonic())))
    daemon.mailbox.close()
    thread = daemon._inference_thread
    if thread is not None and not _wait(lambda: not thread.is_alive(), thread.join, deadline, forced):
        if forced.is_set():
            return code
        log.error("the frame in flight did not finish within the shutdown time limit")
        code = EXIT_ERROR
    if not capture_stopped:
        worker = daemon.capture.worker
        capture_stopped = worker is None or _wait(lambda: not daemon.capture.alive, lambda s: time.sleep(s),
                                                  deadline, forced)  # fmt: skip
        if not capture_stopped and not forced.is_set():
            stuck = worker.stuck_for(time.monotonic()) if worker is not None else 0.0
            log.error(
                "the capture thread is still inside %s after the %.0f s stop limit (stuck for %.1f s in a driver or "
                "network call that does not return); exiting without it",
                worker.source.describe() if worker else "the source", daemon.config.pipeline.shutdown_timeout_s, stuck,
            )  # fmt: skip
            code = EXIT_ERROR
    if forced.is_set():
        return code
    if daemon.web is not None:
        daemon.web.stop()
    publishers = daemon.publishers
    if publishers is not None:
        daemon.emit("stopped", {"reason": _public_reason(reason)})
        publishers.publish_stats(daemon.stats_snapshot())
        publisher = publishers.current
        if not _wait(lambda: publisher.flush(0.0), publisher.flush, deadline, forced):
            if forced.is_set():
                return code
            log.error("some messages were not delivered within the shutdown time limit")
            code = EXIT_ERROR
        publisher.stop()
    daemon.dispatcher.stop()
    update_thread = daemon.update_thread
    if update_thread is not None:
        _wait(lambda: not update_thread.is_alive(), update_thread.join, max(deadline, time.monotonic() + 1.0), forced)
    if daemon.models is not None and (thread is None or not thread.is_alive()):
        daemon.models.close()
    if daemon.capture.outcome == "failed":
        code = EXIT_ERROR
    if code == 0 and daemon.threads.crash is not None:
        code = EXIT_ERROR
    return code


def _public_reason(reason: str) -> str:
    """The `stopped` event's reason, from the fixed list in edged/schemas/event.schema.json."""
    if reason == "source finished":
        return "source finished"
    if reason.startswith("thread ") or reason == "the inference thread ended":
        return "crashed"
    if reason == "the source failed":
        return "source failed"
    if reason.startswith("the reader of standard output"):
        return "output closed"
    return "stop requested"
