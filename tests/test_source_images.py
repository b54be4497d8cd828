"""The image-folder source on real files: order, skipping bad files, looping, watching, and stopping."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edged.errors import SourceError
from edged.sources.base import create_source
from edged.sources.images import ImageFolderSource, ImagesCamera
from edged.types import Frame

#: Generous upper bound for anything that should happen "soon" on a loaded machine; never asserted on.
PATIENCE_S = 30.0


def write_image(path: Path, width: int) -> Path:
    """An image whose width identifies it (widths survive JPEG coding exactly)."""
    image = np.full((24, width, 3), (40, 120, 200), np.uint8)
    assert cv2.imwrite(str(path), image)
    return path


def make_source(folder: Path, **options: Any) -> ImageFolderSource:
    created = create_source(ImagesCamera(type="images", path=folder, **options))
    assert isinstance(created, ImageFolderSource)
    return created


def widths(frames: list[Frame | None]) -> list[int | None]:
    return [None if f is None else f.width for f in frames]


@contextmanager
def closes_after(source: ImageFolderSource, seconds: float) -> Iterator[None]:
    """A safety net: a read that wrongly blocks for ever is released (and the test then fails) instead of hanging."""
    timer = threading.Timer(seconds, source.close)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    write_image(tmp_path / "b.png", 40)
    write_image(tmp_path / "a.jpg", 32)
    write_image(tmp_path / "c.jpg", 48)
    (tmp_path / "notes.txt").write_text("not a picture\n")
    whole = write_image(tmp_path / "d_truncated.jpg", 56).read_bytes()
    (tmp_path / "d_truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (tmp_path / ".hidden.jpg").write_bytes(b"partial upload")
    return tmp_path


def test_yields_only_good_images_in_name_order(mixed_folder: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="edged")
    source = make_source(mixed_folder, id="drop")
    source.open()
    frames = [source.read() for _ in range(4)]
    assert widths(frames) == [32, 40, 48, None]
    assert [f.index for f in frames if f is not None] == [0, 1, 2]
    assert all(f.color == "bgr" and f.source_id == "drop" for f in frames if f is not None)
    skipped = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len([m for m in skipped if "notes.txt" in m]) == 1
    assert len([m for m in skipped if "d_truncated.jpg" in m]) == 1
    assert not [m for m in skipped if ".hidden.jpg" in m]


def test_loop_restarts_and_warns_once_per_bad_file(mixed_folder: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="edged")
    source = make_source(mixed_folder, loop=True)
    source.open()
    assert widths([source.read() for _ in range(7)]) == [32, 40, 48, 32, 40, 48, 32]
    assert len([r for r in caplog.records if "notes.txt" in r.getMessage()]) == 1


def test_pattern_selects_files(mixed_folder: Path) -> None:
    source = make_source(mixed_folder, pattern="*.png")
    source.open()
    assert widths([source.read(), source.read()]) == [40, None]


def test_interval_between_images(mixed_folder: Path) -> None:
    source = make_source(mixed_folder, pattern="[ab].*", interval_s=0.01)
    source.open()
    assert widths([source.read(), source.read(), source.read()]) == [32, 40, None]


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        make_source(tmp_path / "nowhere").open()


def test_a_file_is_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="is not a folder"):
        make_source(write_image(tmp_path / "one.jpg", 32)).open()


def test_empty_folder_finishes_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="edged")
    source = make_source(tmp_path)
    source.open()
    assert source.read() is None
    assert "no readable images" in caplog.text


def test_watch_picks_up_a_file_written_after_start(tmp_path: Path) -> None:
    write_image(tmp_path / "001.jpg", 32)
    source = make_source(tmp_path, watch=True, poll_s=0.05)
    source.open()
    first = source.read()
    write_image(tmp_path / "002.jpg", 40)
    with closes_after(source, PATIENCE_S):
        second = source.read()
    assert widths([first, second]) == [32, 40]
    assert second is not None and second.index == 1


def test_watch_yields_a_replaced_file_again_but_never_an_unchanged_one(tmp_path: Path) -> None:
    path = write_image(tmp_path / "snap.jpg", 32)
    source = make_source(tmp_path, watch=True, poll_s=0.05)
    source.open()
    assert widths([source.read()]) == [32]
    # Replace it atomically (a hidden file renamed over it) with a later mtime, whatever the clock's resolution.
    staged = write_image(tmp_path / ".snap.jpg", 48)
    later = path.stat().st_mtime_ns + 5_000_000_000
    os.utime(staged, ns=(later, later))
    os.replace(staged, path)
    with closes_after(source, PATIENCE_S):
        assert widths([source.read()]) == [48]
    with closes_after(source, 0.5):  # nothing new: the read must still be waiting when close() comes
        assert source.read() is None


def test_close_unblocks_a_waiting_read(tmp_path: Path) -> None:
    source = make_source(tmp_path, watch=True, poll_s=3600.0)
    source.open()
    results: list[Frame | None] = []
    reader = threading.Thread(target=lambda: results.append(source.read()))
    reader.start()
    source.close()
    reader.join(PATIENCE_S)
    assert not reader.is_alive()
    assert results == [None]


def test_reopen_after_close_does_not_replay_seen_files(tmp_path: Path) -> None:
    write_image(tmp_path / "a.jpg", 32)
    source = make_source(tmp_path, watch=True, poll_s=0.05)
    source.open()
    assert widths([source.read()]) == [32]
    source.close()
    source.open()
    write_image(tmp_path / "b.jpg", 40)
    with closes_after(source, PATIENCE_S):
        assert widths([source.read()]) == [40]


def test_read_before_open_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not open"):
        make_source(tmp_path).read()
