#!/usr/bin/env python3
"""The project's benchmarks (not tests): each compares ratios measured in the same run, since these machines
are shared and noisy. Figures and commands go to docs/performance.md.

    python tools/bench.py overhead     # preprocess + invoke + decode vs a bare invoke(), same model/threads
    python tools/bench.py throughput   # `edged bench` vs ../shared/bench/naive_loop.py, alternating rounds
                                       # (--baseline DIR: also `edged bench` of another checkout, before/after)
    python tools/bench.py mediapipe    # `edged bench` vs MediaPipe ImageClassifier (VIDEO mode), alternating
    python tools/bench.py freshness    # 30 fps real-time source, model slower than the camera: p99 latency
    python tools/bench.py live         # live sources: inputs prepared on the capture side or not, alternating
    python tools/bench.py memory       # RSS between result 1,000 and 20,000
    python tools/bench.py startup      # process start → first result
    python tools/bench.py all

Needs ../shared (models, video, naive loop); `--shared DIR` points elsewhere.
"""

from __future__ import annotations

import argparse
import json
import os
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
sys.path.insert(0, str(ROOT))

from edged.app.daemon import Daemon  # noqa: E402
from edged.app.stats import percentile  # noqa: E402
from edged.config.app import AppConfig  # noqa: E402
from edged.config.model import ModelConfig  # noqa: E402
from edged.inference.loader import load_bundle  # noqa: E402
from edged.publish.null import NullPublisher  # noqa: E402


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


# ---- machine load ---------------------------------------------------------------------------------------------
class LoadMeter:
    """CPU time other processes used meanwhile, in cores: the machine's busy time (/proc/stat) minus this process's
    and its waited-for children's. These machines are shared: a round with a busy neighbour says so."""

    def __enter__(self) -> LoadMeter:
        self._start = (time.monotonic(), _machine_busy_s(), _own_cpu_s())
        return self

    def __exit__(self, *_: object) -> None:
        wall0, busy0, own0 = self._start
        wall = time.monotonic() - wall0
        others = (_machine_busy_s() - busy0) - (_own_cpu_s() - own0)
        self.others_cores = round(max(0.0, others) / wall, 2) if wall > 0 else 0.0


def _machine_busy_s() -> float:
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
    busy = sum(fields) - fields[3] - fields[4]
    return busy / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    import resource

    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


QUIET: float | None = None  # --quiet: wait before each round until other processes use less than this many cores


def settle() -> None:
    """With --quiet, wait (up to 10 minutes) for a 3-second window in which other processes used less than QUIET
    cores, so that a round does not start in the middle of a neighbour's test run."""
    deadline = time.monotonic() + 600
    while QUIET is not None and time.monotonic() < deadline:
        with LoadMeter() as meter:
            time.sleep(3)
        if meter.others_cores < QUIET:
            return


def spread(values: list[float], digits: int = 3) -> dict[str, float]:
    return {"median": round(statistics.median(values), digits), "min": round(min(values), digits),
            "max": round(max(values), digits)}  # fmt: skip


# ---- inference core overhead ---------------------------------------------------------------------------------
class _Preparer:
    """A second thread preparing each next input the way the capture side does for sources whose every frame is
    inferred (the real mailbox with back-pressure, the pooled buffers handed back after the copy): it prepares the
    next input while the inference thread runs the current one."""

    def __init__(self, bundle: Any, image: Any, count: int, prepare_ms: list[float]) -> None:
        from edged.app.mailbox import LatestFrameMailbox

        self.mailbox = LatestFrameMailbox()
        self._args = (bundle, image, count, prepare_ms)
        self._thread = threading.Thread(target=self._run, name="bench-preparer")
        self._thread.start()

    def _run(self) -> None:
        from edged.app.mailbox import Captured
        from edged.inference.preprocess import InputPreparer
        from edged.types import Frame

        bundle, image, count, prepare_ms = self._args
        preparer, frame = InputPreparer(), Frame.now(image, "bench", 0)
        for _ in range(count):
            started = time.perf_counter()
            prepared = preparer.prepare(bundle.recipe, image, "bgr", bundle.roi)
            prepare_ms.append((time.perf_counter() - started) * 1000)
            self.mailbox.put(Captured(frame, prepared), wait=True)

    def join(self) -> None:
        self._thread.join()


BLOCK = 10  # calls of each kind in a row: long enough for bare invokes to run back to back, short enough for drift


