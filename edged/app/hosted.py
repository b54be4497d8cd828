"""A hosted model version, from installed files to a running bundle: its [model] settings, the checks it passes
before activation (off the hot path), and the health window after it (probation).

Validation (issue: "verified and validated first"): it loads with edged's inspection (task, decoder, labels and
label count checked by the loader); the labels the publisher gives entities (`publisher.labels`) and the device's
label filters are labels of the new model; it warms up; its known-answer (golden) images give their expected
answers; its invoke latency is measured and refused only against a limit the user set (max_latency_ms, or
max_latency_ratio × the running model's). Probation watches inference failures and latency for health_window_s.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edged.app.events import Broadcast
from edged.app.stats import Stats
from edged.config.app import AppConfig
from edged.config.hosting import HostingConfig
from edged.config.model import ModelConfig
from edged.errors import EdgedError
from edged.hosting.checks import golden_failure
from edged.hosting.store import InstalledVersion
from edged.inference.engine import ModelBundle, decode_params, known_label_index
from edged.inference.loader import load_bundle

#: [model] keys that are the device's own choice (hardware, and how results are filtered); a hosted version keeps
#: them unless its own settings (`edged hosting publish --set`) say otherwise. Every other key describes a model
#: file, so the bundled model's values never apply to a hosted one.
DEVICE_KEYS = (
    "accelerator", "device", "num_threads", "top_k", "threshold", "label_thresholds", "include_labels",
    "exclude_labels", "nms_iou", "max_detections",
)  # fmt: skip
#: Invokes timed before activation.
LATENCY_SAMPLES = 10
#: Inference failures in the health window that fail a probation.
MAX_PROBATION_FAILURES = 3
#: Results needed before probation judges latency.
MIN_LATENCY_SAMPLES = 5


class ValidationFailed(EdgedError):
    """A version was refused before activation; the message is the precise reason."""


def hosted_model_config(base: ModelConfig, installed: InstalledVersion) -> ModelConfig:
    """The [model] table this device runs `installed` with: its own files and settings, the device's choices."""
    kept = {key: getattr(base, key) for key in DEVICE_KEYS}
    try:
        return ModelConfig.model_validate({**kept, **installed.model_settings()})
    except ValueError as exc:
        raise ValidationFailed(f"version {installed.version}'s [model] settings are not valid here: {exc}") from exc


def live_model_config(base: ModelConfig, overrides: dict[str, Any]) -> ModelConfig:
    """The current [model] table with a hosted version's own settings on top (what the inference thread uses)."""
    return base.model_copy(update=overrides) if overrides else base


def hosted_settings(installed: InstalledVersion) -> dict[str, Any]:
    """The keys of `installed`'s settings that change how results are decoded and filtered."""
    return {key: value for key, value in installed.meta.settings().items() if key in DEVICE_KEYS}


@dataclass(frozen=True)
class Validated:
    bundle: ModelBundle
    latency_ms: float
    notes: tuple[str, ...] = ()


def _median_invoke_ms(bundle: ModelBundle) -> float:
    width, height = bundle.spec.input_size
    image = np.full((height, width, 3), 128, np.uint8)
    timings = [bundle.predict(image, "rgb").timing_ms["inference"] for _ in range(LATENCY_SAMPLES)]
    bundle.reset_state()
    return float(statistics.median(timings))


