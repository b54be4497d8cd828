"""`sudo edged service install [--config FILE] [--prefix DIR] [--root DIR]` and `edged service uninstall`: the
hardened unit, /etc/edged/config.toml (never overwritten), a TUF root, secrets as systemd credentials, then
`systemctl daemon-reload` and the next steps. `--root DIR` writes into a staging folder (packaging, the tests) and
leaves systemctl alone."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any

from edged.errors import ConfigError
from edged.service.install import Report, install, uninstall
from edged.service.unit import DEFAULT_PREFIX


def _credential(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"{text!r}: use NAME=FILE, e.g. mqtt-password=/root/mqtt-password")
    return name, Path(path)


def default_prefix() -> PurePosixPath:
    """The environment this edged runs from (a venv such as /opt/edged), else /opt/edged."""
    here = Path(sys.prefix)
    return PurePosixPath(here) if (here / "bin" / "edged").exists() else DEFAULT_PREFIX


def add_parser(commands: Any) -> None:
    service = commands.add_parser(
        "service", help="install edged as a systemd service", description="Install or remove the systemd service."
    )
    sub = service.add_subparsers(dest="service_command", metavar="SUBCOMMAND")
    p = sub.add_parser("install", help="install the unit, /etc/edged/config.toml, credentials; daemon-reload")
    p.add_argument("--config", type=Path, metavar="FILE", help="install this config (default: the example)")
    p.add_argument("--prefix", type=PurePosixPath, metavar="DIR",
                   help="where edged is installed (default: the one running, else /opt/edged)")  # fmt: skip
    p.add_argument("--root", type=Path, default=Path("/"), metavar="DIR",
                   help="write under DIR instead of / (packaging); systemctl is not run")  # fmt: skip
    p.add_argument("--trusted-root", type=Path, metavar="root.json", help="copy to /etc/edged/root.json")
    p.add_argument("--model", type=Path, metavar="FILE", help="copy to /var/lib/edged/models/ and use it")
    p.add_argument("--credential", type=_credential, action="append", default=[], metavar="NAME=FILE",
                   help="a secret for LoadCredential= (e.g. mqtt-password=FILE); repeatable")  # fmt: skip
    p.set_defaults(handler=run_install)
    p = sub.add_parser("uninstall", help="remove the unit; keep the config and the state")
    p.add_argument("--root", type=Path, default=Path("/"), metavar="DIR", help="remove under DIR instead of /")
    p.set_defaults(handler=run_uninstall)


def _live(root: Path) -> bool:
    return root.resolve() == Path("/")


def _require_root(root: Path) -> None:
    if _live(root) and os.geteuid() != 0:
        raise ConfigError("installing a system service needs root: run it with sudo (or give --root DIR to stage it)")


def _systemctl(*args: str) -> str | None:
    """Run systemctl when systemd runs this machine; None when done, else what to run by hand."""
    command = ["systemctl", *args]
    if shutil.which("systemctl") is None or not Path("/run/systemd/system").is_dir():
        return " ".join(command)
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        print(f"edged: warning: {' '.join(command)} failed: {done.stderr.strip()}", file=sys.stderr)
        return " ".join(command)
    return None


def _print(report: Report, verb: str) -> None:
    for path in report.written:
        print(f"wrote {path}")
    for path in report.removed:
        print(f"removed {path}")
    for path in report.kept:
        print(f"kept {path}" + (" (not overwritten)" if verb == "install" and path.is_file() else ""))
    for warning in report.warnings:
        print(f"edged: warning: {warning}", file=sys.stderr)


def run_install(args: argparse.Namespace) -> int:
    _require_root(args.root)
    prefix = args.prefix or default_prefix()
    report = install(args.root, prefix, config=args.config, trusted_root=args.trusted_root, model=args.model,
                     credentials=dict(args.credential))  # fmt: skip
    _print(report, "install")
    steps = list(report.next_steps)
    if _live(args.root):
        manual = _systemctl("daemon-reload")
        if manual:
            steps.insert(0, manual)
        else:
            print("ran systemctl daemon-reload")
    else:
        print(f"staged under {args.root} (systemctl not run)")
    print("next:")
    for number, step in enumerate(steps, start=1):
        print(f"  {number}. {step}")
    return 0


def run_uninstall(args: argparse.Namespace) -> int:
    _require_root(args.root)
    if _live(args.root):
        _systemctl("disable", "--now", "edged")
    report = uninstall(args.root)
    _print(report, "uninstall")
    if _live(args.root) and report.removed:
        manual = _systemctl("daemon-reload")
        if manual:
            print(f"run: {manual}")
    return 0
