"""The supervisor: the daemon's main loop. Signal handlers only set flags; this loop acts on them, reports stats
on a timer, feeds systemd's watchdog while the pipeline makes progress, and turns what happened into the exit
status (uvicorn's handle_<signal> habit). SIGHUP (`systemctl reload`) only sets a flag too: the loop hands a
`reload` command to the daemon's dispatcher, which re-reads the config file (edged/app/reload.py).

- 0: a clean stop, or a finite source (a file, a folder) finished;
- 1: an error: the source failed for good, a worker thread died of a bug, results could not be delivered within
  the stop time limit, or a thread was still stuck at the stop deadline;
- 130: forced by a second SIGTERM or SIGINT (whichever it was);
- 141: standard output's reader went away (`edged run ... | head`), as a Unix filter would report.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING

from edged.app.liveness import Liveness
from edged.app.sdnotify import SystemdNotifier
from edged.app.stackdump import DUMP_SIGNAL, dump_stacks

if TYPE_CHECKING:
    from edged.app.daemon import Daemon

log = logging.getLogger("edged")

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_FORCED = 130
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
RELOAD_SIGNAL = signal.SIGHUP


class Supervisor:
    def __init__(self, daemon: Daemon, notifier: SystemdNotifier) -> None:
        self.daemon = daemon
        self.notifier = notifier
        self.forced = threading.Event()
        self.signals_received = 0
        self.reload_requested = False
        self.reloads_submitted = 0
        self._previous_handlers: dict[int, object] = {}

    # ---- signals: flags only ---------------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        """Only from the main thread (Python's rule); `edged run` does, an embedded daemon need not."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in STOP_SIGNALS:
            self._previous_handlers[sig] = signal.signal(sig, self._handle_stop_signal)
        self._previous_handlers[RELOAD_SIGNAL] = signal.signal(RELOAD_SIGNAL, self._handle_reload_signal)
        self._previous_handlers[DUMP_SIGNAL] = signal.signal(DUMP_SIGNAL, dump_stacks)  # what a hung daemon does

    def restore_signal_handlers(self) -> None:
        for sig, handler in self._previous_handlers.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous_handlers.clear()

    def _handle_stop_signal(self, signum: int, _: FrameType | None) -> None:
        self.signals_received += 1
        name = signal.Signals(signum).name
        if self.signals_received == 1:
            self.daemon.request_stop(f"{name} received", EXIT_OK, log_line=f"{name} received: stopping (send it "
                                     "again to force)")  # fmt: skip
        else:
            self.forced.set()
            self.daemon.stop_event.set()

    def _handle_reload_signal(self, signum: int, _: FrameType | None) -> None:
        self.reload_requested = True  # several SIGHUPs before the loop looks are one reload

    def _submit_reload(self) -> None:
        from edged.publish.base import CommandRequest

        self.reload_requested = False
        self.reloads_submitted += 1
        log.info("SIGHUP received: reloading the configuration")
        self.daemon.submit(CommandRequest("reload", b"{}", origin="signal"), lambda reply: None)

    # ---- the loop ------------------------------------------------------------------------------------------
    def run(self) -> int:
        """Supervise until the daemon should stop, then shut it down; returns the exit status."""
        daemon = self.daemon
        assert daemon.inference is not None
        liveness = Liveness(self.notifier, daemon.inference, daemon.emit)
        daemon.liveness = liveness
        self.notifier.ready(daemon.status_line())
        generation = daemon.settings.generation
        last_stats = time.monotonic()
        next_stats = last_stats + daemon.settings.current.pipeline.stats_interval_s
        try:
            while not daemon.stop_event.is_set():
                if not self._pipeline_goes_on():
                    break
                if self.reload_requested:
                    self._submit_reload()
                daemon.stop_event.wait(min(0.5, max(0.0, next_stats - time.monotonic())))
                now = time.monotonic()
                liveness.tick(now)
                if daemon.settings.generation != generation:  # a reload may have changed stats_interval_s
                    generation = daemon.settings.generation
                    next_stats = last_stats + daemon.settings.current.pipeline.stats_interval_s
                if now >= next_stats:
                    self.notifier.status(daemon.report_stats())
                    last_stats = now
                    next_stats = max(next_stats + daemon.settings.current.pipeline.stats_interval_s, now)
            if self.forced.is_set():
                return self._forced()
            self.notifier.stopping()
            code = daemon.shutdown(self.forced)
            return self._forced() if self.forced.is_set() else code
        finally:
            self.notifier.close()
            self.restore_signal_handlers()

    def _pipeline_goes_on(self) -> bool:
        """False when the capture side ended (finished or failed) and inference has drained the last frame."""
        daemon = self.daemon
        outcome = daemon.capture.outcome
        if outcome == "failed":
            daemon.request_stop("the source failed", EXIT_ERROR)
            return False
        if outcome == "finished":
            daemon.mailbox.close()  # inference takes the frame still in the slot, then ends
            if not daemon.inference_alive():
                daemon.request_stop("source finished", EXIT_OK)
                return False
        elif not daemon.inference_alive():
            daemon.request_stop("the inference thread ended", EXIT_ERROR)
            return False
        return True

    def _forced(self) -> int:
        log.error("forced exit: a second stop signal arrived before the clean stop finished")
        return EXIT_FORCED
