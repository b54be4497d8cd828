"""What the C libraries under edged write to standard error, kept out of the way of edged's own log lines.

Under journald everything on stderr is a log line, and three libraries write there on their own:

- **LiteRT / TFLite** prints `INFO: Created TensorFlow Lite XNNPACK delegate for CPU.` (its MinimalLogger writes
  straight to `stderr`, at INFO, with no switch the Python package exposes) the first time a model is prepared.
  `route_native_stderr` captures file descriptor 2 around such calls and hands those lines to Python logging
  (`INFO:` → debug, `WARNING:` → warning, `ERROR:` → error), so they appear, as edged lines, with `-vv`.
- **OpenCV** logs `[ WARN:0@…] global cap.cpp:… can't be used to capture by name` on every failed open, and
- **FFmpeg** (through OpenCV) logs `[tcp @ 0x…] Connection … failed` at the same moments.

  Both repeat what edged's own message already says ("cannot open stream …; retrying"), once per retry.
  OpenCV's level is set through `cv2.utils.logging`; FFmpeg's through `OPENCV_FFMPEG_LOGLEVEL`, which OpenCV
  reads at every open (`-8` is FFmpeg's AV_LOG_QUIET). `quiet_native_logs` silences both unless edged logs at
  debug level; variables the user set themselves are left alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator

_FFMPEG_QUIET = "-8"
_SEVERITY = re.compile(r"^(VERBOSE|INFO|WARNING|ERROR): (.*)$")
_LEVELS = {"VERBOSE": logging.DEBUG, "INFO": logging.DEBUG, "WARNING": logging.WARNING, "ERROR": logging.ERROR}
_capture_lock = threading.Lock()  # file descriptor 2 is one per process: one capture at a time


def quiet_native_logs(show: bool) -> None:
    """OpenCV's and FFmpeg's own stderr lines only when `show` (edged at debug level), errors always."""
    import cv2

    if "OPENCV_LOG_LEVEL" not in os.environ:
        level = cv2.utils.logging.LOG_LEVEL_WARNING if show else cv2.utils.logging.LOG_LEVEL_ERROR
        cv2.utils.logging.setLogLevel(level)
    if not show:
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", _FFMPEG_QUIET)
    elif os.environ.get("OPENCV_FFMPEG_LOGLEVEL") == _FFMPEG_QUIET:
        del os.environ["OPENCV_FFMPEG_LOGLEVEL"]  # FFmpeg's default: its errors on stderr


@contextlib.contextmanager
def route_native_stderr(logger: logging.Logger, prefix: str) -> Iterator[None]:
    """Capture what is written to file descriptor 2 during the block; TFLite-style `LEVEL: text` lines go to
    `logger` (as `prefix: text`), anything else (another thread's line, say) is written back to stderr as it was."""
    with _capture_lock:
        try:
            saved = os.dup(2)
        except OSError:  # no stderr at all: nothing to keep clean
            yield
            return
        capture = os.memfd_create("edged-native-stderr", os.MFD_CLOEXEC)
        _flush_python_stderr()
        os.dup2(capture, 2)
        try:
            yield
        finally:
            _flush_python_stderr()
            os.dup2(saved, 2)
            os.close(saved)
            os.lseek(capture, 0, os.SEEK_SET)
            captured = b"".join(iter(lambda: os.read(capture, 65536), b""))
            os.close(capture)
            _replay(captured.decode("utf-8", errors="replace"), logger, prefix)


def _flush_python_stderr() -> None:
    with contextlib.suppress(Exception):
        sys.stderr.flush()


def _replay(text: str, logger: logging.Logger, prefix: str) -> None:
    passthrough: list[str] = []
    for line in text.splitlines():
        match = _SEVERITY.match(line)
        if match:
            logger.log(_LEVELS[match.group(1)], "%s: %s", prefix, match.group(2))
        elif line:
            passthrough.append(line)
    if passthrough:
        with contextlib.suppress(OSError):
            os.write(2, ("\n".join(passthrough) + "\n").encode())
