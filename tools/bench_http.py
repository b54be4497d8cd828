#!/usr/bin/env python3
"""Benchmarks of the status page's server (not tests): ratios measured in one run, alternating rounds, since
these machines are shared and noisy. Figures and commands go to docs/performance.md#status-page.

    python tools/bench_http.py streams   # inference fps with three live-view clients against none
    python tools/bench_http.py viewer-cpu  # edged's CPU with three viewers against none, camera in real time
    python tools/bench_http.py metrics   # the CPU cost of scraping /metrics every second

`edged run` runs as a child process, and the viewers and the scraper are other processes (curl), as they would
be on other machines: the figures are edged's own cost. `streams` needs ../shared (mobilenet_v2 and the 720p
video, read as fast as possible); `metrics` uses the project's own fixture model on a 10 fps synthetic camera,
so the process is mostly idle and the scrapes' CPU shows.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get_json(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
        return json.loads(response.read())


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


class EdgedRun:
    def __init__(self, folder: Path, model: Path, camera: str, threads: int) -> None:
        self.port = free_port()
        config = folder / "edged.toml"
        config.write_text(
            f'device_id = "bench"\n[model]\npath = "{model}"\nnum_threads = {threads}\n\n[camera]\n{camera}\n'
            f'[pipeline]\nstats_interval_s = 3600\n\n[publisher]\ntype = "null"\n\n'
            f'[http]\nlisten = "127.0.0.1:{self.port}"\n'
        )
        self.log = (folder / "edged.log").open("wb")
        self.process = subprocess.Popen([sys.executable, "-m", "edged", "run", "--config", str(config)],
                                        stdout=subprocess.DEVNULL, stderr=self.log)  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if get_json(self.port, "/api/stats")["totals"]["inferred"] > 10:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"edged did not start: see {folder / 'edged.log'}")

    def inferred(self) -> int:
        return int(get_json(self.port, "/api/stats")["totals"]["inferred"])

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(60)
        self.log.close()


def viewers(port: int, count: int, folder: Path, limit_rate: str | None) -> list[subprocess.Popen[bytes]]:
    """`count` curl processes reading /stream.mjpg; returns once each has received bytes."""
    started = []
    for number in range(count):
        out = folder / f"viewer{number}.mjpg"
        out.unlink(missing_ok=True)
        command = ["curl", "-sN", "-o", str(out), f"http://127.0.0.1:{port}/stream.mjpg"]
        if limit_rate:
            command[1:1] = ["--limit-rate", limit_rate]
        started.append(subprocess.Popen(command))
        deadline = time.monotonic() + 30
        while (not out.exists() or out.stat().st_size == 0) and time.monotonic() < deadline:
            time.sleep(0.05)
    return started


def streams(shared: Path, rounds: int, seconds: float, threads: int, limit_rate: str | None) -> None:
    model = shared / "models" / "mobilenet_v2_1.0_224_quant.tflite"
    video = shared / "video" / "cat_pan_1280x720.mp4"
    camera = f'type = "opencv"\nsource = "{video}"\nloop = true\nrealtime = false\n'
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        edged = EdgedRun(folder, model, camera, threads)
        try:
            ratios, none_fps, three_fps = [], [], []
            for round_number in range(rounds):
                fps: dict[int, float] = {}
                order = (0, 3) if round_number % 2 == 0 else (3, 0)
                for clients in order:
                    procs = viewers(edged.port, clients, folder, limit_rate)
                    start, at = edged.inferred(), time.monotonic()
                    time.sleep(seconds)
                    fps[clients] = (edged.inferred() - start) / (time.monotonic() - at)
                    for proc in procs:
                        proc.terminate()
                        proc.wait(10)
                none_fps.append(fps[0])
                three_fps.append(fps[3])
                ratios.append(fps[3] / fps[0])
                emit({"round": round_number, "fps_none": round(fps[0], 1), "fps_three_viewers": round(fps[3], 1),
                      "ratio": round(fps[3] / fps[0], 3)})  # fmt: skip
            emit({"benchmark": "streams", "limit_rate": limit_rate, "median_ratio": round(statistics.median(ratios), 3),
                  "fps_none": [round(v, 1) for v in none_fps], "fps_three": [round(v, 1) for v in three_fps],
                  "ratios": [round(v, 3) for v in ratios]})  # fmt: skip
        finally:
            edged.stop()


def viewer_cpu(shared: Path, rounds: int, seconds: float, threads: int) -> None:
    """edged's own CPU with three viewers against none, the camera in real time (30 fps) so the process is not
    saturated: what the viewers cost, in a figure the neighbours' load barely moves."""
    model = shared / "models" / "mobilenet_v2_1.0_224_quant.tflite"
    video = shared / "video" / "cat_pan_1280x720.mp4"
    camera = f'type = "opencv"\nsource = "{video}"\nloop = true\nrealtime = true\n'
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        edged = EdgedRun(folder, model, camera, threads)
        pid = edged.process.pid
        try:
            extra = []
            for round_number in range(rounds):
                cores: dict[int, float] = {}
                for clients in (0, 3) if round_number % 2 == 0 else (3, 0):
                    procs = viewers(edged.port, clients, folder, None)
                    cpu0, t0 = cpu_seconds(pid), time.monotonic()
                    time.sleep(seconds)
                    cores[clients] = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
                    for proc in procs:
                        proc.terminate()
                        proc.wait(10)
                extra.append(cores[3] - cores[0])
                emit({"round": round_number, "cores_none": round(cores[0], 3), "cores_three": round(cores[3], 3)})
            emit({"benchmark": "viewer-cpu", "median_extra_percent_of_a_core": round(100 * statistics.median(extra), 1),
                  "extra_percent": [round(100 * v, 1) for v in extra]})  # fmt: skip
        finally:
            edged.stop()


