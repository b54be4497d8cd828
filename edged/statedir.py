"""Where edged keeps its small state files (what a watched image folder has processed, ...).

TODO(merge with the hosting work): the top-level `state_dir` setting replaces this lookup; this is the one
function to repoint.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def state_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """systemd's `$STATE_DIRECTORY` (`StateDirectory=edged`: /var/lib/edged), else `~/.local/state/edged`
    (`$XDG_STATE_HOME/edged`). Not created here: whoever writes a file there creates it."""
    given = environ.get("STATE_DIRECTORY", "")
    if given:
        return Path(given.split(":")[0])  # several StateDirectory= entries are listed with ':'
    base = environ.get("XDG_STATE_HOME", "") or str(Path.home() / ".local" / "state")
    return Path(base) / "edged"
