"""Command line: argv → config → app. The only place that prints for humans and decides exit codes."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from edged import __version__, logs
from edged.cli import bench, check_config, doctor, hosting, infer, inspect, run, service
from edged.cli.options import add_log_format_option
from edged.errors import EdgedError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edged",
        description="Run TFLite image-labeling and object-detection models on camera frames; publish over MQTT.",
    )
    parser.add_argument("--version", action="version", version=f"edged {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors on stderr")
    add_log_format_option(parser, default=None)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run.add_parser(commands)
    infer.add_parser(commands)
    bench.add_parser(commands)
    model = commands.add_parser("model", help="inspect model files")
    model_commands = model.add_subparsers(dest="model_command", metavar="SUBCOMMAND")
    inspect.add_parser(model_commands)
    hosting.add_parser(commands)
    check_config.add_parser(commands)
    doctor.add_parser(commands)
    service.add_parser(commands)
    return parser


def setup_logging(verbose: int, quiet: bool, log_format: str | None = None) -> None:
    """-v/-q and --log-format, when given, stay in force over the config file's settings (even on reload)."""
    fixed = bool(verbose or quiet)
    level = logging.WARNING if quiet else logging.DEBUG if verbose > 1 else logging.INFO
    logs.configure(log_format, level, level_fixed=fixed)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    setup_logging(args.verbose, args.quiet, args.log_format)
    try:
        return int(args.handler(args))
    except EdgedError as exc:
        print(f"{logs.line_prefix(logging.ERROR)}edged: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("edged: interrupted", file=sys.stderr)
        return 130
