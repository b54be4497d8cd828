"""`edged infer MODEL IMAGE...`: run a model on image files and print one result per image."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from edged.annotate import annotate
from edged.cli.options import add_model_options, model_config_from_args
from edged.errors import ConfigError, ImageError
from edged.inference.loader import load_bundle
from edged.results import prediction_fields, rounded_timings
from edged.sources.imagefile import read_image, write_image, written_path
from edged.types import Prediction


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("infer", help="run a model on image files", description="Run a model on image files.")
    parser.add_argument("model", type=Path, help="the .tflite model")
    parser.add_argument("images", type=Path, nargs="+", metavar="IMAGE", help="image files")
    add_model_options(parser)
    parser.add_argument(
        "--annotate", type=Path, metavar="DIR",
        help="write a copy of each image with results drawn into DIR, under the image's name (never over an input)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.set_defaults(handler=run)


def _human(image: Path, prediction: Prediction, width: int, height: int) -> str:
    total = sum(prediction.timing_ms.values())
    if prediction.task == "classification":
        found = (
            ", ".join(f"{label.label} {label.score:.2f}" for label in prediction.labels) or "nothing above threshold"
        )
        return f"{image}: {found}  ({total:.1f} ms)"
    lines = [f"{image}: {len(prediction.objects)} object(s)  ({total:.1f} ms)"]
    for obj in prediction.objects:
        box = obj.box.scale(width, height)
        lines.append(
            f"  {obj.label} {obj.score:.2f}  x {box.xmin:.0f}–{box.xmax:.0f}  y {box.ymin:.0f}–{box.ymax:.0f} px"
        )
    return "\n".join(lines)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def annotation_paths(images: list[Path], folder: Path) -> dict[Path, Path]:
    """Each input's annotated copy, `folder/<input name>`, checked before anything is written: ConfigError when a
    copy would overwrite an input (`folder` is an input's own folder), or two inputs would land on one file."""
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--annotate {folder}: not a folder; give the folder for the annotated copies")
    targets: dict[Path, Path] = {}
    for image in images:
        if any(_same_file(image, seen) for seen in targets):
            continue  # the same input twice: annotated once
        target = written_path(folder / image.name)
        for other in images:
            if _same_file(target, other):
                raise ConfigError(
                    f"--annotate {folder}: the annotated copy of {image} would overwrite the input {other}; "
                    f"write the copies to another folder (e.g. --annotate {folder / 'annotated'})"
                )
        clash = next((seen for seen, path in targets.items() if _same_file(path, target)), None)
        if clash is not None:
            raise ConfigError(
                f"--annotate {folder}: {clash} and {image} would both be written as {target}; annotate inputs "
                "that share a file name in separate runs, each with its own folder"
            )
        targets[image] = target
    return targets


def run(args: argparse.Namespace) -> int:
    config = model_config_from_args(args, args.model)
    annotated = annotation_paths(args.images, args.annotate) if args.annotate else {}
    bundle = load_bundle(config)
    failures = 0
    for image_path in args.images:
        try:
            started = time.perf_counter()
            image = read_image(image_path)
            read_ms = (time.perf_counter() - started) * 1000.0
            prediction = bundle.predict(image, "bgr")
        except ImageError as exc:
            failures += 1
            print(f"edged: error: {exc}", file=sys.stderr)
            continue
        height, width = image.shape[:2]
        if args.json:
            record: dict[str, Any] = {"image": str(image_path), **prediction_fields(prediction, width, height)}
            record["model"] = bundle.info.as_dict()
            record["timing_ms"] = rounded_timings({"read": read_ms, **prediction.timing_ms})
            print(json.dumps(record), flush=True)
        else:
            print(_human(image_path, prediction, width, height), flush=True)
        target = annotated.get(image_path)
        if target is not None:
            write_image(target, annotate(image, prediction.labels, prediction.objects))
    return 1 if failures else 0
