#!/usr/bin/env python3
"""MediaPipe Tasks as the reference peer: run its ImageClassifier / ObjectDetector and print JSON.

Developer tool, run by the Python of .venv-mediapipe (`make mediapipe-venv`), never by edged: the mediapipe
wheel pulls opencv-contrib-python, which clashes with edged's opencv-python-headless (both are `cv2`), so the
tests and tools/bench.py call this script in a subprocess and read one JSON object per line.

    .venv-mediapipe/bin/python tools/mediapipe_peer.py classify MODEL IMAGE... [--max-results K]
    .venv-mediapipe/bin/python tools/mediapipe_peer.py detect MODEL IMAGE... [--score-threshold T]
    .venv-mediapipe/bin/python tools/mediapipe_peer.py bench MODEL VIDEO [--frames N]

classify/detect print one line per image; a model MediaPipe refuses prints {"error": ...} and exits 3.
Boxes are normalized to the image (xmin, ymin, xmax, ymax), like edged's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import cv2
import mediapipe as mp
from mediapipe.tasks import python as mp_tasks
from mediapipe.tasks.python import vision

REFUSED = 3


def _image(path: str) -> tuple[Any, int, int]:
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise SystemExit(f"cannot read image {path}")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb), rgb.shape[1], rgb.shape[0]


def _open(factory: Any, options: Any) -> Any:
    try:
        return factory.create_from_options(options)
    except Exception as exc:  # MediaPipe raises RuntimeError/ValueError with its status text
        print(json.dumps({"error": " ".join(str(exc).split())}), flush=True)
        raise SystemExit(REFUSED) from exc


def classify(args: argparse.Namespace) -> None:
    options = vision.ImageClassifierOptions(
        base_options=mp_tasks.BaseOptions(model_asset_path=args.model), max_results=args.max_results
    )
    with _open(vision.ImageClassifier, options) as classifier:
        for path in args.images:
            image, _, _ = _image(path)
            result = classifier.classify(image)
            categories = [
                {"index": c.index, "label": c.category_name, "score": c.score}
                for c in result.classifications[0].categories
            ]
            print(json.dumps({"image": path, "labels": categories}), flush=True)


def detect(args: argparse.Namespace) -> None:
    options = vision.ObjectDetectorOptions(
        base_options=mp_tasks.BaseOptions(model_asset_path=args.model),
        score_threshold=args.score_threshold,
        max_results=args.max_results,
    )
    with _open(vision.ObjectDetector, options) as detector:
        for path in args.images:
            image, width, height = _image(path)
            objects = []
            for detection in detector.detect(image).detections:
                box = detection.bounding_box
                category = detection.categories[0]
                objects.append(
                    {
                        "index": category.index,
                        "label": category.category_name,
                        "score": category.score,
                        "box": {
                            "xmin": box.origin_x / width,
                            "ymin": box.origin_y / height,
                            "xmax": (box.origin_x + box.width) / width,
                            "ymax": (box.origin_y + box.height) / height,
                        },
                    }
                )
            print(json.dumps({"image": path, "objects": objects}), flush=True)


def bench(args: argparse.Namespace) -> None:
    """ImageClassifier in VIDEO mode over a video file, rewound at its end, like `edged bench`: decode,
    colour conversion and classification of every frame, as fast as possible."""
    options = vision.ImageClassifierOptions(
        base_options=mp_tasks.BaseOptions(model_asset_path=args.model),
        running_mode=vision.RunningMode.VIDEO,
        max_results=3,
    )
    capture = cv2.VideoCapture(args.video)
    top = ""
    with _open(vision.ImageClassifier, options) as classifier:
        frames, timestamp_ms = 0, 0
        started = time.perf_counter()
        while frames < args.frames:
            ok, bgr = capture.read()
            if not ok:
                capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                continue
            image = mp.Image(image_format=mp.ImageFormat.SRGB, data=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            timestamp_ms += 33
            result = classifier.classify_for_video(image, timestamp_ms)
            top = result.classifications[0].categories[0].category_name
            frames += 1
        seconds = time.perf_counter() - started
    print(json.dumps({"frames": frames, "seconds": round(seconds, 4), "fps": round(frames / seconds, 2), "top": top}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, handler in (("classify", classify), ("detect", detect)):
        command = commands.add_parser(name)
        command.add_argument("model")
        command.add_argument("images", nargs="+")
        command.add_argument("--max-results", type=int, default=5 if name == "classify" else -1)
        command.add_argument("--score-threshold", type=float, default=0.5)
        command.set_defaults(handler=handler)
    command = commands.add_parser("bench")
    command.add_argument("model")
    command.add_argument("video")
    command.add_argument("--frames", type=int, default=600)
    command.set_defaults(handler=bench)
    args = parser.parse_args()
    args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
