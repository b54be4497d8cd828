#!/usr/bin/env python3
"""Benchmarks of model hosting (issue 9). Figures and how they were taken: docs/performance.md.

    .venv/bin/python tools/bench_hosting.py swap       # a hot swap during a 30 fps real-time run, and RSS
    .venv/bin/python tools/bench_hosting.py backlog    # a hot swap with a file source and back-pressure
    .venv/bin/python tools/bench_hosting.py fleet      # 1,000 devices polling one repository (simulated)

`swap` and `backlog` run the real daemon against a real nginx serving a repository built with `edged hosting`,
with the third-party models in ../shared/data (v1 mobilenet_v1_0.25_128_quant, v2 mobilenet_v2_1.0_224_quant).
`fleet` is a discrete-event simulation driven by edged's own scheduling (edged/hosting/schedule.py) and rollout
buckets (edged/hosting/rollout.py), with the request and byte sizes measured on a real nginx first.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import random
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
SHARED = ROOT.parent / "shared" / "data"

from support.nginx import Nginx, require_nginx  # noqa: E402

from edged.app.daemon import Daemon  # noqa: E402
from edged.cli import main as edged_main  # noqa: E402
from edged.config import parse_config  # noqa: E402
from edged.hosting.rollout import takes_part  # noqa: E402
from edged.hosting.schedule import next_check_delay  # noqa: E402
from edged.publish.null import NullPublisher  # noqa: E402

V1 = SHARED / "models" / "mobilenet_v1_0.25_128_quant.tflite"
V2 = SHARED / "models" / "mobilenet_v2_1.0_224_quant.tflite"
LABELS = SHARED / "models" / "imagenet_labels.txt"
VIDEO = SHARED / "video" / "cat_pan_1280x720.mp4"


def edged(*args: str | Path) -> None:
    if edged_main(["-q", *(str(a) for a in args)]) != 0:
        raise SystemExit(f"edged {' '.join(map(str, args))} failed")


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Recorder(NullPublisher):
    """Keeps (monotonic publish time, seq, frame index, model version) of every result, and every event."""

    def __init__(self) -> None:
        super().__init__()
        self.results: list[tuple[float, int, int, str]] = []
        self.events: list[dict[str, Any]] = []
        self._cond = threading.Condition()

    def publish_result(self, result: dict[str, Any]) -> None:
        with self._cond:
            self.results.append((time.monotonic(), result["seq"], result["source"]["frame_index"],
                                 result["model"]["version"]))  # fmt: skip
            self._cond.notify_all()

    def publish_event(self, event: dict[str, Any]) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait_for(self, predicate: Any, timeout: float = 300) -> bool:
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    def event(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == name]


def _repository(work: Path) -> tuple[Path, Path]:
    repo, keys = work / "repo", work / "keys"
    edged("hosting", "init", repo, "--keys", keys)
    edged("hosting", "publish", repo, V1, "--name", "bench", "--labels", LABELS, "--keys", keys)
    return repo, keys


def _device(work: Path, url: str, repo: Path, camera: str) -> Any:
    return parse_config(
        f'device_id = "bench-1"\nstate_dir = "{work / "state"}"\n'
        f'[model]\npath = "{V1}"\nlabels = "{LABELS}"\nnum_threads = 2\n'
        f"[camera]\n{camera}\n"
        f"[pipeline]\nstats_interval_s = 3600\n"
        f'[hosting]\nurl = "{url}"\nname = "bench"\ntrusted_root = "{repo / "metadata" / "root.json"}"\n'
        "interval_s = 3600\nhealth_window_s = 5\nfree_space_margin_bytes = 0\n"
    )


def _run_swap(camera: str, seconds_after: float, extra_swaps: int = 0) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="edged-bench-swap-"))
    repo, keys = _repository(work)
    nginx = Nginx(repo, work / "nginx", require_nginx()).start()
    recorder = Recorder()
    daemon = Daemon(_device(work, nginx.url, repo, camera), publisher=recorder)
    samples: list[tuple[float, float]] = []
    rss_after_small: list[float] = []
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.wait(0.02):
            samples.append((time.monotonic(), rss_mb()))

    runner = threading.Thread(target=lambda: daemon.run(handle_signals=False))
    sampler = threading.Thread(target=sample, daemon=True)
    try:
        sampler.start()
        runner.start()
        daemon.started.wait(120)
        assert daemon.dispatcher.call("check_update")["ok"]
        assert recorder.wait_for(lambda: bool(recorder.event("update_committed")))
        time.sleep(5)  # a steady stretch of v1 results before the swap (the baseline)
        asked = time.monotonic()
        edged("hosting", "publish", repo, V2, "--name", "bench", "--labels", LABELS, "--keys", keys)
        assert daemon.dispatcher.call("check_update")["ok"]
        assert recorder.wait_for(lambda: any(e["version"] == 2 for e in recorder.event("update_committed")))
        time.sleep(seconds_after)
        released_from = time.monotonic()
        # then small, big, small, ...: the RSS after each small one shows whether the big interpreters are released
        for number in range(3, 3 + 2 * extra_swaps):
            model = V1 if number % 2 else V2
            edged("hosting", "publish", repo, model, "--name", "bench", "--labels", LABELS, "--keys", keys)
            assert daemon.dispatcher.call("check_update")["ok"]
            assert recorder.wait_for(
                lambda n=number: any(e["version"] == n for e in recorder.event("update_committed"))
            )
            time.sleep(2)
            if number % 2:
                rss_after_small.append(round(rss_mb(), 1))
    finally:
        daemon.request_stop()
        runner.join(120)
        sampling.set()
        nginx.stop()
    stats = daemon.stats_counters.totals
    results = recorder.results
    seqs = [r[1] for r in results]
    frames = [r[2] for r in results]
    times = [r[0] for r in results]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    median_gap = statistics.median(gaps)
    swaps = [i for i in range(1, len(results)) if results[i][3] != results[i - 1][3]]
    per_swap = []
    for i in swaps:
        window = [j for j in range(1, len(results)) if abs(times[j] - times[i]) <= 1.0]  # ±1 s around the swap
        per_swap.append({
            "to_version": results[i][3],
            "frames_lost_within_1s": sum(frames[j] - frames[j - 1] - 1 for j in window),
            "max_gap_ms": round(1000 * max(gaps[j - 1] for j in window), 2),
            "max_gap_over_median": round(max(gaps[j - 1] for j in window) / median_gap, 2),
        })  # fmt: skip
    first_v2 = next(i for i in swaps if results[i][3] == "2")
    before = [rss for t, rss in samples if t < asked]
    during = [rss for t, rss in samples if asked <= t <= times[first_v2] + 1.0]
    after = [rss for t, rss in samples if times[first_v2] + 2.0 < t < released_from]
    return {
        "results": len(results),
        "seq_contiguous": seqs == list(range(len(seqs))),
        "frames_lost_in_the_whole_run": stats["dropped"],
        "median_gap_ms": round(1000 * median_gap, 2),
        "swaps": per_swap,
        "rss_before_mb": round(statistics.median(before[-50:]), 1),
        "rss_peak_during_first_swap_mb": round(max(during), 1),
        "rss_after_first_swap_mb": round(statistics.median(after), 1),
        "rss_after_each_swap_back_to_the_small_model_mb": rss_after_small,
        "model_sizes_mb": [round(V1.stat().st_size / 2**20, 2), round(V2.stat().st_size / 2**20, 2)],
    }


def swap(_: argparse.Namespace) -> dict[str, Any]:
    camera = f'type = "opencv"\nsource = "{VIDEO}"\nloop = true\nrealtime = true'
    return _run_swap(camera, seconds_after=8, extra_swaps=4)


def backlog(_: argparse.Namespace) -> dict[str, Any]:
    camera = f'type = "opencv"\nsource = "{VIDEO}"\nloop = true\nrealtime = false'
    return _run_swap(camera, seconds_after=3)


# ---- the fleet ------------------------------------------------------------------------------------------------
def measured_sizes() -> dict[str, int]:
    """Bytes nginx sends for each request a device makes, measured on a real repository with both versions."""
    work = Path(tempfile.mkdtemp(prefix="edged-bench-fleet-"))
    repo, keys = _repository(work)
    edged("hosting", "publish", repo, V2, "--name", "bench", "--labels", LABELS, "--keys", keys)
    nginx = Nginx(repo, work / "nginx", require_nginx()).start()

    def fetch(path: str, etag: str | None = None) -> tuple[int, int, str | None]:
        request = urllib.request.Request(nginx.url + path, headers={"If-None-Match": etag} if etag else {})
        try:
            with urllib.request.urlopen(request) as response:
                body = response.read()
                head = sum(len(k) + len(v) + 4 for k, v in response.headers.items()) + 17
                return response.status, len(body) + head, response.headers.get("ETag")
        except urllib.error.HTTPError as error:
            body = error.read()
            head = sum(len(k) + len(v) + 4 for k, v in error.headers.items()) + 17
            return error.code, len(body) + head, None

    try:
        root_version = json.loads((repo / "metadata" / "root.json").read_text())["signed"]["version"]
        _, timestamp, etag = fetch("metadata/timestamp.json")
        status, not_modified, _ = fetch("metadata/timestamp.json", etag)
        assert status == 304, status
        _, probe, _ = fetch(f"metadata/{root_version + 1}.root.json")
        snapshot_file = sorted((repo / "metadata").glob("*.snapshot.json"))[-1].name
        targets_file = sorted((repo / "metadata").glob("*.targets.json"))[-1].name
        _, snapshot, _ = fetch(f"metadata/{snapshot_file}")
        _, targets, _ = fetch(f"metadata/{targets_file}")
        index_file = next(p.name for p in (repo / "targets").glob("*.index.json"))
        _, index, _ = fetch(f"targets/{index_file}")
        model_file = next(p.name for p in (repo / "targets" / "bench" / "2").glob("*.model.tflite"))
        _, model, _ = fetch(f"targets/bench/2/{model_file}")
    finally:
        nginx.stop()
    return {"timestamp": timestamp, "not_modified": not_modified, "root_probe": probe, "snapshot": snapshot,
            "targets": targets, "index": index, "model": model}  # fmt: skip


def fleet(args: argparse.Namespace) -> dict[str, Any]:
    sizes = measured_sizes()
    out: dict[str, Any] = {"sizes_bytes": sizes, "devices": args.devices, "interval_s": args.interval,
                           "jitter": args.jitter}  # fmt: skip
    for etag in (True, False):
        out["with_etag" if etag else "without_etag"] = simulate(args, sizes, etag)
    return out


def simulate(args: argparse.Namespace, sizes: dict[str, int], etag: bool) -> dict[str, Any]:
    """Devices check on edged's schedule; v2 is published at 10 % at t = 0 and raised to 100 % at t = raise_at."""
    rng = random.Random(7)
    devices = [f"device-{n:04d}" for n in range(args.devices)]
    heap = [(rng.uniform(0, args.interval), d) for d in devices]  # running for a while: any phase
    heapq.heapify(heap)
    metadata_changed_at = {0.0: "publish 10%", args.raise_at: "rollout 100%"}
    seen: dict[str, float] = dict.fromkeys(devices, -1.0)  # when each device last fetched new metadata
    updated: dict[str, float] = {}
    requests = 0
    body_bytes = 0
    per_minute: dict[int, int] = {}
    end = args.raise_at + 6 * args.interval
    percent = 10
    while heap:
        now, device = heapq.heappop(heap)
        if now > end:
            break
        percent = 100 if now >= args.raise_at else 10
        latest_change = max(t for t in metadata_changed_at if t <= now)
        fresh = seen[device] < latest_change
        requests += 2  # timestamp.json, and the N+1.root.json probe (404)
        body_bytes += sizes["root_probe"]
        if fresh or not etag:
            body_bytes += sizes["timestamp"]
        else:
            body_bytes += sizes["not_modified"]
        if fresh:
            seen[device] = now
            requests += 3
            body_bytes += sizes["snapshot"] + sizes["targets"] + sizes["index"]
        if device not in updated and takes_part(device, "bench", 2, percent):
            requests += 1
            body_bytes += sizes["model"]
            updated[device] = now + args.health_window
        per_minute[int(now // 60)] = per_minute.get(int(now // 60), 0) + (2 + (3 if fresh else 0))
        heapq.heappush(heap, (now + next_check_delay(args.interval, args.jitter, 0, 3600.0, rng), device))

    def time_to_95(start: float, targeted: list[str]) -> float | None:
        times = sorted(updated[d] - start for d in targeted if d in updated and updated[d] >= start)
        already = sum(1 for d in targeted if d in updated and updated[d] < start)
        needed = max(0, int(0.95 * len(targeted) + 0.999) - already)
        return round(times[needed - 1], 1) if 0 < needed <= len(times) else (0.0 if needed == 0 else None)

    in_ten = [d for d in devices if takes_part(d, "bench", 2, 10)]
    simulated = end
    return {
        "requests_per_s_mean": round(requests / simulated, 3),
        "requests_per_minute_peak": max(per_minute.values()),
        "megabytes_served": round(body_bytes / 2**20, 2),
        "idle_megabytes_per_day": round(
            (sizes["root_probe"] + (sizes["not_modified"] if etag else sizes["timestamp"]))
            * args.devices
            * 86400
            / args.interval
            / 2**20,
            2,
        ),
        "devices_in_10_percent": len(in_ten),
        "time_to_95_percent_of_the_10_percent_s": time_to_95(0.0, in_ten),
        "time_to_95_percent_of_all_after_raise_s": time_to_95(args.raise_at, devices),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("swap").set_defaults(run=swap)
    sub.add_parser("backlog").set_defaults(run=backlog)
    fleet_parser = sub.add_parser("fleet")
    fleet_parser.add_argument("--devices", type=int, default=1000)
    fleet_parser.add_argument("--interval", type=float, default=900.0)
    fleet_parser.add_argument("--jitter", type=float, default=0.2)
    fleet_parser.add_argument("--raise-at", type=float, default=7200.0)
    fleet_parser.add_argument("--health-window", type=float, default=60.0)
    fleet_parser.set_defaults(run=fleet)
    args = parser.parse_args()
    print(json.dumps(args.run(args), indent=1))


if __name__ == "__main__":
    main()
