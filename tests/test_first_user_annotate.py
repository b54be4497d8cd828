"""Issue 8, item 2: `edged infer --annotate DIR` never overwrites an input and never lets one output clobber
another. edged refuses, before loading the model or writing anything, and says why and what to do instead."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

DETECTOR = Path(__file__).parent / "fixtures" / "models" / "shapes_yolov8_int8.tflite"


def edged(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "edged", "-q", *map(str, args)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=cwd)


def photo(path: Path, value: int = 150) -> Path:
    """A grey picture with a red square (something for the detector to draw on)."""
    image = np.full((240, 320, 3), value, np.uint8)
    image[40:120, 60:140] = (40, 40, 220)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), image)
    return path


def test_annotating_into_the_inputs_own_folder_is_refused_and_the_photo_is_untouched(tmp_path: Path) -> None:
    original = photo(tmp_path / "photos" / "garden.png")
    before = original.read_bytes()
    done = edged("infer", DETECTOR, original, "--annotate", tmp_path / "photos")
    assert done.returncode == 1
    assert "would overwrite the input" in done.stderr and str(original) in done.stderr
    assert "--annotate" in done.stderr and "another folder" in done.stderr
    assert original.read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "photos").iterdir()) == ["garden.png"]


def test_the_current_folder_and_a_symlink_to_it_are_the_inputs_folder_too(tmp_path: Path) -> None:
    original = photo(tmp_path / "photos" / "garden.png")
    before = original.read_bytes()
    (tmp_path / "link").symlink_to(tmp_path / "photos")
    for folder in (".", str(tmp_path / "link")):
        done = edged("infer", DETECTOR, "garden.png", "--annotate", folder, cwd=tmp_path / "photos")
        assert done.returncode == 1 and "would overwrite the input" in done.stderr, done.stderr
    assert original.read_bytes() == before


def test_two_inputs_with_the_same_name_never_collapse_into_one_output(tmp_path: Path) -> None:
    first = photo(tmp_path / "monday" / "door.png", 100)
    second = photo(tmp_path / "tuesday" / "door.png", 200)
    out = tmp_path / "annotated"
    done = edged("infer", DETECTOR, first, second, "--annotate", out)
    assert done.returncode == 1
    assert "would both be written as" in done.stderr and str(first) in done.stderr and str(second) in done.stderr
    assert not out.exists() or list(out.iterdir()) == []  # refused before anything was written
    assert done.stdout == ""  # and before any image was processed


def test_distinct_names_are_annotated_side_by_side_and_the_inputs_stay(tmp_path: Path) -> None:
    first = photo(tmp_path / "monday" / "door.png", 100)
    second = photo(tmp_path / "tuesday" / "gate.png", 200)
    before = (first.read_bytes(), second.read_bytes())
    out = tmp_path / "annotated"
    done = edged("infer", DETECTOR, first, second, first, "--annotate", out)  # the same input twice is fine
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["door.png", "gate.png"]
    for written, source in ((out / "door.png", first), (out / "gate.png", second)):
        assert not np.array_equal(cv2.imread(str(written)), cv2.imread(str(source)))  # boxes drawn
    assert (first.read_bytes(), second.read_bytes()) == before
