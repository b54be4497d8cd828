"""Live reload (SIGHUP, `systemctl reload edged`, the `reload` command): re-read the config file and apply it with
the least disruption, or refuse it and keep running the previous one.

- An invalid file is refused with every problem's key and line (logged, and published as `config_rejected`).
- Keys that cannot change live (`device_id`, `state_dir`, and any table this module does not know) refuse the
  whole reload, naming the key and why: nothing is half-applied.
- Everything else is prepared off the hot path first (a new model bundle loaded and warmed up, a new camera
  opened, a new publisher built and its credentials and TLS files checked), so a failure there changes nothing.
- Then a changed publisher takes the new settings in place when it can (MQTT: mode, rates, QoS), or is replaced:
  the old one is stopped, the new one started, and the old one's undelivered results move to it, in order.
- Then, between two frames (holding the inference worker's frame lock), the new config becomes current
  (thresholds, labels, rates, ROI, orientation, stats interval, hosting settings apply from the next frame) and
  the new model is activated through the model manager. Last, the capture side switches to the new camera while
  inference waits on the mailbox.

`run_id` and `seq` live in the inference worker, which is never replaced, so they carry on.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from pydantic import BaseModel

from edged import logs
from edged.app.capture import CaptureWorker
from edged.app.inference import roi_of
from edged.config.app import AppConfig
from edged.config.errors import line_of
from edged.config.validate import check_file
from edged.errors import CommandRefused, EdgedError
from edged.inference.engine import ModelBundle, decode_params, known_label_index
from edged.inference.loader import load_bundle
from edged.publish.base import Publisher, create_publisher

if TYPE_CHECKING:
    from edged.app.daemon import Daemon
    from edged.hosting.store import InstalledVersion

log = logging.getLogger(__name__)

#: Top-level keys a running daemon cannot change, and why (a restart applies them).
FIXED_KEYS: Mapping[str, str] = {
    "device_id": "it names the device in MQTT topics and client ids, Home Assistant and rollout buckets",
    "state_dir": "the installed model versions and the crash-safe state file live there",
    "http": "the status page's server was started with it (address, token, limits)",
}
#: Top-level tables read from the current config wherever they are used: a new value applies from the next frame.
LIVE_TABLES = frozenset({"log_level", "logging", "pipeline", "hosting"})
#: [model] keys the inference worker folds into the decode parameters at a frame boundary: no new bundle needed.
DECODE_KEYS = frozenset(
    {"threshold", "label_thresholds", "include_labels", "exclude_labels", "top_k", "nms_iou", "max_detections"}
)
#: How long a reload waits for the frame in flight before giving up (a model stuck in invoke()).
FRAME_WAIT_S = 10.0


def changed_keys(old: BaseModel, new: BaseModel, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ; a table whose type changed (`[camera] type`) is one key."""
    found: list[str] = []
    for name in type(old).model_fields:
        before, after = getattr(old, name), getattr(new, name, None)
        key = f"{prefix}{name}"
        if isinstance(before, BaseModel) and isinstance(after, BaseModel) and type(before) is type(after):
            found.extend(changed_keys(before, after, key + "."))
        elif before != after:
            found.append(key)
    return found


@dataclass(frozen=True)
class ReloadPlan:
    """What a new config changes, and which parts must be rebuilt for it (pure: no I/O)."""

    changed: tuple[str, ...]
    refused: dict[str, str] = field(default_factory=dict)

    def under(self, table: str) -> list[str]:
        return [key for key in self.changed if key == table or key.startswith(table + ".")]

    @property
    def model_keys(self) -> list[str]:
        """[model] keys that need a new bundle (file, labels, decoder, input handling, accelerator, name)."""
        return [key for key in self.under("model") if key.removeprefix("model.").split(".")[0] not in DECODE_KEYS]

    @property
    def camera(self) -> bool:
        return bool(self.under("camera"))

    @property
    def publisher(self) -> bool:
        return bool(self.under("publisher"))


#: [hosting] keys that name another repository or model: the installed versions and the verified metadata belong
#: to the old ones, so a change needs a restart (as does adding or removing the table: the update thread).
FIXED_HOSTING_KEYS: Mapping[str, str] = {
    "hosting.name": "the installed versions are versions of the model it names",
    "hosting.trusted_root": "the verified metadata in state_dir was bootstrapped from it",
}
#: [model] keys a hosted version takes from the device's own table (hardware choices); the rest of [model]
#: describes the bundled model, which a running hosted version does not use.
HOSTED_DEVICE_KEYS = frozenset({"accelerator", "device", "num_threads"})


def plan_reload(old: AppConfig, new: AppConfig) -> ReloadPlan:
    changed = tuple(changed_keys(old, new))
    refused: dict[str, str] = {}
    for key in changed:
        top = key.split(".")[0]
        if top in FIXED_KEYS:
            refused[top] = FIXED_KEYS[top]
        elif key == "hosting":
            refused[key] = "adding or removing [hosting] starts or stops the update thread"
        elif key in FIXED_HOSTING_KEYS:
            refused[key] = FIXED_HOSTING_KEYS[key]
        elif top not in LIVE_TABLES and top not in ("model", "camera", "publisher"):
            refused[top] = "edged cannot apply it to a running daemon yet"
    return ReloadPlan(changed, refused)


