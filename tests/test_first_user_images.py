"""Issue 8, item 11: results from an image folder name their file, and a watched folder remembers what it has
processed across restarts (or moves processed files away when asked to). Real `edged run` processes, real files."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from importlib.resources import files
from pathlib import Path
from typing import IO, Any

import cv2
import jsonschema
import numpy as np
from pipeline_support import wait_until

CLASSIFIER = Path(__file__).parent / "fixtures" / "models" / "shapes_classifier_quant.tflite"
RESULT_SCHEMA = json.loads((files("edged") / "schemas" / "result.schema.json").read_text())


def picture(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((48, 64, 3), value, np.uint8))


def config(tmp_path: Path, camera: str, top: str = "") -> Path:
    path = tmp_path / "etc" / "edged.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'{top}[model]\npath = "{CLASSIFIER}"\nnum_threads = 1\n[camera]\ntype = "images"\n{camera}\n')
    return path


class Watching:
    """`edged run` on a watched folder, stdout and stderr in files the test reads as they grow."""

    def __init__(self, config: Path, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._out: IO[str] = (folder.parent / "out.jsonl").open("w")
        self.err_path = folder.parent / "err.log"
        self._err: IO[str] = self.err_path.open("w")
        self.out_path = Path(self._out.name)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "edged", "run", "--config", str(config)],
            stdout=self._out, stderr=self._err, text=True,
        )  # fmt: skip

    def results(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out_path.read_text().splitlines() if line.endswith("}")]

    def stop(self) -> str:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(60)
        self._out.close()
        self._err.close()
        assert self.process.returncode == 0, self.err_path.read_text()
        return self.err_path.read_text()


def test_every_result_names_its_file_relative_to_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    for name, value in (("b.png", 90), ("a.jpg", 30), ("c.png", 150)):
        picture(folder / name, value)
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    done = subprocess.run(
        [sys.executable, "-m", "edged", "run", "--config", str(config(tmp_path, f'path = "{folder}"'))],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["source"]["file"] for r in results] == ["a.jpg", "b.png", "c.png"]  # junk skipped, never mislabeled
    for result in results:
        jsonschema.validate(result, RESULT_SCHEMA)


def test_a_restarted_watch_reads_only_the_new_files(tmp_path: Path) -> None:
    folder, state = tmp_path / "inbox", tmp_path / "state"
    path = config(tmp_path, f'path = "{folder}"\nwatch = true\npoll_s = 0.1', top=f'state_dir = "{state}"\n')
    for i in range(3):
        picture(folder / f"old_{i}.png", 40 + i)
    first = Watching(path, folder)
    assert wait_until(lambda: len(first.results()) == 3), first.err_path.read_text()
    first.stop()
    remembered = [p.name for p in state.iterdir() if p.name.startswith("images-")]  # in the configured state_dir
    assert len(remembered) == 1 and remembered[0].endswith(".processed")
    for i in range(2):
        picture(folder / f"new_{i}.png", 140 + i)
    second = Watching(path, folder)
    assert wait_until(lambda: len(second.results()) == 2), second.err_path.read_text()
    log = second.stop()
    assert "2 image(s) to read (3 processed before" in log  # the old ones were never queued again
    assert [r["source"]["file"] for r in second.results()] == ["new_0.png", "new_1.png"]


def test_processed_files_are_moved_when_asked_and_never_over_another(tmp_path: Path) -> None:
    folder, done_folder = tmp_path / "inbox", tmp_path / "etc" / "done"
    picture(folder / "x.png", 10)
    picture(folder / "y.png", 20)
    picture(done_folder / "x.png", 200)  # from an earlier day: must survive
    before = (done_folder / "x.png").read_bytes()
    path = config(tmp_path, f'path = "{folder}"\nmove_to = "done"')  # relative to the config file
    done = subprocess.run(
        [sys.executable, "-m", "edged", "run", "--config", str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["source"]["file"] for line in done.stdout.splitlines()] == ["x.png", "y.png"]
    assert list(folder.iterdir()) == []
    assert sorted(p.name for p in done_folder.iterdir()) == ["x-1.png", "x.png", "y.png"]
    assert (done_folder / "x.png").read_bytes() == before
