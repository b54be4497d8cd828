"""`edged hosting init | publish | rollout | withdraw | refresh | rotate-key | verify | status`: a signed model
repository that any static web host can serve, without touching TUF by hand."""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

from edged import __version__
from edged.config.hosting import HostingConfig
from edged.errors import ConfigError, HostingError
from edged.hosting import repository, rotation
from edged.hosting.checks import parse_settings
from edged.hosting.client import Catalog, HostingClient
from edged.hosting.layout import VersionMeta
from edged.hosting.selection import DeviceFacts, LocalFacts, Selection, select


def _say(message: str) -> None:
    print(f"edged: {message}", file=sys.stderr, flush=True)


def _percent(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole percentage (0 to 100)") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"{value} is not between 0 and 100")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be 1 or more")
    return value


def add_parser(commands: Any) -> None:
    hosting = commands.add_parser(
        "hosting",
        help="publish models to a signed (TUF) repository on any static web host",
        description="Create and publish a signed model repository (TUF) that any static web host can serve.",
    )
    sub = hosting.add_subparsers(dest="hosting_command", metavar="SUBCOMMAND")
    keys_help = "key directory (default: REPO_DIR-keys beside the repository)"

    p = sub.add_parser("init", help="create a repository and its ed25519 keys")
    p.add_argument("repo_dir", type=Path, metavar="REPO_DIR")
    p.add_argument("--keys", type=Path, metavar="KEY_DIR", help=keys_help)
    p.add_argument("--expires-days", type=_positive, default=365, metavar="N", help="root.json lifetime (365)")
    p.set_defaults(handler=run_init)

    p = sub.add_parser("publish", help="check a model as a device would and add it as the next version")
    p.add_argument("repo_dir", type=Path, metavar="REPO_DIR")
    p.add_argument("model", type=Path, metavar="MODEL.tflite")
    p.add_argument("--name", required=True, help="the model name devices follow ([hosting] name)")
    p.add_argument("--labels", type=Path, metavar="FILE", help="label file (default: embedded in the model)")
    p.add_argument("--edgetpu-model", type=Path, metavar="FILE", help="the Edge TPU compiled variant")
    p.add_argument("--channel", default="stable", help="channel (default stable)")
    p.add_argument("--rollout", type=_percent, default=100, metavar="PERCENT", help="share of devices (100)")
    p.add_argument("--notes", default="", metavar="TEXT", help="release notes (shown in Home Assistant)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a [model] setting")
    p.add_argument("--golden", action="append", default=[], metavar="IMAGE=EXPECTED", help="a known-answer image")
    p.add_argument("--min-edged-version", metavar="X.Y.Z", help="oldest edged that may install it")
    p.add_argument("--keys", type=Path, metavar="KEY_DIR", help=keys_help)
    p.set_defaults(handler=run_publish)

    p = sub.add_parser("rollout", help="set the share of devices that take a version")
    p.add_argument("repo_dir", type=Path, metavar="REPO_DIR")
    p.add_argument("--name", required=True)
    p.add_argument("--version", type=_positive, required=True, metavar="N")
    p.add_argument("--percent", type=_percent, required=True, metavar="P")
    p.add_argument("--keys", type=Path, metavar="KEY_DIR", help=keys_help)
    p.set_defaults(handler=run_rollout)

    p = sub.add_parser("withdraw", help="withdraw a version (devices go back to the newest one not withdrawn)")
    p.add_argument("repo_dir", type=Path, metavar="REPO_DIR")
    p.add_argument("--name", required=True)
    p.add_argument("--version", type=_positive, required=True, metavar="N")
    p.add_argument("--keys", type=Path, metavar="KEY_DIR", help=keys_help)
    p.set_defaults(handler=run_withdraw)

    p = sub.add_parser("refresh", help="re-sign timestamp (and snapshot, targets) before they expire; for cron")
    p.add_argument("repo_dir", type=Path, metavar="REPO_DIR")
    p.add_argument("--keys", type=Path, metavar="KEY_DIR", help=keys_help)
    p.set_defaults(handler=run_refresh)

    p = sub.add_parser("rotate-key", help="replace one role's key (needs the offline root key); devices follow")
    p.add_argument("repo_dir", type=Path, metavar="REPO_DIR")
    p.add_argument("--role", required=True, choices=rotation.ROLES, help="the key to replace")
    p.add_argument("--keys", type=Path, metavar="KEY_DIR", help=keys_help)
    p.set_defaults(handler=run_rotate_key)

    p = sub.add_parser("verify", help="check a served repository exactly as a device would")
    p.add_argument("url", metavar="URL")
    p.add_argument("--root", type=Path, required=True, metavar="root.json", help="the repository's root.json")
    p.add_argument("--name", help="the model a device follows (default: every model)")
    p.add_argument("--channel", default="stable", help="the device's channel (default stable)")
    p.add_argument("--device-id", default=socket.gethostname(), help="for the rollout bucket (default: hostname)")
    p.add_argument("--edgetpu", action="store_true", help="as a device with an Edge TPU")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=run_verify)

    p = sub.add_parser("status", help="what is published, by version, channel and rollout")
    p.add_argument("source", metavar="URL|REPO_DIR", help="a served repository (with --root) or a local one")
    p.add_argument("--root", type=Path, metavar="root.json", help="the repository's root.json (for a URL)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=run_status)


def run_init(args: argparse.Namespace) -> int:
    result = repository.init(args.repo_dir, args.keys, args.expires_days)
    print(f"created repository {result.repo_dir} (metadata/, targets/)")
    print(f"keys in {result.key_dir}: root key in {result.key_dir / 'root'} (move it to offline media), online")
    print(f"  keys in {result.key_dir / 'online'} (needed by publish, rollout, withdraw, refresh)")
    print(f"give every device this file once, as [hosting] trusted_root: {result.root_json}")
    print(f"root.json expires {result.root_expires:%Y-%m-%d}; run `edged hosting refresh {args.repo_dir}` daily")
    return 0


def _golden(pairs: list[str]) -> list[tuple[Path, str]]:
    found = []
    for pair in pairs:
        image, sep, expected = pair.rpartition("=")
        if not sep or not image or not expected:
            raise ConfigError(f"--golden {pair!r}: use IMAGE=EXPECTED, e.g. --golden cat.jpg=cat")
        found.append((Path(image), expected))
    return found


def run_publish(args: argparse.Namespace) -> int:
    result = repository.publish(
        args.repo_dir,
        args.model,
        args.name,
        key_dir=args.keys,
        labels=args.labels,
        edgetpu_model=args.edgetpu_model,
        channel=args.channel,
        rollout_percent=args.rollout,
        notes=args.notes,
        settings=parse_settings(args.set),
        golden=_golden(args.golden),
        min_edged_version=args.min_edged_version,
        report=_say,
    )
    print(f"published {result.name} version {result.version} on {result.channel}, rollout {result.rollout_percent}%")
    for target in result.targets:
        print(f"  {target}")
    print(f"upload {args.repo_dir} to the host (targets/ first, metadata/timestamp.json last)")
    return 0


def run_rollout(args: argparse.Namespace) -> int:
    meta = repository.rollout(args.repo_dir, args.name, args.version, args.percent, args.keys)
    print(f"{meta.name} version {meta.version}: rollout {meta.rollout_percent}%")
    return 0


def run_withdraw(args: argparse.Namespace) -> int:
    meta = repository.withdraw(args.repo_dir, args.name, args.version, args.keys)
    print(f"{meta.name} version {meta.version} withdrawn: devices go back to the newest version not withdrawn")
    return 0


def run_refresh(args: argparse.Namespace) -> int:
    result = repository.refresh(args.repo_dir, args.keys)
    print(f"re-signed: {', '.join(result.renewed)}")
    for role, expires in result.expires.items():
        print(f"  {role} expires {expires:%Y-%m-%d %H:%M}Z")
    for warning in result.warnings:
        _say(f"warning: {warning}")
    return 0


def run_rotate_key(args: argparse.Namespace) -> int:
    result = rotation.rotate(args.repo_dir, args.role, args.keys)
    if result.resumed:
        _say("finishing a rotation an earlier run left half done")
    replaced = f" instead of {', '.join(k[:12] for k in result.old_keyids)}" if result.old_keyids else ""
    print(f"the {result.role} key is now {result.new_keyid[:12]}{replaced}: root version {result.root_version} "
          "names it, signed by the root key" + (" old and new" if result.role == "root" else ""))  # fmt: skip
    if result.resigned:
        print(f"re-signed with the new key: {', '.join(result.resigned)}")
    for path in result.retired:
        print(f"the old key is kept as {path}: delete it once you no longer need it (at once if it leaked)")
    print(f"upload {args.repo_dir} to the host (targets/ first, metadata/timestamp.json last); devices fetch root "
          f"version {result.root_version} at their next check and trust only the new key from then on")  # fmt: skip
    if result.role == "root":
        print(f"the new root key is in {result.key_file}: move it to offline media")
    return 0


def _client(url: str, root: Path, name: str, channel: str, device_id: str, edgetpu: bool, state: Path) -> HostingClient:
    try:
        config = HostingConfig(url=url, name=name, trusted_root=root, channel=channel, free_space_margin_bytes=0)
    except ValueError as exc:
        raise ConfigError(f"{url}: {exc}") from exc
    return HostingClient(config, state, device_id.replace(".", "-") or "edged", has_edgetpu=edgetpu)


def _progress(received: int, total: int) -> None:
    if total and (received == total or received * 10 // total != (received - 1) * 10 // total):
        _say(f"downloaded {received}/{total} bytes ({100 * received // total}%)")


def _verdict(name: str, selection: Selection) -> dict[str, Any]:
    data: dict[str, Any] = {"name": name, "note": selection.note}
    offer = selection.offer
    if offer is not None:
        data.update(
            would_install=offer.version,
            variant=offer.variant,
            sha256=offer.sha256,
            bytes=offer.total_length,
            rollout_percent=offer.meta.rollout_percent,
            notes=offer.meta.notes,
        )
    data["skipped"] = {str(v): reason for v, reason in selection.skipped.items()}
    return data


def run_verify(args: argparse.Namespace) -> int:
    if args.root is None or not args.root.is_file():
        raise HostingError(f"--root {args.root}: no such file; give the repository's root.json")
    with tempfile.TemporaryDirectory(prefix="edged-verify-") as state:
        probe = _client(
            args.url, args.root, args.name or "any", args.channel, args.device_id, args.edgetpu, Path(state)
        )
        _say(f"refreshing metadata from {args.url} as a device would (root → timestamp → snapshot → targets)")
        catalog = probe.catalog()
        names = [args.name] if args.name else sorted(catalog.models)
        if not names:
            raise HostingError(f"{args.url} publishes no model yet; publish one with `edged hosting publish`")
        verdicts = []
        for name in names:
            device = DeviceFacts(probe.device.device_id, args.channel, args.edgetpu, __version__)
            selection = select(catalog.versions(name), device, LocalFacts())
            if selection.offer is not None:
                _say(f"{name}: downloading version {selection.offer.version} and checking its length and hashes")
                probe.download(selection.offer, _progress)
            verdicts.append(_verdict(name, selection))
    if args.json:
        print(json.dumps({"url": args.url, "models": verdicts, "broken": catalog.broken}))
    else:
        print(f"{args.url}: metadata verified (signatures, expiry, versions) with {args.root}")
        for verdict in verdicts:
            if "would_install" in verdict:
                print(
                    f"  {verdict['name']}: a device on {args.channel} would install version {verdict['would_install']}"
                    f" ({verdict['variant']}, {verdict['bytes']} bytes, sha256 {verdict['sha256'][:12]}…, rollout "
                    f"{verdict['rollout_percent']}%); its files verified"
                )
            else:
                print(f"  {verdict['name']}: nothing to install ({verdict['note']})")
            for version, reason in verdict["skipped"].items():
                print(f"    version {version}: skipped, {reason}")
        for key, reason in catalog.broken.items():
            print(f"  {key}: unreadable: {reason}")
    ok = all("would_install" in v for v in verdicts) and not catalog.broken
    return 0 if ok else 1


def _meta_row(meta: VersionMeta) -> dict[str, Any]:
    return {
        "version": meta.version,
        "channel": meta.channel,
        "rollout_percent": meta.rollout_percent,
        "withdrawn": meta.withdrawn,
        "published": meta.published,
        "notes": meta.notes,
        "edgetpu": meta.files.edgetpu is not None,
        "cpu": meta.files.cpu is not None,
        "golden": len(meta.golden),
        "min_edged_version": meta.min_edged_version,
    }


def run_status(args: argparse.Namespace) -> int:
    local = Path(args.source)
    extra: dict[str, Any] = {}
    if "://" not in args.source and local.is_dir():
        status = repository.status(local)
        models = {name: [_meta_row(m) for _, m in sorted(v.items())] for name, v in status.versions.items()}
        extra["expires"] = {role: f"{when:%Y-%m-%dT%H:%M:%SZ}" for role, when in status.expires.items()}
    else:
        if args.root is None:
            raise HostingError(f"{args.source}: give --root root.json to read a served repository")
        with tempfile.TemporaryDirectory(prefix="edged-status-") as state:
            catalog: Catalog = _client(args.source, args.root, "any", "stable", "status", False, Path(state)).catalog()
        models = {name: [_meta_row(p.meta) for _, p in sorted(v.items())] for name, v in catalog.models.items()}
        extra["broken"] = catalog.broken
    if args.json:
        print(json.dumps({"source": args.source, "models": models, **extra}))
        return 0
    for role, when in extra.get("expires", {}).items():
        print(f"{role} expires {when}")
    if not models:
        print("no model published yet")
    for name, rows in models.items():
        print(f"{name}:")
        for row in rows:
            state = "WITHDRAWN" if row["withdrawn"] else f"rollout {row['rollout_percent']}%"
            kinds = "+".join(k for k in ("cpu", "edgetpu") if row[k])
            print(
                f"  v{row['version']}  {row['channel']:<10} {state:<13} {kinds:<11} {row['published']}  {row['notes']}"
            )
    for key, reason in extra.get("broken", {}).items():
        print(f"{key}: unreadable: {reason}")
    return 0
