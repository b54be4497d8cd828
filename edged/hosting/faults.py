"""TEST-ONLY fault hook: kill the process at a named point, so tests can prove crash consistency with kill -9.

Only active when the environment variable EDGED_TEST_ONLY_CRASH_AT names the point; it is read at every call
(a test sets it in a subprocess). Never set it on a real device.
"""

from __future__ import annotations

import os
import signal

ENV = "EDGED_TEST_ONLY_CRASH_AT"
POINTS = (
    "download",  # after the first chunk of a model download is on disk
    "install",  # after the first file of a version is copied into its install directory
    "before-switch",  # a version is installed, current still names the old one
    "probation",  # the state file marks a probation, the new model is "running"
)


def test_only_crash_point(name: str) -> None:
    """SIGKILL this process when EDGED_TEST_ONLY_CRASH_AT == name (test-only; a no-op otherwise)."""
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
