"""`edged bench`: end-to-end fps and per-stage timings of the daemon's pipeline on a file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from edged.app.bench import run_bench
from edged.config import load_config
from edged.config.app import AppConfig
from edged.config.model import ModelConfig
from edged.config.pipeline import PipelineConfig
from edged.errors import ConfigError
from edged.sources.opencv import OpenCvCamera


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "bench",
        help="benchmark the pipeline on a video file",
        description="Run the pipeline on a file as fast as possible; print per-stage timings and end-to-end fps, "
        "then the CPU-bound limit (the usable cores over the CPU time per frame of capture decode, preprocess, invoke "
        "and decode, each measured alone in the same run) and the fraction of it edged reached.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", "-c", type=Path, metavar="FILE", help="a configuration (its camera must be a file)")
    source.add_argument("--model", type=Path, metavar="MODEL", help="a .tflite model (with --source)")
    parser.add_argument("--source", metavar="VIDEO", help="a video file (with --model)")
    parser.add_argument("--frames", type=int, default=600, metavar="N", help="frames to measure (default 600)")
    parser.add_argument("--threads", type=int, metavar="T", help="CPU threads for the model (default: all cores)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=run)


def bench_config(args: argparse.Namespace) -> AppConfig:
    """The configuration to benchmark: the file source reads as fast as possible and loops."""
    if args.config is not None:
        config = load_config(args.config)
        if not isinstance(config.camera, OpenCvCamera):
            raise ConfigError("edged bench needs a file source: [camera] type = 'opencv' with a video file")
        camera = config.camera.model_copy(update={"realtime": False, "loop": True})
        model = config.model
    else:
        if args.source is None:
            raise ConfigError("--model needs --source VIDEO")
        camera = OpenCvCamera(type="opencv", source=args.source, realtime=False, loop=True)
        model = ModelConfig(path=args.model)
    if args.threads is not None:
        model = model.model_copy(update={"num_threads": args.threads})
    if args.frames < 1:
        raise ConfigError("--frames must be at least 1")
    return AppConfig(device_id="bench", model=model, camera=camera, pipeline=PipelineConfig(stats_interval_s=3600))


def _table(report: dict[str, Any]) -> str:
    lines = [f"{'stage':<12}{'p50 ms':>10}{'p95 ms':>10}{'mean ms':>10}"]
    for stage, values in report["stages"].items():
        cells = "".join(f"{'' if values.get(k) is None else values[k]:>10}" for k in ("p50", "p95", "mean"))
        lines.append(f"{stage:<12}{cells}")
    model = report["model"] or {}
    lines.append(
        f"end-to-end: {report['fps']} fps over {report['frames']} frames in {report['seconds']} s "
        f"({model.get('name')}, {report['accelerator']}, threads {report['threads'] or 'all'}, "
        f"dropped {report['dropped']})"
    )
    limit = report.get("cpu_bound") or {}
    if limit.get("limit_fps"):
        cpu = " + ".join(f"{stage} {ms}" for stage, ms in limit["stage_cpu_ms"].items())
        lines.append(
            f"CPU-bound limit: {limit['limit_fps']} fps ({cpu} = {limit['cpu_ms_per_frame']} ms CPU per frame, "
            f"{limit['usable_cores']:g} usable cores); edged reached {limit['fraction']} of it "
            f"(the pipeline used {limit['pipeline_cpu_ms_per_frame']} ms CPU per frame)"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    report = run_bench(bench_config(args), args.frames)
    print(json.dumps(report) if args.json else _table(report))
    return 0
