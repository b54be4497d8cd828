"""`kill -USR1 <pid>`: every thread's stack, by name, on stderr (so in the journal), and edged carries on.

Not `faulthandler`: its all-threads dump runs inside the C signal handler and walks the thread states while other
threads may be creating or ending theirs, which crashed edged (SIGSEGV) in tests when the dump met the start-up.
A Python-level handler runs in the main thread between two bytecodes, under the GIL, where reading
`sys._current_frames()` is safe. It writes with one `os.write` to file descriptor 2, not through `logging` or
`sys.stderr`, whose locks the interrupted main thread may be holding.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
from types import FrameType

DUMP_SIGNAL = signal.SIGUSR1


def format_stacks() -> str:
    """Every Python thread's stack, most recent call last, headed by its name."""
    # not threading.enumerate(): it takes a lock the interrupted main thread may hold (it does while it starts a
    # thread), which would deadlock the handler; a copy of the registry's values is atomic under the GIL
    active: dict[int, threading.Thread] = getattr(threading, "_active", {})
    names = {thread.ident: thread.name for thread in list(active.values())}
    parts = [f"edged: thread stacks (pid {os.getpid()}), on {DUMP_SIGNAL.name}:\n"]
    for ident, frame in sys._current_frames().items():
        parts.append(f'Thread "{names.get(ident, "?")}" ({ident}):\n')
        parts.extend(traceback.format_stack(frame))
    parts.append("edged: end of thread stacks\n")
    return "".join(parts)


def dump_stacks(_: int = 0, __: FrameType | None = None) -> None:
    data = format_stacks().encode("utf-8", errors="replace")
    while data:
        try:
            written = os.write(2, data)
        except OSError:  # no stderr: nothing to tell
            return
        data = data[written:]
