"""The checks of `edged doctor` (edged/app/doctor.py runs them, each within its time limit)."""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime as dt
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from edged.app.doctor import Check, Context, Row
from edged.config.advice import config_warnings, top_level_keys
from edged.config.validate import check_file
from edged.errors import EdgedError
from edged.inference import edgetpu_devices, runtime
from edged.service.unit import UNIT_NAME

#: A clock earlier than this is certainly wrong (edged did not exist): TUF expiry checks would mislead.
EARLIEST_PLAUSIBLE = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
LOW_SPACE_BYTES = 256 * 1024 * 1024
UNIT_PLACES = (Path("/etc/systemd/system"), Path("/lib/systemd/system"), Path("/usr/lib/systemd/system"))


def _first(items: list[str], more: str = "more") -> str:
    return items[0] + (f" (and {len(items) - 1} {more})" if len(items) > 1 else "")


def check_config(context: Context) -> Row:
    path = context.config_path
    if path is None:
        return Row("config", "fail", "no config file given", "edged doctor --config /etc/edged/config.toml")
    config, problems, text = check_file(path)
    if config is None:
        return Row("config", "fail", f"invalid: {_first(problems, 'more errors')}",
                   f"edged check-config {path} lists every error with its line")  # fmt: skip
    context.config, context.config_text = config, text
    warnings = config_warnings(config, text, str(path))
    if warnings:
        return Row("config", "warn", f"valid, {len(warnings)} warning(s): {warnings[0]}",
                   f"edged check-config {path} lists every warning")  # fmt: skip
    return Row("config", "ok", f"{path} is valid")


def check_runtime(context: Context) -> Row:
    try:
        found = runtime.find_runtime()
    except EdgedError as exc:
        return Row("runtime", "fail", str(exc), "pip install ai-edge-litert (in edged's venv)")
    return Row("runtime", "ok", f"{found.name} {found.version}")


def _needs_tpu(context: Context) -> bool:
    assert context.config is not None
    model = context.config.model
    return model.accelerator == "edgetpu" or (model.accelerator == "auto" and "_edgetpu" in model.path.name)


def check_edgetpu(context: Context) -> Row:
    assert context.config is not None
    model = context.config.model
    library, version = edgetpu_devices.load_library()
    devices = edgetpu_devices.list_with_library(library) if library is not None else []
    seen = devices or edgetpu_devices.scan_usb() + edgetpu_devices.scan_pci()
    context.facts["edgetpu"] = bool(seen)
    listed = ", ".join(f"{d.type}:{d.path}" + (f" {d.note}" if d.note else "") for d in seen) or "none found"
    lib_text = f"libedgetpu {version}" if library is not None else "libedgetpu not installed"
    install = "install libedgetpu1-std from Coral's apt repository (docs/raspberry-pi.md)"
    if not _needs_tpu(context):
        if seen:
            return Row("edgetpu", "warn", f"an Edge TPU is present ({listed}; {lib_text}), but the model runs on the "
                       "CPU", "use the model compiled for the Edge TPU (edgetpu_compiler) to run on it")  # fmt: skip
        return Row("edgetpu", "ok", f"not used (the model runs on the CPU); {lib_text}")
    if library is None:
        return Row("edgetpu", "fail", f"the model needs an Edge TPU; {lib_text} ({version}); devices: {listed}",
                   install)  # fmt: skip
    if not seen:
        return Row("edgetpu", "fail", f"the model needs an Edge TPU; {lib_text}, but no device is found",
                   "plug in the Coral (USB: 1a6e:089a, 18d1:9302 once used), or install the gasket driver for a "
                   "PCIe/M.2 Coral (/dev/apex_0)")  # fmt: skip
    try:
        runtime.load_edgetpu_delegate(model.device)
    except EdgedError as exc:
        return Row(
            "edgetpu",
            "fail",
            f"devices {listed}, but the delegate does not load: {exc}",
            "check the udev rule (plugdev group) and that no other process holds the TPU (stop edged)",
        )
    return Row("edgetpu", "ok", f"{lib_text}; devices: {listed}; the delegate loads")


