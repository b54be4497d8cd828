"""Which results are published (every / on_change / interval), and the per-label values for labels/<label>.

Pure logic over result dicts and a clock passed in, so tests drive time without sleeping.
"""

from __future__ import annotations

from typing import Any

from edged.publish.mqtt.config import MqttPublisherConfig

Signature = tuple[str, ...]


def signature(result: dict[str, Any]) -> Signature:
    """What on_change compares: the top label (classification) or the set of object labels (detection)."""
    if result.get("task") == "detection":
        return tuple(sorted({obj["label"] for obj in result.get("objects", ())}))
    labels = result.get("labels") or ()
    return (labels[0]["label"],) if labels else ()


class ModeFilter:
    """Decides, result by result, whether it goes to <prefix>/results."""

    def __init__(self, config: MqttPublisherConfig) -> None:
        self._last_at: float | None = None
        self._last_signature: Signature | None = None
        self.retune(config)

    def retune(self, config: MqttPublisherConfig) -> None:
        """New mode and rates (a reload), keeping what was last published: the next decision follows on."""
        self.mode = config.mode
        self.min_interval_s = config.min_interval_s
        self.heartbeat_s = config.heartbeat_s
        self.interval_s = config.interval_s

    def accept(self, result: dict[str, Any], now: float) -> bool:
        if self.mode == "every":
            return True
        last = self._last_at
        if self.mode == "interval":
            publish = last is None or now - last >= self.interval_s
        else:
            current = signature(result)
            if last is None:
                publish = True
            else:
                elapsed = now - last
                changed = current != self._last_signature
                publish = (changed and elapsed >= self.min_interval_s) or (
                    self.heartbeat_s > 0 and elapsed >= self.heartbeat_s
                )
            if publish:
                self._last_signature = current
        if publish:
            self._last_at = now
        return publish


def label_values(result: dict[str, Any]) -> dict[str, float]:
    """Detection: how many objects of each label; classification: each reported label's score."""
    values: dict[str, float] = {}
    if result.get("task") == "detection":
        for obj in result.get("objects", ()):
            values[obj["label"]] = values.get(obj["label"], 0) + 1
    else:
        for label in result.get("labels", ()):
            values.setdefault(label["label"], round(float(label["score"]), 2))
    return values


def format_value(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"