def validate(
    installed: InstalledVersion,
    config: AppConfig,
    hosting: HostingConfig,
    running_latency_ms: float | None,
    loader: Callable[..., ModelBundle] = load_bundle,
) -> Validated:
    """Load and check `installed` off the hot path; ValidationFailed with the reason (nothing is left open)."""
    model_config = hosted_model_config(config.model, installed)
    try:
        bundle = loader(model_config, version=str(installed.version))
    except EdgedError as exc:
        raise ValidationFailed(f"version {installed.version} does not load: {exc}") from exc
    try:
        if bundle.info.sha256 not in installed.files.values():
            raise ValidationFailed(
                f"version {installed.version}: the loaded file's sha256 {bundle.info.sha256[:12]}… is not one of "
                "the verified files (the disk changed them)"
            )
        for name in config.publisher.entity_labels():
            try:
                known_label_index(name, bundle.spec, "publisher.labels")
            except EdgedError as exc:
                raise ValidationFailed(f"version {installed.version}: {exc}") from exc
        try:
            decode_params(bundle.spec, live_model_config(config.model, hosted_settings(installed)))
        except EdgedError as exc:
            raise ValidationFailed(f"version {installed.version}: {exc}") from exc
        for image, expected in installed.golden:
            try:
                failure = golden_failure(bundle, image, expected)
            except EdgedError as exc:
                failure = f"golden image {image.name} cannot be run: {exc}"
            if failure:
                raise ValidationFailed(f"version {installed.version}: {failure}")
        latency = _median_invoke_ms(bundle)
        if hosting.max_latency_ms is not None and latency > hosting.max_latency_ms:
            raise ValidationFailed(
                f"version {installed.version} takes {latency:.1f} ms per invoke here, over max_latency_ms "
                f"({hosting.max_latency_ms:g})"
            )
        ratio = hosting.max_latency_ratio
        if ratio is not None and running_latency_ms and latency > ratio * running_latency_ms:
            raise ValidationFailed(
                f"version {installed.version} takes {latency:.1f} ms per invoke here, over max_latency_ratio "
                f"({ratio:g}) × the running model's {running_latency_ms:.1f} ms"
            )
    except BaseException:
        bundle.close()
        raise
    bundle.settings = hosted_settings(installed)
    return Validated(bundle, latency)


@dataclass
class Probation:
    """The health window after a swap: failures and latency of the new model's own results (Mender's commit
    step, balena's health window)."""

    installed: InstalledVersion
    stats: Stats
    results: Broadcast[dict[str, Any]]
    hosting: HostingConfig
    running_latency_ms: float | None
    clock: Callable[[], float] = time.monotonic
    started: float = 0.0
    failures_before: int = 0
    latencies: list[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _remove: Callable[[], None] | None = None

    def start(self) -> None:
        self.started = self.clock()
        self.failures_before = self.stats.totals["inference_failures"]
        self._remove = self.results.add_callback(self._on_result)

    def _on_result(self, result: dict[str, Any]) -> None:  # the inference thread: quick
        if result["model"]["sha256"] == self.installed.sha256:
            with self._lock:
                self.latencies.append(float(result["timing_ms"]["inference"]))

    def verdict(self) -> tuple[str, str]:
        """("running" | "passed" | "failed", why)."""
        failures = self.stats.totals["inference_failures"] - self.failures_before
        if failures >= MAX_PROBATION_FAILURES:
            return "failed", f"{failures} inference failures in the health window"
        with self._lock:
            latencies = list(self.latencies)
        if len(latencies) >= MIN_LATENCY_SAMPLES:
            median = float(statistics.median(latencies[-50:]))
            limit = self.hosting.max_latency_ms
            if limit is not None and median > limit:
                return (
                    "failed",
                    f"inference takes {median:.1f} ms (median of its results), over max_latency_ms ({limit:g})",
                )
            ratio, before = self.hosting.max_latency_ratio, self.running_latency_ms
            if ratio is not None and before and median > ratio * before:
                return "failed", (
                    f"inference takes {median:.1f} ms (median of its results), over max_latency_ratio ({ratio:g}) × "
                    f"the previous model's {before:.1f} ms"
                )
        elapsed = self.clock() - self.started
        if elapsed >= float(self.hosting.health_window_s):
            return "passed", f"{len(latencies)} results and {failures} failures in {elapsed:.0f} s"
        return "running", ""

    def close(self) -> None:
        if self._remove is not None:
            self._remove()
            self._remove = None