def check_model(context: Context) -> Row:
    from edged.inference.loader import load_bundle

    assert context.config is not None
    config = context.config.model
    try:
        bundle = load_bundle(config)
    except EdgedError as exc:
        return Row("model", "fail", str(exc), f"edged model inspect {config.path} explains what edged makes of it")
    try:
        spec = bundle.spec
        width, height = spec.input_size
        detail = (
            f"{bundle.info.name}: {spec.task} ({spec.decoder}), input {width}x{height} {spec.input.dtype}, "
            f"{len(spec.labels.names)} labels from {spec.labels.origin}, on {bundle.accelerator}, sha256 "
            f"{bundle.info.sha256[:12]}"
        )
        if spec.labels.origin == "none":
            return Row("model", "warn", detail, "give [model] labels (edged model inspect lists label files that fit)")
        return Row("model", "ok", detail)
    finally:
        bundle.close()


def check_camera(context: Context) -> Row:
    from edged.sources.base import create_source

    assert context.config is not None
    camera = context.config.camera
    source = create_source(camera)
    try:
        source.open()
        frame = source.read()
    except EdgedError as exc:
        return Row(
            "camera",
            "fail",
            f"{source.describe()}: {exc}",
            "check [camera] (the device, URL or path) and that no other process holds the camera",
        )
    finally:
        source.close()
    if frame is None:
        return Row("camera", "warn", f"{source.describe()}: opened, but it has no frame (an empty file or folder?)",
                   "check [camera]")  # fmt: skip
    return Row("camera", "ok", f"{source.describe()}: a {frame.width}x{frame.height} frame")


def camera_limit(context: Context) -> float:
    camera: Any = context.config.camera if context.config else None
    waits = [getattr(camera, key, None) for key in ("open_timeout_s", "read_timeout_s")]
    return max(context.timeout_s, sum(w for w in waits if isinstance(w, (int, float))) + 5.0)


def check_broker(context: Context) -> Row:
    assert context.config is not None
    publisher = context.config.publisher
    if publisher.type != "mqtt":
        return Row("broker", "ok", f"not used (publisher type {publisher.type!r})")
    from edged.publish.mqtt.config import MqttPublisherConfig
    from edged.publish.mqtt.probe import probe_broker

    assert isinstance(publisher, MqttPublisherConfig)
    probe = probe_broker(publisher, context.config.device_id, context.timeout_s)
    if probe.ok:
        return Row("broker", "ok", probe.detail)
    return Row(
        "broker", "fail", probe.detail, "check [publisher] host, port, tls_* and credentials (the reason says which)"
    )


def check_hosting(context: Context) -> Row:
    assert context.config is not None
    hosting = context.config.hosting
    if hosting is None:
        return Row("hosting", "ok", "not configured (the device runs [model] path)")
    from edged.hosting.client import HostingClient

    limited = hosting.model_copy(update={
        "connect_timeout_s": min(float(hosting.connect_timeout_s), context.timeout_s),
        "metadata_deadline_s": min(float(hosting.metadata_deadline_s), context.timeout_s),
    })  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="edged-doctor-") as state:
        client = HostingClient(limited, Path(state), context.config.device_id,
                               has_edgetpu=bool(context.facts.get("edgetpu")))  # fmt: skip
        try:
            offer = client.check()
        except EdgedError as exc:
            return Row(
                "hosting",
                "fail",
                str(exc),
                f"edged hosting verify {hosting.url} --root "
                f"{hosting.trusted_root} --name {hosting.name} shows the same check in detail",
            )
    selection = client.last_selection
    if offer is None:
        note = selection.note if selection is not None else "nothing selected"
        return Row("hosting", "warn", f"{hosting.url}: metadata verified with {hosting.trusted_root}, but nothing "
                   f"to install for {hosting.name!r} on {hosting.channel!r}: {note}",
                   f"publish one: edged hosting publish REPO MODEL --name {hosting.name}")  # fmt: skip
    return Row(
        "hosting",
        "ok",
        f"{hosting.url}: metadata verified with {hosting.trusted_root}; would install "
        f"{offer.name} version {offer.version} ({offer.variant}, {offer.total_length} bytes)",
    )


def hosting_limit(context: Context) -> float:
    return context.timeout_s * 5 + 5.0  # root, timestamp, snapshot, targets, index: one deadline each


