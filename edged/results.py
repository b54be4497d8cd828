"""The JSON shape of predictions, shared by `edged infer --json` and the pipeline's result messages."""

from __future__ import annotations

from typing import Any

from edged.types import Prediction


def prediction_fields(prediction: Prediction, width: int, height: int) -> dict[str, Any]:
    """`task`, `labels` and `objects` of one prediction on a width×height frame."""
    return {
        "task": prediction.task,
        "labels": [label.as_dict() for label in prediction.labels],
        "objects": [obj.as_dict(width, height) for obj in prediction.objects],
    }


def rounded_timings(timing_ms: dict[str, float]) -> dict[str, float]:
    return {key: round(value, 3) for key, value in timing_ms.items()}
