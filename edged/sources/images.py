"""Image files in a folder: a batch run over existing files, or a watched drop folder.

Files are identified by name, modification time and size, so a file replaced under the same name counts as new
while an unchanged one is never yielded twice. In watch mode a new file is taken only once two scans agree on
it, so a picture still being copied (scp, Samba) is not read half-written. Hidden files (rsync's temporary
`.name.XXXXXX`, editors' swap files) are ignored without a warning.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from edged.config.base import FilePath
from edged.config.camera import SourceConfig
from edged.errors import ImageError, SourceError
from edged.sources.base import SourcePlugin
from edged.sources.imagefile import IMAGE_SUFFIXES, read_image
from edged.types import Frame, ImageArray

log = logging.getLogger(__name__)

#: name, mtime in ns, size in bytes
FileKey = tuple[str, int, int]


class ImagesCamera(SourceConfig):
    """Image files in a folder: batch runs, or 'drop a JPEG here' with watch = true."""

    PATH_KEYS: ClassVar[tuple[str, ...]] = ("path",)

    type: Literal["images"]
    path: FilePath = Field(description="A folder.")
    pattern: str = Field("*", description="Glob of file names, e.g. '*.jpg'.")
    watch: bool = Field(False, description="Keep running and pick up new files as they appear.")
    poll_s: float = Field(1.0, gt=0, description="How often a watched folder is scanned.")
    loop: bool = Field(False, description="Start again after the last image (not with watch).")
    interval_s: float = Field(0.0, ge=0, description="Pause between images.")

    def is_live(self) -> bool:
        return False


class ImageFolderSource:
    """Yields each decodable image of a folder once, in name order.

    `close()` may be called from another thread: it makes a `read()` that is waiting for new files (or pausing
    for `interval_s`) return None promptly, so the pipeline can stop without waiting a full `poll_s`; a read
    after close() returns None too, so it does not matter which of the two comes first.
    """

    def __init__(self, config: ImagesCamera) -> None:
        self.id = config.id
        self._config = config
        self._closed = threading.Event()
        self._queue: deque[Path] = deque()
        self._seen: set[FileKey] = set()
        self._warned: set[FileKey] = set()
        self._previous_scan: dict[str, FileKey] = {}
        self._index = 0
        self._yielded_this_pass = 0
        self._last_yield: float | None = None
        self._is_open = False
        self._reported_end = False
        if config.watch and config.loop:
            log.warning("images: loop is ignored with watch = true (a watched folder never ends)")

    def describe(self) -> str:
        mode = "watched" if self._config.watch else "looped" if self._config.loop else "once"
        return f"image folder {self._config.path}/{self._config.pattern} ({mode})"

    def open(self) -> None:
        folder = self._config.path
        if not folder.exists():
            # A watched folder may be a share that is mounted later; a batch folder will not appear by waiting.
            raise SourceError(
                f"image folder {folder} does not exist; check camera.path (a relative path is relative to the "
                "config file)",
                permanent=not self._config.watch,
            )
        if not folder.is_dir():
            raise SourceError(
                f"{folder} is not a folder; set camera.path to its folder and camera.pattern to pick files",
                permanent=True,
            )
        self._closed.clear()
        self._queue = deque(self._scan(settle=False))
        self._is_open = True
        self._reported_end = False
        log.info("opened %s: %d image(s) to read", self.describe(), len(self._queue))

    def read(self) -> Frame | None:
        if not self._is_open:
            raise SourceError(f"{self.describe()} is not open")
        while not self._closed.is_set():
            if self._queue:
                frame = self._next_from_queue()
                if frame is not None:
                    return frame
            elif self._config.watch:
                if self._closed.wait(self._config.poll_s):
                    return None
                self._queue.extend(self._scan(settle=True))
            elif self._config.loop and self._yielded_this_pass:
                self._restart_pass()
            else:
                self._log_finished()
                return None
        return None

    def close(self) -> None:
        self._closed.set()

    def interrupt(self) -> None:
        """Thread-safe: a read() waiting for new files (or for interval_s) returns None promptly."""
        self._closed.set()

    def _next_from_queue(self) -> Frame | None:
        """The frame of the next queued file, or None when that file was skipped or the source was closed."""
        if self._pause_between_images():
            return None
        path = self._queue.popleft()
        image = self._decode(path)
        if image is None:
            return None
        self._index += 1
        self._yielded_this_pass += 1
        self._last_yield = time.monotonic()
        log.debug("image %s", path.name)
        return Frame(
            image=image,
            source_id=self.id,
            index=self._index - 1,
            captured_at=time.time(),
            captured_mono=self._last_yield,
            color="bgr",
        )

    def _pause_between_images(self) -> bool:
        """Wait out `interval_s` since the previous image; True when closed meanwhile."""
        if self._last_yield is None or self._config.interval_s <= 0:
            return False
        remaining = self._last_yield + self._config.interval_s - time.monotonic()
        return remaining > 0 and self._closed.wait(remaining)

    def _decode(self, path: Path) -> ImageArray | None:
        key = self._key(path)
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            self._warn_once(key, f"skipping {path.name}: not an image (expected one of {', '.join(IMAGE_SUFFIXES)})")
            return None
        try:
            return read_image(path)
        except ImageError as exc:
            self._warn_once(key, f"skipping {path.name}: {exc}")
            return None

    def _warn_once(self, key: FileKey | None, message: str) -> None:
        if key is None or key not in self._warned:
            log.warning("%s", message)
        if key is not None:
            self._warned.add(key)

    def _key(self, path: Path) -> FileKey | None:
        try:
            stat = path.stat()
        except OSError:
            return None  # removed since the scan
        return (path.name, stat.st_mtime_ns, stat.st_size)

    def _scan(self, settle: bool) -> list[Path]:
        """Files not yielded yet, by name; with `settle`, only those unchanged since the previous scan."""
        try:
            candidates = sorted(
                (p for p in self._config.path.glob(self._config.pattern) if not p.name.startswith(".")),
                key=lambda p: p.name,
            )
        except OSError as exc:
            raise SourceError(f"cannot list image folder {self._config.path}: {exc.strerror or exc}") from exc
        fresh: list[Path] = []
        observed: dict[str, FileKey] = {}
        for path in candidates:
            key = self._key(path)
            if key is None or not path.is_file():
                continue
            observed[path.name] = key
            if key in self._seen or (settle and self._previous_scan.get(path.name) != key):
                continue
            self._seen.add(key)
            fresh.append(path)
        self._previous_scan = observed
        # Forget files that are gone, so a long-running watch does not grow without bound.
        self._seen = {key for key in self._seen if observed.get(key[0]) == key}
        self._warned &= self._seen
        return fresh

    def _restart_pass(self) -> None:
        self._seen.clear()
        self._yielded_this_pass = 0
        self._queue.extend(self._scan(settle=False))
        log.debug("restarting %s", self.describe())

    def _log_finished(self) -> None:
        if self._reported_end:
            return
        self._reported_end = True
        if self._index == 0:
            log.warning("%s has no readable images; nothing to do", self.describe())
        else:
            log.info("finished %s after %d image(s)", self.describe(), self._index)


PLUGIN = SourcePlugin(
    "images",
    ImagesCamera,
    ImageFolderSource,
    "image files in a folder (batch or watched)",
    {"path": "/var/lib/edged/inbox"},
)
