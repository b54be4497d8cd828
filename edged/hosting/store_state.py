"""state.json: the small crash-safe record of which hosted version runs, which ran before, the trial in progress,
the hashes never to install again, and a rollback pin. Written temp + fsync + rename + fsync dir: a crash leaves
the old record or the new one.

Schema 1::

    {"schema": 1,
     "current":  {"version": 3, "sha256": "…"} | null,        null: the bundled [model] path
     "previous": {"version": 2, "sha256": "…"} | null,        what a rollback goes back to
     "trial":    {"version": 4, "sha256": "…", "phase": "validating" | "probation",
                  "unfinished_starts": 0, "since": "2026-12-01T10:00:00Z"} | null,
     "blocked":  {"<sha256>": {"version": 4, "reason": "…", "at": "…"}},
     "rollback_pin": {"above": 4, "reason": "…"} | null}    only versions newer than `above` are offered
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edged.hosting.files import atomic_write

SCHEMA = 1


def now_text() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore")


class VersionRef(_Record):
    version: int = Field(ge=1)
    sha256: str


class Trial(_Record):
    """A version being validated or on probation; a start that finds it counts, and two starts give up on it."""

    version: int = Field(ge=1)
    sha256: str
    phase: Literal["validating", "probation"]
    unfinished_starts: int = 0
    since: str = Field(default_factory=now_text)
    stopped_cleanly: bool = False  # the daemon was stopped on purpose during the trial: that start does not count


class Blocked(_Record):
    version: int
    reason: str
    at: str = Field(default_factory=now_text)


class RollbackPin(_Record):
    above: int
    reason: str = ""


class StoreState(_Record):
    schema_: int = Field(SCHEMA, alias="schema")
    current: VersionRef | None = None
    previous: VersionRef | None = None
    trial: Trial | None = None
    blocked: dict[str, Blocked] = Field(default_factory=dict)
    rollback_pin: RollbackPin | None = None

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    def to_bytes(self) -> bytes:
        return (json.dumps(self.model_dump(mode="json", by_alias=True), indent=1, sort_keys=True) + "\n").encode()


class UnreadableState(Exception):
    """state.json exists but is not a state file edged wrote (the store sets it aside and starts fresh)."""


def read_state(path: Path) -> StoreState:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return StoreState()
    try:
        return StoreState.model_validate_json(data)
    except ValidationError as exc:
        raise UnreadableState(str(exc.errors()[0]["msg"])) from exc


def write_state(path: Path, state: StoreState) -> None:
    atomic_write(path, state.to_bytes())
