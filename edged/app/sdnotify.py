"""systemd's notify protocol: READY once the pipeline runs, RELOADING then READY around a reload, STATUS lines,
STOPPING, and watchdog keep-alives.

Under `Type=notify` systemd reports edged as started only once the model is loaded and the threads run, and with
`WatchdogSec=` it restarts edged when the keep-alives stop. The daemon sends them only while the inference
thread makes progress, so a model stuck in `invoke()` (a hung Edge TPU or driver, which Python cannot
interrupt) gets the process restarted instead of a sensor that silently says nothing. Outside systemd
(`NOTIFY_SOCKET` unset) every call is a no-op. The protocol is a datagram of `KEY=value` lines on the
AF_UNIX socket named by `$NOTIFY_SOCKET` (`@` means the abstract namespace); see sd_notify(3).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)


class SystemdNotifier:
    """Sends sd_notify messages when systemd asked for them; never raises (a lost notification is not fatal)."""

    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        address = environ.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self._socket: socket.socket | None = None
        self._failed = False
        self._lock = threading.Lock()  # the supervisor and the capture thread (source state) both report
        self.watchdog_s = _watchdog_interval(environ)

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def ready(self, status: str) -> None:
        self._send(f"READY=1\nSTATUS={status}")

    def status(self, status: str) -> None:
        self._send(f"STATUS={status}")

    def reloading(self, status: str = "reloading the configuration") -> None:
        """The start of a reload (the `Type=notify-reload` protocol; systemd 252 honours it under Type=notify too):
        systemd shows the unit as reloading until the next READY=1. MONOTONIC_USEC is CLOCK_MONOTONIC now, which
        lets systemd tell this reload from an older one."""
        self._send(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}\nSTATUS={status}")

    def stopping(self) -> None:
        self._send("STOPPING=1")

    def watchdog(self) -> None:
        if self.watchdog_s is not None:
            self._send("WATCHDOG=1")

    def close(self) -> None:
        with self._lock:
            sock, self._socket = self._socket, None
        if sock is not None:
            sock.close()

    def _send(self, message: str) -> None:
        if not self._address:
            return
        with self._lock:
            if self._failed:
                return
            try:
                if self._socket is None:
                    self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                # Never block the daemon: a receiver that does not read (its queue holds only
                # net.unix.max_dgram_qlen datagrams) loses this message instead.
                self._socket.sendto(message.encode(), socket.MSG_DONTWAIT, self._address)
            except BlockingIOError:
                log.debug("systemd's notify socket is full; dropped %r", message.split("\n", 1)[0])
            except OSError as exc:
                self._failed = True  # say it once; systemd will report the missing READY or keep-alives itself
                log.error("cannot notify systemd through %s: %s", os.environ.get("NOTIFY_SOCKET"), exc)


def _watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """WatchdogSec in seconds when systemd set it for this very process (WATCHDOG_PID), else None."""
    usec, pid = environ.get("WATCHDOG_USEC", ""), environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None  # inherited from a parent that systemd watches, not meant for us
    return int(usec) / 1_000_000
