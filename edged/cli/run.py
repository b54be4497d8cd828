"""`edged run --config FILE`: the daemon."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from edged.app.daemon import Daemon
from edged.config import load_config

log = logging.getLogger("edged")


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "run", help="run the daemon", description="Capture, infer and publish until stopped (SIGTERM/SIGINT)."
    )
    parser.add_argument("--config", "-c", type=Path, required=True, metavar="FILE", help="the TOML configuration")
    parser.set_defaults(handler=run)


def install_signal_handlers(daemon: Daemon) -> None:
    """First SIGTERM/SIGINT: stop cleanly. Second: exit at once (a stuck camera must not hold the service)."""
    received = {"count": 0}

    def handle(signum: int, _: FrameType | None) -> None:
        received["count"] += 1
        if received["count"] == 1:
            log.info("%s received: stopping (send it again to force)", signal.Signals(signum).name)
            daemon.request_stop()
        else:
            print("edged: forced exit", file=sys.stderr, flush=True)
            os._exit(130)

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if not args.verbose and not args.quiet:
        logging.getLogger().setLevel(config.log_level.upper())
    daemon = Daemon(config)
    install_signal_handlers(daemon)
    return daemon.run()
