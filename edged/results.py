"""The JSON shape of predictions, shared by `edged infer --json` and the pipeline's result messages."""

from __future__ import annotations

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


def utc_iso(epoch_s: float) -> str:
    """UTC ISO 8601 with milliseconds and a Z, e.g. 2026-11-27T17:20:23.123Z."""
    import datetime as _dt

    moment = _dt.datetime.fromtimestamp(epoch_s, tz=_dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


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
    return {
        "schema": RESULT_SCHEMA_ID,
        "run_id": run_id,
        "seq": seq,
        "device_id": device_id,
        "source": {"id": frame.source_id, "frame_index": frame.index, "width": frame.width, "height": frame.height},
        "captured_at": utc_iso(frame.captured_at),
        "captured_at_ms": round(frame.captured_at * 1000),
        "published_at": utc_iso(published_at),
        "published_at_ms": round(published_at * 1000),
        "model": model.as_dict(),
        **prediction_fields(prediction, frame.width, frame.height),
        "timing_ms": rounded_timings(timing),
    }
