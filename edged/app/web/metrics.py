"""/metrics: the daemon's cumulative counters, histograms and gauges in Prometheus' text format.

A custom collector reads `Stats.cumulative()` (never reset by the periodic stats window) and the daemon's state
at each scrape, into a private registry (nothing global, nothing registered twice when a test starts several
daemons). prometheus-client is imported only here, and this module only when [http] is on.
Names follow Prometheus' conventions: `edged_` prefix, `_total` counters, base units (`_seconds`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from edged.app.stats import LATENCY_BUCKETS_S, Histogram

CONTENT_TYPE = CONTENT_TYPE_LATEST
SOURCE_STATES = ("starting", "streaming", "reconnecting", "finished", "failed", "stopped")

#: (histogram in Stats, metric name, help)
HISTOGRAMS = (
    ("inference", "edged_inference_seconds", "Time in the model's invoke(), per result."),
    ("preprocess", "edged_preprocess_seconds", "Time preparing the input tensor, per result."),
    ("decode", "edged_decode_seconds", "Time turning the outputs into labels and boxes, per result."),
    ("capture_to_publish", "edged_capture_to_publish_seconds", "From the frame's capture to its result's publish."),
    ("capture", "edged_capture_read_seconds", "Time reading one frame from the source."),
)
#: (key in Stats totals, metric name without _total, help)
COUNTERS = (
    ("captured", "edged_frames_captured", "Frames read from the source."),
    ("inferred", "edged_frames_inferred", "Frames run through the model (one result each)."),
    ("dropped", "edged_frames_dropped", "Frames replaced while the model was busy (the newest frame wins)."),
    ("skipped", "edged_frames_skipped", "Frames passed over on purpose (pipeline.max_fps / interval_s)."),
    ("source_errors", "edged_source_errors", "Failed reads or opens of the source."),
    ("black_frames", "edged_black_frames", "Frames that were black (covered lens, no signal)."),
    ("inference_failures", "edged_inference_failures", "Frames on which the model failed."),
)


class Observed(Protocol):
    """What the collector reads from the daemon (edged.app.daemon.Daemon)."""

    def cumulative(self) -> dict[str, Any]: ...

    def state(self) -> dict[str, Any]: ...

    def link_stats(self) -> Mapping[str, Any] | None: ...

    def hosting_state(self) -> Mapping[str, Any] | None: ...


def histogram_family(name: str, documentation: str, histogram: Histogram) -> HistogramMetricFamily:
    """Stats keeps counts per bucket; Prometheus wants them cumulative, ending with +Inf = count."""
    buckets: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip(LATENCY_BUCKETS_S, histogram.counts, strict=False):
        running += count
        buckets.append((repr(bound), float(running)))
    buckets.append(("+Inf", float(histogram.count)))
    return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=histogram.sum_s)


class EdgedCollector(Collector):
    def __init__(self, daemon: Observed) -> None:
        self.daemon = daemon

    def collect(self) -> Iterator[Metric]:
        cumulative = self.daemon.cumulative()
        totals: Mapping[str, int] = cumulative["totals"]
        for key, name, documentation in COUNTERS:
            yield CounterMetricFamily(name, documentation, value=float(totals.get(key, 0)))
        yield CounterMetricFamily("edged_results_published", "Results handed to the publisher.",
                                  value=float(totals.get("inferred", 0)))  # fmt: skip
        for key, name, documentation in HISTOGRAMS:
            yield histogram_family(name, documentation, cumulative["histograms"][key])
        state = self.daemon.state()
        yield GaugeMetricFamily("edged_uptime_seconds", "Seconds since edged started.", value=cumulative["uptime_s"])
        yield GaugeMetricFamily("edged_paused", "1 while paused by a command.", value=1.0 if state["paused"] else 0.0)
        source = GaugeMetricFamily("edged_source_state", "1 for the source's current state.", labels=["state"])
        for name in SOURCE_STATES:
            source.add_metric([name], 1.0 if cumulative["source_state"] == name else 0.0)
        yield source
        model = state.get("model") or {}
        info = InfoMetricFamily("edged_model", "The model running now.")
        info.add_metric([], {
            "name": str(model.get("name", "")), "version": str(model.get("version", "")),
            "sha256": str(model.get("sha256", "")), "task": str(state.get("task") or ""),
            "accelerator": str(state.get("accelerator") or ""),
        })  # fmt: skip
        yield info
        build = InfoMetricFamily("edged_build", "edged's version.")
        build.add_metric([], {"version": str(state.get("edged_version", ""))})
        yield build
        yield from self._link()
        yield from self._hosting()

    def _link(self) -> Iterator[Metric]:
        link = self.daemon.link_stats()
        if not link:
            return
        yield GaugeMetricFamily("edged_mqtt_connected", "1 while connected to the broker.",
                                value=1.0 if link.get("connected") else 0.0)  # fmt: skip
        yield CounterMetricFamily("edged_mqtt_connects", "Successful connections to the broker (1 + reconnects).",
                                  value=float(link.get("connects", 0)))  # fmt: skip
        yield GaugeMetricFamily("edged_mqtt_buffered_results", "Results waiting in the offline buffer.",
                                value=float(link.get("buffered", 0)))  # fmt: skip
        yield GaugeMetricFamily("edged_mqtt_in_flight_messages", "Messages sent, not yet acknowledged.",
                                value=float(link.get("in_flight", 0)))  # fmt: skip
        yield CounterMetricFamily("edged_mqtt_messages_delivered", "Messages the broker acknowledged.",
                                  value=float(link.get("delivered", 0)))  # fmt: skip
        yield CounterMetricFamily("edged_mqtt_results_skipped", "Results not published because of publisher.mode.",
                                  value=float(link.get("skipped_by_mode", 0)))  # fmt: skip
        failures = CounterMetricFamily("edged_publish_failures", "Messages dropped instead of delivered, by reason.",
                                       labels=["reason"])  # fmt: skip
        for reason in ("overflow", "expired", "other"):
            failures.add_metric([reason], float(link.get(f"dropped_{reason}", 0)))
        yield failures

    def _hosting(self) -> Iterator[Metric]:
        """Model hosting's checks and their outcomes, once the hosting integration reports them."""
        hosting = self.daemon.hosting_state()
        if not hosting:
            return
        checks = hosting.get("checks")
        if isinstance(checks, Mapping):
            family = CounterMetricFamily("edged_update_checks", "Model update checks, by outcome.", labels=["outcome"])
            for outcome, count in sorted(checks.items()):
                family.add_metric([str(outcome)], float(count))
            yield family


def build_registry(daemon: Observed) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EdgedCollector(daemon))
    ProcessCollector(registry=registry)  # process_cpu_seconds_total, resident memory, open fds
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