@dataclass
class Prepared:
    """The parts built for a reload before anything is switched; released again if the reload is refused."""

    bundle: ModelBundle | None = None
    bundle_reason: str = ""
    replaces: ModelBundle | None = None  # the bundle running when `bundle` was prepared
    model_note: str = ""  # why [model] changes were not applied to the running model (a hosted version runs)
    capture: CaptureWorker | None = None
    publisher: Publisher | None = None
    publisher_started: bool = False

    def release(self) -> None:
        if self.bundle is not None:
            self.bundle.close()
        if self.capture is not None:
            self.capture.source.close()
        if self.publisher is not None and self.publisher_started:
            self.publisher.stop()


def _file_sha256(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def _running_hosted(daemon: Daemon) -> InstalledVersion | None:
    """The hosted version the running bundle is, or None (the bundled model runs, or no [hosting])."""
    updates, models = daemon.updates, daemon.models
    if updates is None or models is None:
        return None
    installed = updates.store.current()
    if installed is None or models.current.info.sha256 not in installed.files.values():
        return None
    return installed


def prepare_model(daemon: Daemon, new: AppConfig, plan: ReloadPlan) -> tuple[ModelBundle | None, str, str]:
    """The model part of a reload: (a new bundle, loaded, checked and warmed up off the hot path, why, "") or
    (None, "", a note) when the running model stays. A failed load raises EdgedError and changes nothing.

    While a hosted version runs, [model] path, labels, decoder and the like describe the bundled fallback only:
    they are not applied to it (they apply when the device falls back); the device's hardware keys (accelerator,
    device, num_threads) are, by loading the same hosted version again with them.
    """
    assert daemon.models is not None
    current = daemon.models.current
    hosted = _running_hosted(daemon)
    if hosted is not None:
        hardware = [key for key in plan.model_keys if key.removeprefix("model.") in HOSTED_DEVICE_KEYS]
        others = [key for key in plan.model_keys if key not in hardware]
        note = (
            f"{', '.join(others)}: the bundled model's settings; hosted version {hosted.version} keeps running "
            "(they apply if the device falls back to the bundled model)"
            if others
            else ""
        )
        if not hardware:
            return None, "", note
        from edged.app.hosted import hosted_model_config, hosted_settings  # python-tuf only with [hosting]

        bundle = load_bundle(hosted_model_config(new.model, hosted), version=str(hosted.version))
        bundle.settings = hosted_settings(hosted)
        return bundle, f"reload: {', '.join(hardware)} changed (hosted version {hosted.version})", note
    if plan.model_keys:
        reason = "reload: " + ", ".join(plan.model_keys) + " changed"
    elif _file_sha256(Path(current.info.source)) not in (current.info.sha256, None):
        reason = f"reload: {current.info.source} changed on disk"
    else:
        return None, "", ""
    return load_bundle(new.model, roi=roi_of(new)), reason, ""


def _check_against_model(bundle: ModelBundle, new: AppConfig, text: str, origin: str) -> None:
    """Labels named in the new config must be the model's: refused now rather than failing every frame."""
    try:
        decode_params(bundle.spec, bundle.model_config(new.model))
        for name in new.publisher.entity_labels():
            known_label_index(name, bundle.spec, "publisher.labels")
    except EdgedError as exc:
        message = str(exc)
        match = re.match(r"^(model|publisher)\.(\w+):", message)
        line = line_of(text, (match.group(1), match.group(2))) if match else None
        raise CommandRefused(f"{origin}:{line}: {message}" if line else f"{origin}: {message}") from exc


@contextmanager
def between_frames(daemon: Daemon) -> Iterator[None]:
    """Hold the inference worker between two frames: no frame reads the config, model or publisher meanwhile."""
    worker = daemon.inference
    assert worker is not None
    if not worker.inferring.acquire(timeout=FRAME_WAIT_S):
        raise CommandRefused(
            f"the frame in flight has been in the model for over {FRAME_WAIT_S:.0f} s (a hung accelerator?); "
            "nothing was changed, try again"
        )
    try:
        yield
    finally:
        worker.inferring.release()


def _refuse(daemon: Daemon, message: str, problems: list[str]) -> NoReturn:
    log.error("configuration reload refused, still running the previous configuration: %s", "\n  ".join(problems))
    daemon.emit("config_rejected", {"error": message, "problems": problems})
    raise CommandRefused(message)


def reload_config(daemon: Daemon) -> dict[str, Any]:
    """Re-read `daemon.config_path` and apply it (see the module docstring); the `reload` command's handler."""
    path = daemon.config_path
    if path is None:
        raise CommandRefused("edged was started without a config file (edged run --config FILE): nothing to reload")
    if daemon.inference is None or daemon.models is None or daemon.publishers is None:
        raise CommandRefused("edged is still starting; reload once it runs")
    new, problems, text = check_file(path)
    if new is None:
        _refuse(daemon, f"{path} is invalid, so it was not applied: " + "; ".join(problems), problems)
    old = daemon.config
    plan = plan_reload(old, new)
    if plan.refused:
        lines = [
            f"{path}:{line_of(text, tuple(key.split('.'))) or '?'}: {key}: cannot change while edged runs ({why}); "
            "restart edged (systemctl restart edged) to change it"
            for key, why in plan.refused.items()
        ]
        _refuse(daemon, "; ".join(lines), lines)
    prepared = Prepared()
    try:
        prepared.replaces = daemon.models.current
        prepared.bundle, prepared.bundle_reason, prepared.model_note = prepare_model(daemon, new, plan)
        _check_against_model(prepared.bundle or daemon.models.current, new, text, str(path))
        if plan.camera:
            prepared.capture = daemon.capture.open(new.camera, retry=daemon.retry_source)
        if plan.publisher:
            prepared.publisher = create_publisher(new.publisher, new.device_id)
            preflight = getattr(prepared.publisher, "preflight", None)
            if callable(preflight):
                preflight()  # a missing password file or CA refuses the reload before the old publisher stops
        result = _commit(daemon, new, plan, prepared)
    except EdgedError as exc:
        prepared.release()
        _refuse(daemon, f"{path}: {exc}" if not str(exc).startswith(str(path)) else str(exc), [str(exc)])
    log.info(
        "configuration reloaded from %s: %s", path,
        ", ".join(plan.changed) + (f"; replaced {', '.join(result['replaced'])}" if result["replaced"] else "")
        if plan.changed or result["replaced"] else "nothing changed",
    )  # fmt: skip
    daemon.emit("config_reloaded", {"changed": list(plan.changed), "replaced": result["replaced"]})
    return {"file": str(path), "changed": list(plan.changed), **result}


def _swap_publisher(daemon: Daemon, old_config: AppConfig, new: AppConfig, prepared: Prepared) -> tuple[str, int]:
    """("live" | "replaced", results moved). The old publisher is stopped before the new one connects, so the two
    never fight over one client id on one broker, and `offline` then `online` reach it in that order. Results made
    meanwhile wait in the old one's buffer and move to the new one. If the new one cannot start after all, one
    with the previous settings takes over and the reload is refused (CommandRefused): nothing else changed."""
    assert daemon.publishers is not None
    current = daemon.publishers.current
    reconfigure = getattr(current, "reconfigure", None)
    if callable(reconfigure) and reconfigure(new.publisher):
        prepared.publisher = None  # built but never started: nothing to release
        return "live", 0
    publisher = prepared.publisher
    assert publisher is not None
    current.flush(1.0)  # events and state queued for the old broker go out before it says goodbye
    current.stop()
    prepared.publisher = None
    try:
        publisher.start(daemon.runtime)
    except EdgedError as exc:
        fallback = create_publisher(old_config.publisher, old_config.device_id)
        fallback.start(daemon.runtime)
        daemon.publishers.switch(fallback)
        raise CommandRefused(f"the new [publisher] could not start ({exc}); publishing with the previous settings, "
                             "nothing changed") from exc  # fmt: skip
    _, moved = daemon.publishers.switch(publisher)
    return "replaced", moved


def _commit(daemon: Daemon, new: AppConfig, plan: ReloadPlan, prepared: Prepared) -> dict[str, Any]:
    assert daemon.models is not None and daemon.publishers is not None
    old = daemon.config
    replaced: list[str] = []
    moved = 0
    if plan.publisher:
        outcome, moved = _swap_publisher(daemon, old, new, prepared)
        if outcome == "replaced":
            replaced.append("publisher")
    try:
        with between_frames(daemon):
            daemon.apply_settings(new)
            if prepared.bundle is not None and daemon.models.current is not prepared.replaces:
                prepared.model_note = "the model changed meanwhile (a hosted update), so it was not replaced"
                prepared.bundle.close()  # built for a model that no longer runs
            elif prepared.bundle is not None:
                daemon.models.activate(prepared.bundle, prepared.bundle_reason)
                replaced.append("model")
    except CommandRefused as exc:
        if plan.publisher:  # the publisher part is done: the config must say so, for the next reload's comparison
            daemon.apply_settings(old.model_copy(update={"publisher": new.publisher}))
            raise CommandRefused(f"{exc} (the [publisher] change was applied)") from exc
        raise
    prepared.bundle = None
    if "publisher" in replaced:
        daemon.publishers.publish_state(daemon.state())
    if prepared.capture is not None:
        worker, prepared.capture = prepared.capture, None
        daemon.capture.replace(worker, new.pipeline.shutdown_timeout_s)
        replaced.append("camera")
    if plan.under("log_level") or plan.under("logging"):
        logs.apply_config(new.log_level, new.logging.format, new.logging.levels)
    if plan.under("hosting") and daemon.updates is not None and new.hosting is not None:
        daemon.updates.retune(new.hosting)
    result: dict[str, Any] = {"replaced": replaced, "moved_results": moved}
    if prepared.model_note:
        log.info("reload: %s", prepared.model_note)
        result["note"] = prepared.model_note
    return result
