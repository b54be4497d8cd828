"""The HTTP server behind the status page: waitress, with edged's own supervised threads.

Why waitress (README, dependency notes): a production WSGI server in pure Python with no dependencies of its own,
maintained by the Pylons project, built on threads (edged's one concurrency model) with a bounded output buffer
per connection, and it lets its worker threads be started by edged (`start_new_thread` below), so every thread is
still supervised and named. Its HTTP parsing is waitress's, not ours.

One thread runs waitress's socket loop (`edged-http`), a fixed pool runs requests (`edged-http-N`): enough for the
capped live views and event streams plus a few quick requests, so a full set of viewers never blocks the API.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from waitress import wasyncore
from waitress.server import create_server
from waitress.task import ThreadedTaskDispatcher

from edged.app.threads import Threads
from edged.app.web.api import WebApp
from edged.config.http import HttpConfig
from edged.errors import ConfigError

log = logging.getLogger("edged.app.web")

#: Threads for quick requests besides the ones live views and event streams may hold.
QUICK_THREADS = 4
#: A live view that stops reading holds at most this much in its connection's buffer (then its thread waits,
#: and frames are lost for that client only). Below waitress's spill-to-disk size (outbuf_overflow, 1 MiB).
OUTPUT_HIGH_WATERMARK = 512 * 1024
STOP_WAIT_S = 5.0


class SupervisedDispatcher(ThreadedTaskDispatcher):  # type: ignore[misc]
    """waitress's worker pool, its threads started through edged's supervised thread starter."""

    def __init__(self, threads: Threads) -> None:
        super().__init__()
        self._threads = threads

    def start_new_thread(self, target: Callable[[int], None], thread_no: int) -> None:
        self._threads.spawn(f"edged-http-{thread_no}", lambda: target(thread_no))


class WebServer:
    def __init__(self, app: WebApp, config: HttpConfig, threads: Threads) -> None:
        self.app = app
        self.config = config
        self._threads = threads
        self._dispatcher = SupervisedDispatcher(threads)
        self._loop: threading.Thread | None = None
        self._server: Any = None
        self._closed = threading.Event()

    def start(self) -> None:
        config = self.config
        count = config.max_streams + config.max_event_streams + QUICK_THREADS
        try:
            server = create_server(
                self.app, host=config.host, port=config.port, _dispatcher=self._dispatcher, ident="edged",
                threads=count, outbuf_high_watermark=OUTPUT_HIGH_WATERMARK, channel_timeout=60,
                connection_limit=64, clear_untrusted_proxy_headers=True, expose_tracebacks=False,
            )  # fmt: skip
        except OSError as exc:
            raise ConfigError(f"http.listen = {config.listen!r}: cannot listen there: {exc.strerror or exc}") from exc
        except ValueError as exc:  # waitress: an address that does not resolve
            raise ConfigError(f"http.listen = {config.listen!r}: {exc}") from exc
        self._server = server
        self._dispatcher.set_thread_count(count)
        self._loop = self._threads.spawn("edged-http", self._run)
        log.info("HTTP: status page on %s (auth: %s)", self.url, config.auth)

    @property
    def port(self) -> int:
        """The port actually bound (differs from the config's when it asked for port 0)."""
        return int(self._server.effective_port) if self._server is not None else self.config.port

    @property
    def url(self) -> str:
        host = self.config.host
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}/"

    def _run(self) -> None:
        try:
            self._server.run()
        except OSError:  # the socket loop ends by its sockets being closed under it at the stop
            if not self._closed.is_set():
                raise

    def stop(self) -> None:
        """Close every connection and the listening socket from inside the loop, then end the worker pool, then the
        loop's trigger (last: a worker finishing a response pulls it, and a closed pipe's number may already belong
        to another file by then)."""
        server = self._server
        if server is None or self._closed.is_set():
            return
        self.app.stopping.set()  # long responses end at their next wake-up
        closed = threading.Event()
        trigger = server.trigger

        def close_all() -> None:
            for dispatcher in list(server._map.values()):
                if dispatcher is trigger:
                    continue
                try:  # a connection's handle_close also wakes a thread waiting to write to it
                    dispatcher.handle_close() if hasattr(dispatcher, "outbuf_lock") else wasyncore.dispatcher.close(
                        dispatcher
                    )
                except Exception:  # closing is best effort; the process is stopping
                    log.debug("HTTP: while closing %r", dispatcher, exc_info=True)
            closed.set()

        self._closed.set()
        try:
            trigger.pull_trigger(close_all)
        except OSError as exc:  # the loop cannot be woken (its trigger is gone): close from here, best effort
            log.debug(
                "HTTP: could not wake the server loop (%s); closing its connections from the stopping thread", exc
            )
            close_all()
        if not closed.wait(STOP_WAIT_S):
            log.warning("HTTP: the server loop did not close its connections within %.0f s", STOP_WAIT_S)
        self._dispatcher.shutdown(timeout=STOP_WAIT_S)  # no worker can pull the trigger after this
        try:  # the trigger is the loop's last file: closing it from inside ends the loop
            trigger.pull_trigger(trigger.close)
        except OSError:
            trigger.close()
        if self._loop is not None:
            self._loop.join(STOP_WAIT_S)