def metrics(rounds: int, seconds: float) -> None:
    model = ROOT / "tests" / "fixtures" / "models" / "shapes_yolov8_int8.tflite"
    camera = 'type = "synthetic"\nfps = 10\nwidth = 640\nheight = 480\n'
    with tempfile.TemporaryDirectory() as tmp:
        edged = EdgedRun(Path(tmp), model, camera, 1)
        pid = edged.process.pid
        try:
            extra_ms, sizes, idle_cores, scraped_cores = [], [], [], []
            for round_number in range(rounds):
                used: dict[bool, float] = {}
                scrapes = 0
                for scraping in (False, True) if round_number % 2 == 0 else (True, False):
                    cpu0, t0 = cpu_seconds(pid), time.monotonic()
                    next_at = t0
                    while time.monotonic() - t0 < seconds:
                        if scraping and time.monotonic() >= next_at:
                            body = subprocess.run(["curl", "-s", f"http://127.0.0.1:{edged.port}/metrics"],
                                                  capture_output=True, check=True).stdout  # fmt: skip
                            sizes.append(len(body))
                            scrapes += 1
                            next_at += 1.0
                        time.sleep(0.05)
                    used[scraping] = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
                idle_cores.append(used[False])
                scraped_cores.append(used[True])
                per_scrape = (used[True] - used[False]) * seconds / max(scrapes, 1) * 1000
                extra_ms.append(per_scrape)
                emit({"round": round_number, "cpu_idle_cores": round(used[False], 4),
                      "cpu_scraped_cores": round(used[True], 4), "scrapes": scrapes,
                      "cpu_ms_per_scrape": round(per_scrape, 2)})  # fmt: skip
            emit({"benchmark": "metrics", "median_cpu_ms_per_scrape": round(statistics.median(extra_ms), 2),
                  "median_cpu_idle_percent_of_a_core": round(100 * statistics.median(idle_cores), 2),
                  "median_cpu_scraped_percent_of_a_core": round(100 * statistics.median(scraped_cores), 2),
                  "response_bytes": int(statistics.median(sizes))})  # fmt: skip
        finally:
            edged.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", choices=["streams", "viewer-cpu", "metrics", "all"])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit-rate", default=None, help="curl --limit-rate for the viewers (slow clients)")
    args = parser.parse_args()
    if shutil.which("curl") is None:
        parser.error("curl is needed (apt-get install curl)")
    if args.which in ("streams", "all"):
        streams(args.shared, args.rounds, args.seconds, args.threads, args.limit_rate)
    if args.which in ("viewer-cpu", "all"):
        viewer_cpu(args.shared, args.rounds, args.seconds, args.threads)
    if args.which in ("metrics", "all"):
        metrics(args.rounds, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
