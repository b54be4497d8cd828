"""Warnings for settings that are valid but probably not what was meant, each `file:line: key: why; what to do`.

Used by `edged check-config`. Only cheap checks: the config's own values, and whether the files it names exist
(stat only; nothing is opened or loaded: `edged doctor` does that).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path, PurePath
from typing import Any

from edged.config.app import AppConfig
from edged.config.errors import line_of

#: TimeoutStopSec= of systemd/edged.service: a clean stop longer than this is cut short by SIGKILL.
UNIT_STOP_TIMEOUT_S = 15.0
#: Hostnames that fresh images share, so a default device_id collides across devices.
COMMON_HOSTNAMES = frozenset({"raspberrypi", "localhost", "debian", "ubuntu", "orangepi", "jetson", "edged"})
#: Paths the shipped unit hides (ProtectHome=yes, PrivateTmp=yes).
HIDDEN_UNDER_UNIT = tuple(PurePath(p) for p in ("/home", "/root", "/run/user", "/tmp", "/var/tmp"))


def _credential(path: Path) -> bool:
    """A systemd credential (LoadCredential=) exists only while the service runs: not worth a warning here."""
    text = str(path)
    return "%credentials%" in text or text.startswith("/run/credentials/")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _paths(config: AppConfig) -> Iterator[tuple[tuple[str, ...], Path, str]]:
    """(key, path, what it is) for every file or folder the config names."""
    model = config.model
    yield ("model", "path"), model.path, "the model file"
    if model.labels is not None:
        yield ("model", "labels"), model.labels, "the label file"
    if model.cpu_model is not None:
        yield ("model", "cpu_model"), model.cpu_model, "the CPU version of the model"
    if config.hosting is not None:
        yield ("hosting", "trusted_root"), config.hosting.trusted_root, "the repository's root.json"
    publisher: Any = config.publisher
    for key, what in (("password_file", "the password file"), ("tls_ca_file", "the CA file"),
                      ("tls_cert_file", "the client certificate"), ("tls_key_file", "its private key")):  # fmt: skip
        value = getattr(publisher, key, None)
        if isinstance(value, Path):
            yield ("publisher", key), value, what
    camera: Any = config.camera
    if config.camera.type == "images" and isinstance(getattr(camera, "path", None), Path):
        yield ("camera", "path"), camera.path, "the image folder"
    source = getattr(camera, "source", None)
    if config.camera.type == "opencv" and isinstance(source, str):
        text = source.strip()
        if not text.isdigit() and "://" not in text and not text.startswith("/dev/"):
            yield ("camera", "source"), Path(text), "the video file"


def config_warnings(
    config: AppConfig,
    text: str,
    origin: str,
    *,
    exists: Callable[[Path], bool] = os.path.exists,
    hostname: Callable[[], str] = socket.gethostname,
    service_config: bool | None = None,
) -> list[str]:
    """Every warning for `config` (read from `text` at `origin`). `service_config`: the file is the service's (under
    /etc/), so paths the shipped unit cannot see are worth a warning; by default decided from `origin`."""
    found: list[str] = []
    under_etc = origin.startswith("/etc/") if service_config is None else service_config

    def warn(loc: tuple[str, ...], message: str) -> None:
        line = line_of(text, loc)
        where = f"{origin}:{line}" if line else origin
        found.append(f"{where}: {'.'.join(loc)}: {message}")

    for loc, path, what in _paths(config):
        if _credential(path):
            continue
        if not exists(path):
            warn(loc, f"{path} ({what}) does not exist; edged cannot start (or reload) until it does")
        if under_etc and any(path.is_relative_to(hidden) for hidden in HIDDEN_UNDER_UNIT):
            warn(loc, f"{path} is hidden from the systemd service (ProtectHome=yes, PrivateTmp=yes); move it to "
                      "/var/lib/edged or /etc/edged")  # fmt: skip
    model = config.model
    if model.accelerator == "edgetpu" and "_edgetpu" not in model.path.name:
        warn(
            ("model", "accelerator"),
            f"{model.path.name} is not named like an Edge TPU model (*_edgetpu.tflite): "
            "a model that is not compiled for the Edge TPU runs on the CPU anyway; compile it with edgetpu_compiler",
        )
    cores = os.cpu_count() or 1
    if model.num_threads is not None and model.num_threads > cores:
        warn(("model", "num_threads"), f"{model.num_threads} threads on {cores} cores only adds switching; leave it "
             "unset to use every core")  # fmt: skip
    if "device_id" not in top_level_keys(text) and hostname().lower() in COMMON_HOSTNAMES:
        found.append(
            f"{origin}: device_id: not set, so it is the hostname {hostname()!r}, which other devices "
            "likely share (their topics and Home Assistant entities would collide); set device_id"
        )
    pipeline = config.pipeline
    if pipeline.shutdown_timeout_s >= UNIT_STOP_TIMEOUT_S:
        warn(("pipeline", "shutdown_timeout_s"), f"{pipeline.shutdown_timeout_s:g} s is not shorter than the unit's "
             f"TimeoutStopSec={UNIT_STOP_TIMEOUT_S:g}: systemd kills edged before such a stop finishes; raise "
             "TimeoutStopSec too (systemctl edit edged)")  # fmt: skip
    if pipeline.stats_interval_s < 1.0:
        warn(("pipeline", "stats_interval_s"), f"stats every {pipeline.stats_interval_s:g} s flood the log and the "
             "broker; 10 s (the default) or more suits a service")  # fmt: skip
    if str(config.state_dir).startswith(("/tmp/", "/var/tmp/")) or str(config.state_dir) in ("/tmp", "/var/tmp"):
        warn(("state_dir",), f"{config.state_dir} is emptied at reboot (and hidden by the unit's PrivateTmp=yes): "
             "installed model versions would be lost; use /var/lib/edged")  # fmt: skip
    if "publisher" not in top_level_keys(text):
        found.append(
            f"{origin}: publisher: no [publisher] table, so results go to standard output (the journal, "
            'under systemd); add [publisher] with type = "mqtt" to feed Home Assistant or Node-RED'
        )
    publisher: Any = config.publisher
    if config.publisher.type == "mqtt":
        if publisher.tls_insecure and publisher.uses_tls:
            warn(
                ("publisher", "tls_insecure"),
                "the broker's certificate is not checked against its host name, so "
                "anyone on the path can pose as the broker; connect by the name in the certificate instead",
            )
        elif publisher.tls_insecure:
            warn(("publisher", "tls_insecure"), "has no effect: TLS is off (set tls = true or a tls_* file)")
        has_password = publisher.password_file is not None or publisher.password_env is not None
        if has_password and not publisher.uses_tls and not _loopback(publisher.host):
            warn(
                ("publisher", "password_file" if publisher.password_file else "password_env"),
                f"the password crosses the network to {publisher.host} in clear text; set tls = true (port 8883)",
            )
    if config.hosting is not None and config.hosting.interval_s < 60:
        warn(("hosting", "interval_s"), f"checking every {config.hosting.interval_s:g} s suits a test; a fleet "
             "polling that often loads the host (900 s is the default)")  # fmt: skip
    return found


def top_level_keys(text: str) -> set[str]:
    """The keys and tables the file itself sets (not the defaults), or none if it is not TOML."""
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        return set(tomllib.loads(text))
    except tomllib.TOMLDecodeError:
        return set()
