"""What a watched image folder has processed, kept across restarts: a small append-only file in the state
directory, one line per image whose result was published (its name, modification time and size).

A file counts as processed once its result is handed to the publisher, so a stop or a crash before that leaves it
to be read again at the next start (at least once, never silently skipped). The log is rewritten without the
files that are gone when the folder is opened, and whenever it has grown well past what it remembers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from pathlib import Path

log = logging.getLogger(__name__)

#: name, mtime in ns, size in bytes
FileKey = tuple[str, int, int]


def log_path(state_dir: Path, folder: Path) -> Path:
    """One state file per watched folder: a readable name plus a hash of the folder's absolute path."""
    absolute = str(folder.resolve())
    readable = re.sub(r"[^A-Za-z0-9]+", "_", absolute).strip("_")[-48:] or "root"
    digest = hashlib.sha256(absolute.encode()).hexdigest()[:12]
    return state_dir / f"images-{readable}-{digest}.processed"


class ProcessedLog:
    """Thread-safe: `add` is called from the inference thread (after publishing), the rest from the capture one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._keys: set[FileKey] = set()
        self._appended = 0
        self._broken = False

    def load(self) -> set[FileKey]:
        """The files processed by earlier runs (an unreadable or damaged log counts as empty, and says so)."""
        keys: set[FileKey] = set()
        try:
            with self.path.open(encoding="utf-8") as handle:
                for number, line in enumerate(handle, start=1):
                    try:
                        name, mtime_ns, size = json.loads(line)
                        keys.add((str(name), int(mtime_ns), int(size)))
                    except (ValueError, TypeError):
                        log.warning("%s:%d: not a processed-file entry; ignored", self.path, number)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("cannot read %s (%s): every image in the folder will be read again", self.path, exc)
        with self._lock:
            self._keys = keys
        return set(keys)

    def keep_only(self, present: set[FileKey]) -> None:
        """Forget the files that are gone, and rewrite the log with what is left (atomically)."""
        with self._lock:
            self._keys &= present
            self._rewrite()

    def add(self, key: FileKey) -> None:
        with self._lock:
            if self._broken or key in self._keys:
                return
            self._keys.add(key)
            if self._appended > 2 * len(self._keys) + 1000:
                self._rewrite()
                return
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(list(key)) + "\n")
                self._appended += 1
            except OSError as exc:
                self._failed(exc)

    def _rewrite(self) -> None:
        temporary = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with temporary.open("w", encoding="utf-8") as handle:
                for key in sorted(self._keys):
                    handle.write(json.dumps(list(key)) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
            self._appended = 0
        except OSError as exc:
            self._failed(exc)

    def _failed(self, exc: OSError) -> None:
        if not self._broken:
            log.error(
                "cannot write %s (%s): processed images will be read again after a restart; the state directory "
                "must be writable (under the shipped unit it is /var/lib/edged)", self.path, exc.strerror or exc,
            )  # fmt: skip
        self._broken = True