def check_state_dir(context: Context) -> Row:
    assert context.config is not None
    state = Path(context.config.state_dir)
    unit = find_unit(context)
    if "state_dir" not in top_level_keys(context.config_text) and unit is not None and unit.is_file():
        from edged.service.unit import read_unit

        folders = [part for value in read_unit(unit).values("StateDirectory") for part in value.split()]
        if folders:  # what the service will use ($STATE_DIRECTORY), not this user's default
            state = Path("/var/lib") / folders[0]
    existing = state
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing != state:
        if os.access(existing, os.W_OK):
            return Row("state_dir", "ok", f"{state} does not exist yet; edged creates it (under systemd: "
                       "StateDirectory=)")  # fmt: skip
        return Row(
            "state_dir",
            "warn",
            f"{state} does not exist, and {existing} is not writable here",
            "under the systemd unit it is created at start; else create it (mkdir -p) for edged's user",
        )
    try:
        with tempfile.NamedTemporaryFile(dir=state, prefix=".doctor-"):
            pass
    except OSError as exc:
        return Row("state_dir", "fail", f"{state} is not writable: {exc.strerror or exc}",
                   "make it writable by edged's user (under the unit: leave state_dir unset)")  # fmt: skip
    free = shutil.disk_usage(state).free
    text = f"{state} is writable, {free / 2**20:.0f} MiB free"
    if free < LOW_SPACE_BYTES:
        return Row("state_dir", "warn", text, "free space there: model updates need twice their size")
    return Row("state_dir", "ok", text)


_TIME_ERROR = 5  # adjtimex(2): the clock is not synchronized


def _clock_synchronized() -> bool | None:
    """The kernel's view (adjtimex with no changes, as timedatectl's NTPSynchronized): None when unknown."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6", use_errno=True)
        buffer = ctypes.create_string_buffer(512)  # struct timex is about 208 bytes; modes = 0 reads only
        state = int(libc.adjtimex(buffer))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != _TIME_ERROR


def check_clock(context: Context) -> Row:
    now = dt.datetime.now(dt.timezone.utc)
    stamp = now.strftime("%Y-%m-%d %H:%M:%S UTC")
    if now < EARLIEST_PLAUSIBLE:
        return Row(
            "clock",
            "fail",
            f"the clock says {stamp}, before edged existed",
            "set the time (NTP: timedatectl set-ntp true); TUF metadata expiry cannot be checked until then",
        )
    synchronized = _clock_synchronized()
    if synchronized is False:
        return Row("clock", "warn", f"{stamp}, but not synchronized (a Pi without RTC starts from its last shutdown)",
                   "enable NTP (timedatectl set-ntp true) and let it sync")  # fmt: skip
    return Row("clock", "ok", stamp + (", synchronized" if synchronized else ""))


def find_unit(context: Context) -> Path | None:
    if context.unit_path is not None:
        return context.unit_path
    return next((place / UNIT_NAME for place in UNIT_PLACES if (place / UNIT_NAME).is_file()), None)


def check_sandbox(context: Context) -> Row:
    from edged.service.sandbox import sandbox_findings
    from edged.service.unit import read_unit

    assert context.config is not None
    path = find_unit(context)
    if path is None:
        return Row("sandbox", "skip", "no edged.service installed", "sudo edged service install")
    if not path.is_file():
        return Row("sandbox", "fail", f"{path} does not exist", "give the installed unit with --unit")
    state_dir_set = "state_dir" in top_level_keys(context.config_text)
    findings = sandbox_findings(read_unit(path), context.config, state_dir_set=state_dir_set)
    if not findings:
        return Row("sandbox", "ok", f"{path} lets edged reach every file, device and network the config names")
    first = findings[0]
    more = (
        f" (and {len(findings) - 1} more: " + "; ".join(f"{f.key}: {f.problem}" for f in findings[1:]) + ")"
        if findings[1:]
        else ""
    )
    return Row("sandbox", "fail", f"{first.key}: {first.problem}{more}", first.fix)


def all_checks() -> list[Check]:
    quick = lambda context: max(context.timeout_s, 30.0)  # noqa: E731 - imports and file reads, not the network
    return [
        Check("config", check_config, quick, needs_config=False),
        Check("runtime", check_runtime, quick, needs_config=False),
        Check("edgetpu", check_edgetpu, lambda c: max(c.timeout_s, 30.0)),
        Check("model", check_model, lambda c: max(c.timeout_s, 120.0)),
        Check("camera", check_camera, camera_limit),
        Check("broker", check_broker, lambda c: c.timeout_s + 5.0),
        Check("hosting", check_hosting, hosting_limit),
        Check("state_dir", check_state_dir, quick),
        Check("clock", check_clock, quick, needs_config=False),
        Check("sandbox", check_sandbox, quick),
    ]
