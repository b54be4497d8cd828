"""`edged run --config FILE`: the daemon."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from edged import logs
from edged.app.daemon import Daemon
from edged.app.supervisor import EXIT_FORCED
from edged.cli.options import add_log_format_option
from edged.config import load_config
from edged.native_logs import quiet_native_logs


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "run", help="run the daemon", description="Capture, infer and publish until stopped (SIGTERM/SIGINT)."
    )
    parser.add_argument("--config", "-c", type=Path, required=True, metavar="FILE", help="the TOML configuration")
    add_log_format_option(parser, default=argparse.SUPPRESS)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    logs.apply_config(config.log_level, config.logging.format, config.logging.levels)
    quiet_native_logs(show=logging.getLogger("edged").isEnabledFor(logging.DEBUG))
    code = Daemon(config, config_path=args.config).run()
    if code == EXIT_FORCED:
        # A forced exit must not wait for threads that are stuck (that is why it was forced).
        print(f"{logs.line_prefix(logging.ERROR)}edged: forced exit", file=sys.stderr, flush=True)
        logging.shutdown()
        os._exit(EXIT_FORCED)
    return code
