"""The JSON shape of predictions, shared by `edged infer --json` and the pipeline's result messages."""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any

from edged.types import Frame, ModelInfo, Prediction


def prediction_fields(prediction: Prediction, width: int, height: int) -> dict[str, Any]:
    """`task`, `labels` and `objects` of one prediction on a width×height frame."""
    return {
        "task": prediction.task,
        "labels": [label.as_dict() for label in prediction.labels],
        "objects": [obj.as_dict(width, height) for obj in prediction.objects],
    }


def rounded_timings(timing_ms: dict[str, float]) -> dict[str, float]:
    return {key: round(value, 3) for key, value in timing_ms.items()}


def epoch_ms(epoch_s: float) -> int:
    """Whole milliseconds since the epoch, truncated: the one integer a timestamp's text and number both come from."""
    return math.floor(epoch_s * 1000)


def utc_iso_ms(ms: int) -> str:
    """UTC ISO 8601 with milliseconds and a Z for epoch milliseconds, e.g. 2026-11-27T17:20:23.123Z."""
    seconds, millis = divmod(ms, 1000)
    moment = _dt.datetime.fromtimestamp(seconds, tz=_dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis:03d}Z"


def utc_iso(epoch_s: float) -> str:
    """UTC ISO 8601 with milliseconds and a Z, e.g. 2026-11-27T17:20:23.123Z (the millisecond of `epoch_ms`)."""
    return utc_iso_ms(epoch_ms(epoch_s))


RESULT_SCHEMA_ID = "https://edged.dev/schemas/result-1.json"


def build_result(
    *,
    run_id: str,
    seq: int,
    device_id: str,
    frame: Frame,
    prediction: Prediction,
    model: ModelInfo,
    published_at: float,
    published_mono: float,
) -> dict[str, Any]:
    """One result message (schema: edged/schemas/result.schema.json, documented in docs/results.md)."""
    timing = {"capture_to_publish": (published_mono - frame.captured_mono) * 1000.0, **prediction.timing_ms}
    captured_ms, published_ms = epoch_ms(frame.captured_at), epoch_ms(published_at)  # text and number agree
    source: dict[str, Any] = {"id": frame.source_id, "frame_index": frame.index, "width": frame.width,
                              "height": frame.height}  # fmt: skip
    if frame.file is not None:
        source["file"] = frame.file
    return {
        "schema": RESULT_SCHEMA_ID,
        "run_id": run_id,
        "seq": seq,
        "device_id": device_id,
        "source": source,
        "captured_at": utc_iso_ms(captured_ms),
        "captured_at_ms": captured_ms,
        "published_at": utc_iso_ms(published_ms),
        "published_at_ms": published_ms,
        "model": model.as_dict(),
        **prediction_fields(prediction, frame.width, frame.height),
        "timing_ms": rounded_timings(timing),
    }
