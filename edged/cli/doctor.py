"""`edged doctor [--config FILE] [--json]`: why the camera, the model, the TPU, the broker or the model host would
not work, in one place: one row per check, OK / WARN / FAIL with a one-line fix. Exit 1 when a check fails."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from edged.app.doctor import Context, run_checks
from edged.app.doctor_checks import all_checks

DEFAULT_CONFIG = Path("/etc/edged/config.toml")
_WORDS = {"ok": "OK", "warn": "WARN", "fail": "FAIL", "skip": "SKIP"}


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "doctor", help="check everything edged needs: config, runtime, model, TPU, camera, broker, hosting, ...",
        description="Check everything edged needs, one row per check with a fix; exit 1 when one fails.",
    )  # fmt: skip
    parser.add_argument("--config", "-c", type=Path, default=DEFAULT_CONFIG, metavar="FILE",
                        help=f"the configuration (default {DEFAULT_CONFIG})")  # fmt: skip
    parser.add_argument(
        "--unit",
        type=Path,
        metavar="FILE",
        help="the installed unit to check the sandbox of (default: the installed edged.service)",
    )
    parser.add_argument("--timeout", type=float, default=10.0, metavar="S",
                        help="time limit of each network wait (default 10 s)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if not args.verbose:  # the checks' own log lines (model loading, MQTT) would interleave with the table
        logging.getLogger().setLevel(logging.ERROR)
    context = Context(config_path=args.config, timeout_s=args.timeout, unit_path=args.unit)
    rows, abandoned = run_checks(all_checks(), context)
    failed = any(row.status == "fail" for row in rows)
    if args.json:
        print(json.dumps({"config": str(args.config), "ok": not failed, "checks": [r.as_dict() for r in rows]}))
    else:
        width = max(len(row.name) for row in rows)
        for row in rows:
            print(f"{_WORDS[row.status]:<4}  {row.name:<{width}}  {row.detail}")
            if row.fix and row.status != "ok":
                print(f"{'':<4}  {'':<{width}}  fix: {row.fix}")
    code = 1 if failed else 0
    if abandoned:  # a check is still stuck in a driver or network call: do not wait for it at exit
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
