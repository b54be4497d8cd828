"""Per-label values and "detected" states for labels/<label> and labels/<label>/detected, smoothed so a home
automation recorder is not flooded: pure logic over results and a clock passed in.

- A value (object count, or score with two decimals) is published when it changes, but not sooner than
  `hold_s` after the last one of that label; a change inside the hold is published with the first result after
  the hold ends (each result offers the current value again), unless the value went back meanwhile.
- `detected` is ON as soon as the label is at or above its threshold (any object, for detection: objects are
  only reported at or above it), and goes OFF only once it has been below for `off_delay_s`.
- The top label and score (the <prefix>/top topic) follow the same hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edged.publish.mqtt.modes import format_value, label_values

ON = "ON"
OFF = "OFF"


@dataclass
class _Held:
    """One published value with a hold time: what was published last, and when."""

    published: str | None = None
    at: float = float("-inf")

    def offer(self, text: str, now: float, hold_s: float) -> str | None:
        """The text to publish now, or None (unchanged, or still inside the hold)."""
        if text == self.published or now - self.at < hold_s:
            return None
        self.published, self.at = text, now
        return text


@dataclass
class _Detected:
    on: bool | None = None
    last_seen: float = float("-inf")


@dataclass
class LabelStates:
    """`labels`: the tracked labels, or None for every label seen (then absent ones read 0)."""

    labels: list[str] | None
    thresholds: dict[str, float]
    detection: bool
    hold_s: float = 1.0
    off_delay_s: float = 5.0
    _values: dict[str, _Held] = field(default_factory=dict)
    _detected: dict[str, _Detected] = field(default_factory=dict)

    def _names(self, values: dict[str, float]) -> list[str]:
        if self.labels is not None:
            return self.labels
        return list(dict.fromkeys([*self._values, *values]))

    def is_detected(self, label: str, value: float) -> bool:
        if self.detection:
            return value > 0
        return value > 0 and value >= self.thresholds.get(label, 0.5)

    def changes(self, result: dict[str, Any], now: float) -> list[tuple[str, str, str]]:
        """(kind, label, text) to publish for this result: kind is "value" or "detected"."""
        values = label_values(result)
        out: list[tuple[str, str, str]] = []
        for name in self._names(values):
            value = values.get(name, 0)
            held = self._values.setdefault(name, _Held())
            text = held.offer(format_value(value), now, self.hold_s)
            if text is not None:
                out.append(("value", name, text))
            state = self._detected.setdefault(name, _Detected())
            if self.is_detected(name, value):
                state.last_seen = now
                if state.on is not True:
                    state.on = True
                    out.append(("detected", name, ON))
            elif state.on is None or (state.on and now - state.last_seen >= self.off_delay_s):
                state.on = False
                out.append(("detected", name, OFF))
        return out

    def current(self) -> list[tuple[str, str, str]]:
        """Every value and state last published, to publish again after a reconnect."""
        out = [("value", name, held.published) for name, held in self._values.items() if held.published is not None]
        out += [("detected", name, ON if s.on else OFF) for name, s in self._detected.items() if s.on is not None]
        return out


def top_of(result: dict[str, Any]) -> dict[str, Any]:
    """The best label (classification) or object (detection): <prefix>/top's payload, score in % (0-100)."""
    found = result.get("objects") if result.get("task") == "detection" else result.get("labels")
    if not found:
        return {"label": None, "score": 0}
    best = max(found, key=lambda item: item["score"])
    return {"label": best["label"], "score": round(float(best["score"]) * 100)}


@dataclass
class TopState:
    hold_s: float = 1.0
    _held: _Held = field(default_factory=_Held)

    def change(self, result: dict[str, Any], now: float) -> dict[str, Any] | None:
        payload = top_of(result)
        return payload if self._held.offer(f"{payload['label']}|{payload['score']}", now, self.hold_s) else None
