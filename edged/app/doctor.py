"""`edged doctor`: one row per thing edged needs, each OK / WARN / FAIL with a one-line fix, and never a hang.

Each check runs on a thread of its own and is given a time limit; one that has not answered by then (a camera
driver stuck in open(), a host that accepts and says nothing) is reported as FAIL and left behind, and the rest go
on. Checks that need what an earlier one found (a valid config, whether there is an Edge TPU) read it from the
shared context. The checks themselves are in doctor_checks.py.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from edged.config.app import AppConfig

Status = Literal["ok", "warn", "fail", "skip"]


@dataclass(frozen=True)
class Row:
    """One check's verdict: what was found, and what to do about it."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"check": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


@dataclass
class Context:
    """What the checks share: the inputs, and facts earlier checks found."""

    config_path: Path | None
    timeout_s: float = 10.0
    unit_path: Path | None = None
    config: AppConfig | None = None
    config_text: str = ""
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[Context], Row]
    limit: Callable[[Context], float]  # seconds this check may take
    needs_config: bool = True


def run_checks(checks: list[Check], context: Context) -> tuple[list[Row], bool]:
    """Every check in order; returns the rows and whether any check had to be abandoned at its time limit."""
    rows: list[Row] = []
    abandoned = False
    for check in checks:
        if check.needs_config and context.config is None:
            rows.append(Row(check.name, "skip", "needs a valid config", "fix the config first"))
            continue
        row, finished = _bounded(check, context)
        abandoned = abandoned or not finished
        rows.append(row)
    return rows, abandoned


def _bounded(check: Check, context: Context) -> tuple[Row, bool]:
    limit = check.limit(context)
    box: list[Row] = []

    def target() -> None:
        try:
            box.append(check.run(context))
        except Exception as exc:  # a check that breaks is a FAIL row, not a doctor that breaks
            box.append(Row(check.name, "fail", f"the check itself failed: {type(exc).__name__}: {exc}",
                           "this is a bug in edged doctor; please report it"))  # fmt: skip

    thread = threading.Thread(target=target, name=f"edged-doctor-{check.name}", daemon=True)
    thread.start()
    thread.join(limit)
    if thread.is_alive():
        return Row(
            check.name,
            "fail",
            f"no answer within {limit:g} s (stuck in a driver or network call)",
            "see the fix for this part in docs/operations.md; raise --timeout for slow links",
        ), False
    return box[0], True
