"""`make demo`: edged on a synthetic camera with the project's shapes detector, publishing to a private mosquitto.

Starts mosquitto on a free loopback port (installing it with apt-get when missing and run as root), runs
`edged run` for a bounded number of frames, shows what arrives with `mosquitto_sub`, sends a command with
`mosquitto_pub`, then stops everything and removes its temporary files. Nothing listens beyond 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.broker import INSTALL_HINT, Mosquitto, find_mosquitto  # noqa: E402

MODEL = ROOT / "tests" / "fixtures" / "models" / "shapes_yolov8_int8.tflite"
DEVICE = "demo"
PREFIX = f"edged/{DEVICE}"
LABELS = ("red_square", "green_circle", "blue_triangle")
_print_lock = threading.Lock()
_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")


def say(text: str) -> None:
    with _print_lock:
        print(text, flush=True)


def ensure_mosquitto() -> None:
    """mosquitto and its clients, installed with apt-get if missing and we may; otherwise say how."""
    if find_mosquitto() and shutil.which("mosquitto_sub") and shutil.which("mosquitto_pub"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        sys.exit(f"demo: mosquitto (the MQTT broker) and mosquitto-clients are needed; {INSTALL_HINT}")
    say("demo: installing mosquitto and mosquitto-clients with apt-get ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "mosquitto", "mosquitto-clients"],
                   check=True, env=env)  # fmt: skip
    say("demo: (the package also enables a system mosquitto service; `systemctl disable --now mosquitto` stops it)")
    if not find_mosquitto():
        sys.exit("demo: mosquitto is still not available after apt-get install")


def write_config(folder: Path, port: int, frames: int, fps: float, model: Path) -> Path:
    labels = ", ".join(f'"{label}"' for label in LABELS)
    config = folder / "demo.toml"
    config.write_text(
        f'device_id = "{DEVICE}"\n\n[model]\npath = "{model}"\n\n'
        f'[camera]\ntype = "synthetic"\nfps = {fps}\nframes = {frames}\nshapes = 2\n\n'
        "[pipeline]\nstats_interval_s = 5.0\n\n"
        f'[publisher]\ntype = "mqtt"\nhost = "127.0.0.1"\nport = {port}\nlabels = [{labels}]\n'
        "snapshot_interval_s = 5.0\n"
    )
    return config


def describe(topic: str, payload: str) -> str:
    """One compact line per message."""
    short = topic.removeprefix(PREFIX + "/")
    try:
        data: Any = json.loads(payload)
    except ValueError:
        return f"{short:<22} {payload[:100]}"
    if short == "results":
        found = [f"{o['label']} {o['score']:.2f}" for o in data["objects"]] or [
            f"{label['label']} {label['score']:.2f}" for label in data["labels"]
        ]
        return f"{'results':<22} seq {data['seq']:>4}  {', '.join(found) or '(nothing)'}"
    if short == "state":
        model = data.get("model") or {}
        return (f"{'state':<22} {model.get('name')} on {data.get('accelerator')}, source "
                f"{data['source']['state']}, up {data['uptime_s']} s")  # fmt: skip
    if short == "stats":
        mqtt = data.get("mqtt", {})
        return (f"{'stats':<22} {data['output_fps']} results/s, inference p50 {data['inference_ms']['p50']} ms, "
                f"delivered {mqtt.get('delivered')}, buffered {mqtt.get('buffered')}")  # fmt: skip
    if short == "events":
        extra = {k: v for k, v in data.items() if k not in ("event", "at")}
        return f"{'event':<22} {data['event']} {json.dumps(extra) if extra else ''}"
    if short.endswith("/reply"):
        outcome = "ok" if data.get("ok") else f"refused: {data.get('error')}"
        return f"{short:<22} {outcome} {json.dumps(data.get('result', ''))[:80]}"
    if topic.startswith("homeassistant/device/") and isinstance(data, dict):  # device-based discovery (default)
        components = data.get("cmps") or {}
        return f"{'discovery':<22} device {topic.split('/')[2]}: {len(components)} entities ({', '.join(components)})"[
            :160
        ]
    if topic.startswith("homeassistant/"):
        parts = topic.split("/")  # <prefix>/<component>/<node>/<entity>/config
        name = data.get("name") if isinstance(data, dict) else None
        return f"{'discovery':<22} {' '.join(parts[1:-1])} ({name})"
    return f"{short:<22} {payload[:100]}"


def pump(stream: IO[str], handle: Any) -> None:
    for line in stream:
        try:
            handle(line.rstrip("\n"))
        except Exception as exc:  # one message the demo cannot describe must not stop the others
            say(f"  ????  | {line.rstrip()[:120]} ({type(exc).__name__}: {exc})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200, help="frames to process (default 200)")
    parser.add_argument("--fps", type=float, default=10.0, help="synthetic camera rate (default 10)")
    parser.add_argument("--model", type=Path, default=MODEL, help="a .tflite model (default: the shapes detector)")
    args = parser.parse_args()
    if not args.model.exists():
        hint = "; run `make fixtures` to generate it" if args.model == MODEL else ""
        sys.exit(f"demo: the model {args.model} is missing{hint}")
    ensure_mosquitto()
    work = Path(tempfile.mkdtemp(prefix="edged-demo-"))
    processes: list[subprocess.Popen[str]] = []
    broker = Mosquitto(work / "broker")
    results: list[int] = []
    try:
        broker.start()
        say(f"demo: private mosquitto on 127.0.0.1:{broker.port}")
        sub_cmd = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-v", "-t", f"{PREFIX}/#",
                   "-t", "homeassistant/#", "-T", f"{PREFIX}/snapshot"]  # fmt: skip
        say("demo: $ " + " ".join(sub_cmd[:-2]) + " ...")
        sub = subprocess.Popen(sub_cmd, stdout=subprocess.PIPE, text=True, errors="replace")
        snaps = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-t",
                                  f"{PREFIX}/snapshot", "-F", "%t %l"], stdout=subprocess.PIPE, text=True)  # fmt: skip
        processes += [sub, snaps]

        def on_message(line: str) -> None:
            topic, _, payload = line.partition(" ")
            if topic == f"{PREFIX}/results":
                results.append(json.loads(payload)["seq"])
            say("  mqtt  | " + describe(topic, payload))

        def on_snapshot(line: str) -> None:
            _, _, size = line.partition(" ")
            say(f"  mqtt  | {'snapshot':<22} JPEG, {size} bytes")

        threading.Thread(target=pump, args=(sub.stdout, on_message), daemon=True).start()
        threading.Thread(target=pump, args=(snaps.stdout, on_snapshot), daemon=True).start()
        time.sleep(0.5)
        config = write_config(work, broker.port, args.frames, args.fps, args.model.resolve())
        say(f"demo: $ edged run --config {config}   ({args.frames} frames at {args.fps:g} fps)")
        edged = subprocess.Popen([sys.executable, "-m", "edged", "run", "--config", str(config)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
        processes.append(edged)
        threading.Thread(target=pump, args=(edged.stderr, lambda line: say("  edged | " + _TIMESTAMP.sub("", line))),
                         daemon=True).start()  # fmt: skip
        time.sleep(min(6.0, args.frames / args.fps / 2))
        if edged.poll() is None:
            command = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-t", f"{PREFIX}/cmd/snapshot",
                       "-m", '{"id": "demo"}']  # fmt: skip
            say("demo: $ " + " ".join(command))
            subprocess.run(command, check=False)
        code = edged.wait(timeout=args.frames / args.fps + 60)
        time.sleep(1.0)  # the last messages on their way to mosquitto_sub
        missing = sorted(set(range(max(results, default=-1) + 1)) - set(results))
        say(f"demo: edged exited with {code}; {len(set(results))} results arrived over MQTT"
            + (f", missing seqs {missing[:10]}" if missing else ", no gap in seq"))  # fmt: skip
        if code == 0 and (missing or not results):  # a live camera may drop a frame; a result must never be lost
            say("demo: FAILED: results were lost on the way to the broker" if missing else "demo: FAILED: no result")
            return 1
        return code
    except KeyboardInterrupt:
        say("demo: interrupted")
        return 130
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