def _overhead_round(bundle: Any, image: Any, iterations: int, split: dict[str, dict[str, list[float]]]) -> tuple[
    float, float, float]:  # fmt: skip
    """One round: blocks of BLOCK bare invokes, BLOCK predicts in line and BLOCK predicts of a prepared input, in
    turn, so that the machine's drift hits the three alike while bare invokes still mostly follow each other
    (an invoke right after a predict is slowed by the caches the preprocessing evicted: that is overhead too);
    returns the summed seconds of each."""
    from edged.inference.preprocess import plan_key

    preparer = _Preparer(bundle, image, iterations + 1, split["prepared_ahead"]["prepare_ahead"])
    warm = preparer.mailbox.take()
    assert warm is not None and warm.prepared is not None
    assert warm.prepared.matches(bundle.recipe, plan_key(image, "bgr", bundle.roi))  # the copy path is measured
    bundle.predict(image, "bgr", prepared=warm.prepared)
    bare = inline = ahead = 0.0
    for _ in range(iterations // BLOCK):
        started = time.perf_counter()
        for _ in range(BLOCK):
            bundle.interpreter.invoke()
        bare += time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(BLOCK):
            timing = bundle.predict(image, "bgr").timing_ms
            for stage in ("preprocess", "inference", "decode"):
                split["inline"][stage].append(timing[stage])
        inline += time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(BLOCK):
            item = preparer.mailbox.take()  # the inference thread's whole frame: take, copy, invoke, decode
            assert item is not None and item.prepared is not None
            timing = bundle.predict(image, "bgr", prepared=item.prepared).timing_ms
            split["prepared_ahead"]["copy"].append(timing["preprocess"] - item.prepared.preprocess_ms)
            split["prepared_ahead"]["inference"].append(timing["inference"])
            split["prepared_ahead"]["decode"].append(timing["decode"])
        ahead += time.perf_counter() - started
    preparer.join()
    return bare, inline, ahead


def overhead(shared: Path, threads: int, rounds: int, iterations: int) -> None:
    """Bare invoke() against predict() with preprocessing in line and against predict() of inputs a second thread
    prepared meanwhile (the capture side's way), in short alternating blocks over many rounds; reports the median
    of the per-round overheads over the bare invoke, their spread, and the split of each path's time."""
    import cv2

    cases = [
        ("mobilenet_v2_1.0_224_quant.tflite", "cat.bmp"),
        ("yolov8n_full_int8.tflite", "pets.jpg"),
    ]
    video = cv2.VideoCapture(str(shared / "video/cat_pan_1280x720.mp4"))
    ok, frame_720p = video.read()
    assert ok
    for model, image in cases:
        bundle = load_bundle(ModelConfig(path=shared / "models" / model, num_threads=threads))
        frame = cv2.imread(str(shared / "images" / image))
        for source_name, source in (("720p video frame", frame_720p), (image, frame)):
            split: dict[str, dict[str, list[float]]] = {
                "inline": {"preprocess": [], "inference": [], "decode": []},
                "prepared_ahead": {"prepare_ahead": [], "copy": [], "inference": [], "decode": []},
            }
            bare: list[float] = []
            inline: list[float] = []
            ahead: list[float] = []
            load_per_round: list[float] = []
            for _ in range(rounds):
                settle()
                with LoadMeter() as load:
                    bare_s, inline_s, ahead_s = _overhead_round(bundle, source, iterations, split)
                load_per_round.append(load.others_cores)
                bare.append(bare_s * 1000 / iterations)
                inline.append((inline_s / bare_s - 1) * 100)
                ahead.append((ahead_s / bare_s - 1) * 100)
            medians = {path: {k: round(statistics.median(v), 3) for k, v in values.items()}
                       for path, values in split.items()}  # fmt: skip
            emit({
                "bench": "overhead", "model": model, "input": source_name, "threads": threads,
                "bare_invoke_ms": round(statistics.median(bare), 3),
                "inline_overhead_pct": spread(inline, 1), "inline_split_ms": medians["inline"],
                "prepared_ahead_overhead_pct": spread(ahead, 1), "prepared_ahead_split_ms": medians["prepared_ahead"],
                "rounds": rounds, "iterations": iterations, "others_load_cores": spread(load_per_round, 2),
            })  # fmt: skip


# ---- throughput vs the naive loop ----------------------------------------------------------------------------
def throughput(shared: Path, threads: int, rounds: int, frames: int, baseline: Path | None) -> None:
    """`edged bench` against naive_loop.py (and, with --baseline, `edged bench` of another checkout), alternating
    rounds whose order flips each round; per round also the CPU-bound fraction edged bench reports and the load
    other processes put on the machine meanwhile."""
    model = shared / "data/models/mobilenet_v2_1.0_224_quant.tflite"
    video = shared / "data/video/cat_pan_1280x720.mp4"
    naive_cmd = [sys.executable, str(shared / "bench/naive_loop.py"), "--model", str(model), "--video", str(video),
                 "--frames", str(frames), "--threads", str(threads)]  # fmt: skip
    edged_cmd = [sys.executable, "-m", "edged", "-q", "bench", "--model", str(model), "--source", str(video),
                 "--frames", str(frames), "--threads", str(threads), "--json"]  # fmt: skip
    runs: dict[str, tuple[list[str], dict[str, str]]] = {
        "naive": (naive_cmd, dict(os.environ)), "edged": (edged_cmd, {**os.environ, "PYTHONPATH": str(ROOT)}),
    }  # fmt: skip
    if baseline is not None:
        runs["baseline"] = (edged_cmd, {**os.environ, "PYTHONPATH": str(baseline.resolve())})
    fps: dict[str, list[float]] = {name: [] for name in runs}
    fractions: list[float] = []
    limits: list[float] = []
    load: list[float] = []
    for number in range(rounds):
        order = list(runs) if number % 2 == 0 else list(reversed(runs))
        settle()
        with LoadMeter() as meter:
            for name in order:
                cmd, env = runs[name]
                done = subprocess.run(
                    cmd, capture_output=True, text=True, check=True, env=env, cwd=tempfile.gettempdir()
                )
                record = json.loads(done.stdout.strip().splitlines()[-1])
                fps[name].append(float(record["fps"]))
                if name == "edged":
                    fractions.append(float(record["cpu_bound"]["fraction"]))
                    limits.append(float(record["cpu_bound"]["limit_fps"]))
        load.append(meter.others_cores)
    ratios = [o / n for o, n in zip(fps["edged"], fps["naive"], strict=True)]
    report: dict[str, Any] = {
        "bench": "throughput", "model": model.name, "video": video.name, "threads": threads, "frames": frames,
        "naive_fps": fps["naive"], "edged_fps": fps["edged"],
        "ratio_to_naive": spread(ratios), "ratios": [round(r, 3) for r in ratios],
        "cpu_bound_fraction": spread(fractions), "fractions": fractions,
        "cpu_bound_limit_fps": spread(limits, 1), "others_load_cores": load,
    }  # fmt: skip
    if baseline is not None:
        before = [o / b for o, b in zip(fps["edged"], fps["baseline"], strict=True)]
        report.update({"baseline_fps": fps["baseline"], "ratio_to_baseline": spread(before),
                       "baseline_ratio_to_naive": spread([b / n for b, n in zip(fps["baseline"], fps["naive"],
                                                                                  strict=True)])})  # fmt: skip
    emit(report)


# ---- throughput vs MediaPipe Tasks -----------------------------------------------------------------------------
def mediapipe(shared: Path, threads: int, rounds: int, frames: int, python: Path) -> None:
    """`edged bench` against MediaPipe's ImageClassifier in VIDEO mode (tools/mediapipe_peer.py bench, run by
    the Python of .venv-mediapipe), same model, video and machine, alternating rounds. Both decode every frame
    of the video with OpenCV and classify it; MediaPipe picks its own thread count (no Python option)."""
    if not python.exists():
        sys.exit(f"bench mediapipe: {python} not found; run `make mediapipe-venv` (or pass --mediapipe-python)")
    model = shared / "data/models/mobilenet_v2_1.0_224_quant.tflite"
    video = shared / "data/video/cat_pan_1280x720.mp4"
    peer_cmd = [str(python), str(ROOT / "tools/mediapipe_peer.py"), "bench", str(model), str(video),
                "--frames", str(frames)]  # fmt: skip
    edged_cmd = [sys.executable, "-m", "edged", "-q", "bench", "--model", str(model), "--source", str(video),
                 "--frames", str(frames), "--threads", str(threads), "--json"]  # fmt: skip
    peer: list[float] = []
    ours: list[float] = []
    top = ""
    for _ in range(rounds):
        for cmd, sink in ((peer_cmd, peer), (edged_cmd, ours)):
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            record = json.loads(done.stdout.strip().splitlines()[-1])
            sink.append(float(record["fps"]))
            top = record.get("top", top)
    ratios = [o / m for o, m in zip(ours, peer, strict=True)]
    emit({
        "bench": "mediapipe", "model": model.name, "video": video.name, "edged_threads": threads, "frames": frames,
        "mediapipe_fps": peer, "edged_fps": ours, "median_ratio": round(statistics.median(ratios), 3),
        "ratios": [round(r, 3) for r in ratios], "mediapipe_top1": top,
    })  # fmt: skip


# ---- freshness and memory: in-process runs of the real daemon ------------------------------------------------
class RecordingPublisher(NullPublisher):
    """Encodes each result as JSON; keeps latency and inference time when `keep`; calls `on_result(count)`."""

    def __init__(self, on_result: Any = None, keep: bool = True) -> None:
        self.latency: list[float] = []
        self.inference: list[float] = []
        self.count = 0
        self.keep = keep
        self.on_result = on_result
        self.final_stats: dict[str, Any] = {}

    def publish_result(self, result: dict[str, Any]) -> None:
        json.dumps(result)
        self.count += 1
        if self.keep:
            self.latency.append(result["timing_ms"]["capture_to_publish"])
            self.inference.append(result["timing_ms"]["inference"])
        if self.on_result is not None:
            self.on_result(self.count)

    def publish_stats(self, stats: dict[str, Any]) -> None:
        self.final_stats = stats


def _config(model: Path, video: Path, threads: int, realtime: bool, stats_s: float = 3600) -> AppConfig:
    return AppConfig.model_validate({
        "device_id": "bench",
        "model": {"path": str(model), "num_threads": threads},
        "camera": {"type": "opencv", "source": str(video), "loop": True, "realtime": realtime},
        "pipeline": {"stats_interval_s": stats_s},
    })  # fmt: skip


def freshness(shared: Path, threads: int, seconds: float) -> None:
    model = shared / "models/yolov8n_full_int8.tflite"
    video = shared / "video/cat_pan_1280x720.mp4"  # 30 fps; played at its own rate like a camera
    publisher = RecordingPublisher()
    daemon = Daemon(_config(model, video, threads, realtime=True), publisher=publisher)
    threading.Timer(seconds, daemon.request_stop).start()
    daemon.run()
    latency = publisher.latency[5:]
    invoke = publisher.inference[5:]
    p99 = percentile(latency, 0.99) or 0.0
    invoke_p50 = percentile(invoke, 0.5) or 0.0
    stats = publisher.final_stats["totals"]
    emit({
        "bench": "freshness", "model": model.name, "source": f"{video.name} real-time 30 fps", "threads": threads,
        "results": len(latency), "captured": stats["captured"], "dropped": stats["dropped"],
        "invoke_p50_ms": round(invoke_p50, 2), "latency_p50_ms": round(percentile(latency, 0.5) or 0, 2),
        "latency_p99_ms": round(p99, 2), "p99_over_invoke": round(p99 / invoke_p50, 2),
    })  # fmt: skip


def live(shared: Path, threads: int, rounds: int, seconds: float) -> None:
    """Live sources: when the capture side prepares a frame's input (capture.LIVE_PREPARE: "idle" = only while the
    inference thread waits, edged's default; "always"; "never" = the inference thread always does it), alternating
    in one run, on the 720p video played like a camera. For each: latency capture→publish, results, dropped
    frames, and the process CPU time per result (what preparing frames that are then dropped costs)."""
    from edged.app import capture

    video = shared / "video/cat_pan_1280x720.mp4"
    cases = [("mobilenet_v2_1.0_224_quant.tflite", None), ("yolov8n_full_int8.tflite", None),
             ("yolov8n_full_int8.tflite", 90.0)]  # fmt: skip
    default = capture.LIVE_PREPARE
    for model_name, fps in cases:
        config = _config(shared / "models" / model_name, video, threads, realtime=True)
        if fps is not None:
            config = config.model_copy(update={"camera": config.camera.model_copy(update={"fps": fps})})
        policies: list[Any] = ["idle", "always", "never"]
        rows: dict[str, list[dict[str, float]]] = {policy: [] for policy in policies}
        for number in range(rounds):
            for where in policies if number % 2 == 0 else reversed(policies):
                settle()
                capture.LIVE_PREPARE = where
                publisher = RecordingPublisher()
                daemon = Daemon(config, publisher=publisher)
                threading.Timer(seconds, daemon.request_stop).start()
                cpu = time.process_time()
                with LoadMeter() as load:
                    daemon.run(handle_signals=False)
                cpu = time.process_time() - cpu
                latency = publisher.latency[5:]
                totals = publisher.final_stats["totals"]
                rows[where].append({
                    "latency_p50_ms": percentile(latency, 0.5) or 0.0,
                    "latency_p99_ms": percentile(latency, 0.99) or 0.0,
                    "results": float(len(publisher.latency)), "dropped": float(totals["dropped"]),
                    "cpu_ms_per_result": cpu * 1000.0 / max(1, len(publisher.latency)),
                    "others_load_cores": load.others_cores,
                })  # fmt: skip
        capture.LIVE_PREPARE = default
        emit({
            "bench": "live", "model": model_name, "camera_fps": fps or 30.0, "threads": threads, "rounds": rounds,
            "seconds": seconds,
            "capture_side_prepares": {where: {key: spread([row[key] for row in runs], 2) for key in runs[0]}
                                      for where, runs in rows.items()},
        })  # fmt: skip


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def memory(shared: Path, threads: int, last: int) -> None:
    model = shared / "models/mobilenet_v1_0.25_128_quant.tflite"
    video = shared / "video/cat_pan_1280x720.mp4"
    marks: dict[int, float] = {}
    checkpoints = {1000, 5000, 10000, last}

    def on_result(count: int) -> None:
        if count in checkpoints:
            marks[count] = rss_mb()
        if count >= last:
            daemon.request_stop()

    publisher = RecordingPublisher(on_result, keep=False)  # keep nothing per result: measure the daemon
    # the daemon's default stats interval, as deployed; its per-window samples are bounded either way
    daemon = Daemon(_config(model, video, threads, realtime=False, stats_s=10.0), publisher=publisher)
    daemon.run()
    emit({
        "bench": "memory", "model": model.name, "frames": last,
        "rss_mb": {str(k): round(v, 2) for k, v in sorted(marks.items())},
        "growth_mb_1000_to_last": round(marks[last] - marks[1000], 2),
    })  # fmt: skip


# ---- start-up -------------------------------------------------------------------------------------------------
def startup(shared: Path, threads: int, runs: int) -> None:
    model = shared / "models/mobilenet_v2_1.0_224_quant.tflite"
    video = shared / "video/cat_pan_1280x720.mp4"
    times: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "edged.toml"
        config.write_text(
            f'[model]\npath = "{model}"\nnum_threads = {threads}\n\n'
            f'[camera]\ntype = "opencv"\nsource = "{video}"\nloop = true\n'
        )
        for _ in range(runs):
            started = time.monotonic()
            process = subprocess.Popen(
                [sys.executable, "-m", "edged", "-q", "run", "--config", str(config)],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            )  # fmt: skip
            assert process.stdout is not None
            line = process.stdout.readline()
            times.append(time.monotonic() - started)
            process.terminate()
            process.wait(timeout=30)
            json.loads(line)
    emit({"bench": "startup", "model": model.name, "runs": runs,
          "first_result_s": [round(t, 3) for t in times], "median_s": round(statistics.median(times), 3)})  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "which", choices=["overhead", "throughput", "mediapipe", "freshness", "live", "memory", "startup", "all"]
    )
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--mediapipe-python", type=Path, default=ROOT / ".venv-mediapipe/bin/python")
    parser.add_argument(
        "--baseline", type=Path, help="throughput: also run `edged bench` of this checkout (before/after)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--last", type=int, default=20000)
    parser.add_argument("--quiet", type=float, metavar="CORES",
                        help="before each round, wait until other processes use less than CORES cores")  # fmt: skip
    args = parser.parse_args()
    global QUIET
    QUIET = args.quiet
    data = args.shared / "data"
    if not (data / "models").is_dir():
        sys.exit(f"bench: {data} not found; pass --shared DIR (the folder holding data/ and bench/)")
    np.random.seed(0)
    everything = ["overhead", "throughput", "mediapipe", "freshness", "live", "memory", "startup"]
    chosen = everything if args.which == "all" else [args.which]
    for which in chosen:
        if which == "overhead":
            overhead(data, args.threads, max(args.rounds, 20), iterations=50)
        elif which == "throughput":
            throughput(args.shared, args.threads, args.rounds, args.frames, args.baseline)
        elif which == "mediapipe":
            mediapipe(args.shared, args.threads, args.rounds, args.frames, args.mediapipe_python)
        elif which == "freshness":
            freshness(data, args.threads, args.seconds)
        elif which == "live":
            live(data, args.threads, args.rounds, args.seconds)
        elif which == "memory":
            memory(data, args.threads, args.last)
        elif which == "startup":
            startup(data, args.threads, runs=args.rounds)


if __name__ == "__main__":
    main()
