"""Where edged's log lines go and what they look like: plain text on a terminal, syslog priorities under journald,
JSON lines for people who ship logs, and levels per component.

Under systemd (`$JOURNAL_STREAM` names our standard error), journald stamps every line itself, so edged writes
no timestamp of its own and starts each line with its syslog priority (`<3>` for errors, `<4>` warnings, ...),
which journald strips and stores: `journalctl -u edged -p err` then shows edged's errors only. A traceback's
every line carries the priority, so it is not split into lines of the default priority.

The CLI configures this once at start, then again from the config file; a reload applies the config again.
Command-line choices (`-v`, `-q`, `--log-format`) win over the file, including across reloads.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Literal, TextIO

LogFormat = Literal["auto", "text", "journal", "json"]
FORMATS: tuple[str, ...] = ("auto", "text", "journal", "json")
LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error")

#: syslog priorities (sd-daemon(3)): what journald files each line under.
SYSLOG_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def syslog_priority(levelno: int) -> int:
    """The syslog priority of a logging level (levels between the named ones take the next more severe)."""
    for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR):
        if levelno <= level:
            return SYSLOG_PRIORITY[level]
    return SYSLOG_PRIORITY[logging.CRITICAL]


def under_journald(environ: Mapping[str, str] = os.environ, stream: TextIO | None = None) -> bool:
    """True when standard error is the journal stream systemd set up for this process.

    `$JOURNAL_STREAM` is "device:inode" of that stream (systemd.exec(5)); comparing it with standard error's
    own avoids a false positive in a child whose standard error was redirected elsewhere.
    """
    value = environ.get("JOURNAL_STREAM", "")
    device, sep, inode = value.partition(":")
    if not sep or not device.isdigit() or not inode.isdigit():
        return False
    try:
        status = os.fstat((stream or sys.stderr).fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return status.st_dev == int(device) and status.st_ino == int(inode)


class JournalFormatter(logging.Formatter):
    """`<priority>logger: message`, the priority on every line; no timestamp (journald adds its own)."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines() or [""])


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ms), level, logger, message, and the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, tz=timezone.utc)
        payload: dict[str, object] = {
            "time": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "thread": record.threadName,
        }
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            payload["exception"] = record.exc_text
        if record.stack_info:
            payload["stack"] = self.formatStack(record.stack_info)
        return json.dumps(payload, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time of the record (as logging's own last-resort handler does)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: TextIO) -> None:
        pass


def formatter_for(fmt: str, environ: Mapping[str, str] = os.environ) -> logging.Formatter:
    chosen = resolve_format(fmt, environ)
    if chosen == "journal":
        return JournalFormatter()
    if chosen == "json":
        return JsonFormatter()
    return logging.Formatter(TEXT_FORMAT)


def resolve_format(fmt: str, environ: Mapping[str, str] = os.environ) -> str:
    """ "auto" becomes "journal" under journald and "text" elsewhere; the others stay as given."""
    if fmt == "auto":
        return "journal" if under_journald(environ) else "text"
    return fmt


@dataclass
class _State:
    handler: logging.Handler | None = None
    format: str = "auto"
    format_fixed: bool = False  # --log-format given: the config file's format does not replace it
    level_fixed: bool = False  # -v / -q given: the config file's level does not replace it
    components: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


_state = _State()


def configure(fmt: str | None = None, level: int | None = None, *, level_fixed: bool = False) -> None:
    """Install (or re-configure) edged's one handler on the root logger. `fmt`/`level` given here are the
    command line's: they stay in force when the config file is applied later."""
    with _state.lock:
        if fmt is not None:
            _state.format = fmt
            _state.format_fixed = True
        _state.level_fixed = level_fixed
        handler = _state.handler
        root = logging.getLogger()
        if handler is None or handler not in root.handlers:
            handler = _StderrHandler()
            root.addHandler(handler)
            _state.handler = handler
        handler.setFormatter(formatter_for(_state.format))
        root.setLevel(logging.INFO if level is None else level)


def apply_config(level: str, fmt: str, components: Mapping[str, str]) -> None:
    """Apply the config file's `log_level`, `[logging] format` and `[logging] levels` (at start and on reload)."""
    with _state.lock:
        root = logging.getLogger()
        if not _state.level_fixed:
            root.setLevel(level.upper())
        if not _state.format_fixed:
            _state.format = fmt
            if _state.handler is not None:
                _state.handler.setFormatter(formatter_for(fmt))
        wanted = {name: logging.getLevelName(value.upper()) for name, value in components.items()}
        for name in set(_state.components) - set(wanted):
            logging.getLogger(name).setLevel(logging.NOTSET)  # no longer configured: follows its parent again
        for name, value in wanted.items():
            logging.getLogger(name).setLevel(value)
        _state.components = wanted


def line_prefix(levelno: int) -> str:
    """The priority prefix for a line the CLI prints itself (`edged: error: ...`): `<3>` under journald, else ""."""
    return f"<{syslog_priority(levelno)}>" if resolve_format(_state.format) == "journal" else ""
