"""`edged check-config FILE`: every error at once, each with its TOML key and line, and warnings for settings that
are valid but suspicious. Exit status 0 when the file is valid, 2 when it is not, so `ExecReload=` and
`ExecStartPre=` can call it; `--show` prints the effective config, defaults included, secrets masked."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from edged.config.advice import config_warnings
from edged.config.render import render_toml
from edged.config.validate import check_file
from edged.sources.locations import mask_url

EXIT_VALID = 0
EXIT_INVALID = 2


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "check-config",
        help="check a config file: every error with its key and line, and warnings",
        description="Check a config file without running it: exit 0 when valid, 2 when not.",
    )
    parser.add_argument("config", type=Path, metavar="FILE", help="the TOML configuration")
    parser.add_argument("--show", action="store_true", help="print the effective config (defaults included)")
    parser.add_argument("--strict", action="store_true", help="count warnings as errors (exit 2)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    config, errors, text = check_file(args.config)
    warnings = config_warnings(config, text, str(args.config)) if config is not None else []
    valid = config is not None and not (args.strict and warnings)
    if args.json:
        payload: dict[str, Any] = {"file": str(args.config), "valid": valid, "errors": errors, "warnings": warnings}
        if args.show and config is not None:
            payload["effective"] = json.loads(config.model_dump_json())
            _mask_strings(payload["effective"])
        print(json.dumps(payload))
        return EXIT_VALID if valid else EXIT_INVALID
    for problem in errors:
        print(f"error: {problem}")
    for warning in warnings:
        print(f"warning: {warning}")
    if config is None:
        print(f"{args.config}: invalid ({len(errors)} error{'s' if len(errors) != 1 else ''}); edged would refuse it")
        return EXIT_INVALID
    if args.show:
        print(f"# the effective configuration of {args.config}, defaults included")
        print(render_toml(config, mask=mask_url), end="")
    if not args.quiet:
        verdict = "valid" if valid else "refused by --strict"
        suffix = f", {len(warnings)} warning{'s' if len(warnings) != 1 else ''}" if warnings else ""
        print(f"{args.config}: {verdict}{suffix}")
    return EXIT_VALID if valid else EXIT_INVALID


def _mask_strings(value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str):
                value[key] = mask_url(item)
            else:
                _mask_strings(item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, str):
                value[index] = mask_url(item)
            else:
                _mask_strings(item)
