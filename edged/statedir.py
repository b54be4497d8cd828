"""Where edged keeps small state files when no configuration says (a source used on its own, in a test or a tool).

The daemon passes its configured top-level `state_dir` to the sources that keep state (`use_state_dir`, see
edged/sources/base.py); this is the same default that setting has (edged/config/app.py).
"""

from __future__ import annotations

from pathlib import Path


def state_dir() -> Path:
    """systemd's `$STATE_DIRECTORY` (`StateDirectory=edged`: /var/lib/edged), else `~/.local/state/edged`."""
    from edged.config.app import default_state_dir

    return default_state_dir()
