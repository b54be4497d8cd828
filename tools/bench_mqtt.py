#!/usr/bin/env python3
"""Benchmark (not a test) of the MQTT publish path, against a private mosquitto on loopback.

    python tools/bench_mqtt.py                  # 1,000 results/s for 60 s: per-call cost, delivery, RSS
    python tools/bench_mqtt.py --seconds 10     # a shorter run
    python tools/bench_mqtt.py --json           # one JSON object instead of the table

What it measures, in one process, with the real MqttPublisher (QoS 1, mode "every"):
- the time `publish_result()` takes per call (what the inference thread pays: serialization + the bounded
  outbox; the network is another thread's work), p50 / p95 / p99, while connected, and while the broker is
  away (results only go to the buffer);
- that every result reaches a subscriber (`mosquitto_sub` in its own process), in order, with no gap;
- the process RSS once per second, to show memory stays flat at a steady 1,000 results/s.
Results are realistic detection results (3 objects, about 1 KB of JSON). Figures go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.broker import Mosquitto  # noqa: E402
from support.runtime import PublisherRuntime  # noqa: E402

from edged.app.stats import percentile  # noqa: E402
from edged.publish.mqtt.config import MqttPublisherConfig  # noqa: E402
from edged.publish.mqtt.publisher import MqttPublisher  # noqa: E402

DEVICE = "bench"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Control:
    paused = False

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def stats(self) -> dict[str, Any]:
        return {}

    def state(self) -> dict[str, Any]:
        return {"task": "detection", "model": {"name": "bench"}}

    def snapshot_jpeg(self, annotated: bool) -> bytes | None:
        return None


def make_result(seq: int) -> dict[str, Any]:
    """A detection result of the shape the pipeline builds (3 objects)."""
    now = time.time()
    objects = []
    for index, label in enumerate(("person", "car", "dog")):
        box = {"xmin": 0.1 * index, "ymin": 0.2, "xmax": 0.1 * index + 0.25, "ymax": 0.7}
        box_px = {key: round(value * 640, 1) for key, value in box.items()}
        objects.append({"label": label, "score": 0.9 - index * 0.1, "index": index, "box": box, "box_px": box_px})
    return {
        "schema": "https://edged.dev/schemas/result-1.json", "run_id": "0" * 32, "seq": seq, "device_id": DEVICE,
        "source": {"id": "camera", "frame_index": seq, "width": 640, "height": 480},
        "captured_at": "2026-11-27T17:20:23.123Z", "captured_at_ms": round(now * 1000),
        "published_at": "2026-11-27T17:20:23.131Z", "published_at_ms": round(now * 1000),
        "model": {"name": "yolov8n_full_int8", "version": "local", "sha256": "5" * 64},
        "task": "detection", "labels": [], "objects": objects,
        "timing_ms": {"capture_to_publish": 8.1, "preprocess": 0.6, "inference": 7.4, "decode": 0.2},
    }  # fmt: skip


def paced(publisher: MqttPublisher, first_seq: int, count: int, rate: float) -> Any:
    """publish_result() at `rate` per second on a fixed schedule; the time of each call, in ms.

    The timings go to an array allocated and touched beforehand, so recording them does not grow the RSS.
    """
    timings = np.ones(count)
    start = time.perf_counter()
    for i in range(count):
        result = make_result(first_seq + i)  # built outside the timed section, as the pipeline does
        due = start + i / rate
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        began = time.perf_counter_ns()
        publisher.publish_result(result)
        timings[i] = (time.perf_counter_ns() - began) / 1e6
    return timings


def summary(array: Any) -> dict[str, float]:
    timings = [float(value) for value in array]
    return {
        "p50_ms": round(percentile(timings, 0.5) or 0.0, 4),
        "p95_ms": round(percentile(timings, 0.95) or 0.0, 4),
        "p99_ms": round(percentile(timings, 0.99) or 0.0, 4),
        "mean_ms": round(statistics.fmean(timings), 4),
    }


def run(seconds: float, rate: float) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="edged-bench-mqtt-"))
    broker = Mosquitto(work / "broker").start()
    received = work / "received.jsonl"
    subscriber = subprocess.Popen(
        ["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-q", "1", "-t", f"edged/{DEVICE}/results"],
        stdout=received.open("wb"),
    )
    time.sleep(0.5)
    config = MqttPublisherConfig(type="mqtt", host=broker.host, port=broker.port, homeassistant=False)
    publisher = MqttPublisher(config, DEVICE)
    runtime = PublisherRuntime(Control())
    runtime.start(publisher)
    deadline = time.monotonic() + 10
    while not publisher.mqtt_stats()["connected"] and time.monotonic() < deadline:
        time.sleep(0.05)
    count = int(seconds * rate)
    samples: list[tuple[float, float]] = []
    stop_sampling = threading.Event()

    def sample() -> None:
        started = time.monotonic()
        while not stop_sampling.wait(1.0):
            samples.append((round(time.monotonic() - started, 1), round(rss_mb(), 1)))

    sampler = threading.Thread(target=sample, daemon=True)
    rss_start = rss_mb()
    sampler.start()
    started, cpu_started = time.monotonic(), time.process_time()
    connected = paced(publisher, 0, count, rate)
    delivered_all = publisher.flush(60)
    elapsed = time.monotonic() - started
    cpu_percent = 100 * (time.process_time() - cpu_started) / elapsed
    stop_sampling.set()
    sampler.join()
    # the same path while the broker is away: results only go to the bounded buffer
    broker.stop()
    while publisher.mqtt_stats()["connected"]:
        time.sleep(0.05)
    offline_count = min(5000, count)
    offline = paced(publisher, count, offline_count, rate)
    buffered = publisher.mqtt_stats()["buffered"]
    broker.start()
    delivered_after_outage = publisher.flush(60)
    time.sleep(1.0)
    publisher.stop()
    subscriber.terminate()
    subscriber.wait(10)
    broker.stop()
    seqs = [json.loads(line)["seq"] for line in received.read_text().splitlines() if line.strip()]
    shutil.rmtree(work, ignore_errors=True)
    unique = list(dict.fromkeys(seqs))
    total = count + offline_count
    steady = [mb for t, mb in samples if t >= 10] or [mb for _, mb in samples]
    return {
        "rate_per_s": rate,
        "seconds": seconds,
        "results": count,
        "achieved_rate_per_s": round(count / elapsed, 1),
        "process_cpu_percent": round(cpu_percent, 1),
        "publish_result_connected": summary(connected),
        "publish_result_offline": summary(offline),
        "buffered_while_offline": buffered,
        "delivered_all": delivered_all and delivered_after_outage,
        "received_unique": len(unique),
        "received_in_order_no_gap": unique == list(range(total)),
        "duplicates": len(seqs) - len(unique),
        "rss_mb": {
            "before": round(rss_start, 1),
            "after_10s_min": min(steady),
            "after_10s_max": max(steady),
            "end": samples[-1][1] if samples else None,
        },
        "rss_samples": samples,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=1000.0, help="results per second")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = run(args.seconds, args.rate)
    if args.json:
        print(json.dumps(report))
        return 0
    on, off = report["publish_result_connected"], report["publish_result_offline"]
    print(f"{report['results']} results at {report['rate_per_s']:g}/s for {report['seconds']:g} s "
          f"(achieved {report['achieved_rate_per_s']}/s, all delivered; process CPU {report['process_cpu_percent']}%"
          " of one core, including building the results)")  # fmt: skip
    print(f"publish_result() connected: p50 {on['p50_ms']} ms, p95 {on['p95_ms']} ms, p99 {on['p99_ms']} ms")
    print(f"publish_result() offline:   p50 {off['p50_ms']} ms, p95 {off['p95_ms']} ms, p99 {off['p99_ms']} ms "
          f"({report['buffered_while_offline']} buffered)")  # fmt: skip
    print(f"delivered: {report['received_unique']} unique, in order without gap: "
          f"{report['received_in_order_no_gap']}, duplicates {report['duplicates']}")  # fmt: skip
    rss = report["rss_mb"]
    print(f"RSS MB: before {rss['before']}, from 10 s on min {rss['after_10s_min']} max {rss['after_10s_max']}, "
          f"end {rss['end']}")  # fmt: skip
    print("RSS samples (s, MB):", " ".join(f"{t:g}:{mb:g}" for t, mb in report["rss_samples"][::5]))
    return 0 if report["received_in_order_no_gap"] else 1


if __name__ == "__main__":
    sys.exit(main())
