"""Image files in a folder: a batch run over existing files, or a watched drop folder.

Files are identified by name, modification time and size, so a file replaced under the same name counts as new
while an unchanged one is never yielded twice. In watch mode a new file is taken only once two scans agree on
it, so a picture still being copied (scp, Samba) is not read half-written. Hidden files (rsync's temporary
`.name.XXXXXX`, editors' swap files) are ignored without a warning.

Every result names its file (`source.file`, relative to the folder). A watched folder remembers across restarts
what it has processed (edged/sources/processed.py, in the state directory); with `move_to`, each file is moved
there instead once its result is out.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections import deque
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from edged.config.base import FilePath
from edged.config.camera import SourceConfig
from edged.errors import ImageError, SourceError
from edged.sources.base import SourcePlugin
from edged.sources.imagefile import IMAGE_SUFFIXES, read_image
from edged.sources.processed import FileKey, ProcessedLog, log_path
from edged.types import Frame, ImageArray

log = logging.getLogger(__name__)


class ImagesCamera(SourceConfig):
    """Image files in a folder: batch runs, or 'drop a JPEG here' with watch = true."""

    PATH_KEYS: ClassVar[tuple[str, ...]] = ("path", "move_to")

    type: Literal["images"]
    path: FilePath = Field(description="A folder.")
    pattern: str = Field("*", description="Glob of file names, e.g. '*.jpg'.")
    watch: bool = Field(False, description="Keep running and pick up new files as they appear.")
    poll_s: float = Field(1.0, gt=0, description="How often a watched folder is scanned.")
    loop: bool = Field(False, description="Start again after the last image (not with watch).")
    interval_s: float = Field(0.0, ge=0, description="Pause between images.")
    move_to: FilePath | None = Field(
        None, description="Move each image into this folder once its result is published (default: leave it)."
    )

    @model_validator(mode="after")
    def _move_elsewhere(self) -> ImagesCamera:
        if self.move_to is not None and self.move_to.resolve() == self.path.resolve():
            raise ValueError("move_to must be another folder than path (the images would be read again)")
        return self

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
        self._processed: ProcessedLog | None = None  # set by use_state_dir (the daemon's state_dir), watch only
        if config.watch and config.loop:
            log.warning("images: loop is ignored with watch = true (a watched folder never ends)")

    def use_state_dir(self, folder: Path) -> None:
        """The configured `state_dir`: where a watched folder remembers what it has processed (without one, as when
        the source is used on its own, nothing is kept)."""
        if self._config.watch and self._config.move_to is None:
            self._processed = ProcessedLog(log_path(folder, self._config.path))

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
        earlier = self._processed.load() if self._processed is not None else set()
        self._seen |= earlier
        self._queue = deque(self._scan(settle=False))
        self._is_open = True
        self._reported_end = False
        done = ""
        if self._processed is not None:
            self._processed.keep_only(set(self._previous_scan.values()))
            kept = len(earlier & set(self._previous_scan.values()))
            done = f" ({kept} processed before, remembered in {self._processed.path})" if kept else ""
        log.info("opened %s: %d image(s) to read%s", self.describe(), len(self._queue), done)

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
        key = self._key(path)
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
            file=self._relative(path),
            processed=lambda: self._done(path, key),
        )

    def _relative(self, path: Path) -> str:
        try:
            return path.relative_to(self._config.path).as_posix()
        except ValueError:
            return path.name

    def _done(self, path: Path, key: FileKey | None) -> None:
        """From the inference thread, once the image's result is out: move the file, or remember it."""
        target = self._config.move_to
        if target is not None:
            self._move(path, target)
        elif self._processed is not None and key is not None:
            self._processed.add(key)

    def _move(self, path: Path, folder: Path) -> None:
        destination = folder / path.name
        number = 1
        while destination.exists():  # never over an earlier image of the same name
            destination = folder / f"{path.stem}-{number}{path.suffix}"
            number += 1
        try:
            folder.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), str(destination))
        except OSError as exc:
            log.error("cannot move %s to %s (%s); it stays where it is", path, folder, exc.strerror or exc)

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
