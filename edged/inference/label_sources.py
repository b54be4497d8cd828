"""Where a model's labels come from, in order: an explicit file, the model's metadata, a sidecar file."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edged.errors import ModelError
from edged.inference.labels import LabelFile, metadata_dict, parse_labels, read_label_file
from edged.inference.tflite_file import FileFacts

#: Files in which Ultralytics exports embed their metadata dict (8.3+: metadata.json; 8.1–8.2: temp_meta.txt)
ULTRALYTICS_EMBEDDED = ("metadata.json", "temp_meta.txt")

_LABEL_SUFFIXES = (
    "_labels.txt", "-labels.txt", ".labels.txt", "labels.txt", ".labels",
    "_labelmap.txt", "labelmap.txt", "_label_map.pbtxt", "label_map.pbtxt", ".pbtxt",
    "_metadata.yaml", "metadata.yaml", "dict.txt",
)  # fmt: skip


@dataclass(frozen=True)
class LabelSearch:
    """The labels found (if any) and label-like files seen nearby, for a helpful hint."""

    found: LabelFile | None
    nearby: tuple[Path, ...] = ()
    looked: tuple[str, ...] = ()  # where labels were searched, for the message when none are found


def embedded_files(path: Path) -> tuple[str, ...]:
    """Names of the files a .tflite with metadata carries as a zip appended to the flatbuffer."""
    try:
        if not zipfile.is_zipfile(path):
            return ()
        with zipfile.ZipFile(path) as archive:
            return tuple(archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return ()


def read_embedded(path: Path, name: str) -> str | None:
    """The text of one file embedded in the model's zip, or None."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.read(name).decode("utf-8-sig")
    except (KeyError, OSError, zipfile.BadZipFile, UnicodeDecodeError, ValueError):
        return None


def ultralytics_metadata(path: Path) -> dict[str, Any] | None:
    """The metadata dict an Ultralytics export embeds (names, imgsz, task, args, end2end …), or None."""
    names = embedded_files(path)
    for name in ULTRALYTICS_EMBEDDED:
        if name not in names:
            continue
        text = read_embedded(path, name)
        try:
            value = metadata_dict(text) if text else None
        except ValueError:
            continue
        if isinstance(value, dict) and "names" in value:
            return value
    return None


def _from_metadata(path: Path, facts: FileFacts) -> LabelFile | None:
    names = embedded_files(path)
    if not names:
        return None
    # The metadata names the label file: on the output tensor (TFLite Support's writers), else at model level.
    preferred = [f for meta in facts.outputs for f in meta.associated_files if f in names]
    preferred += [f for f in facts.model_associated_files if f in names and f not in preferred]
    preferred += [n for n in names if n.lower().endswith((".txt", ".pbtxt", ".yaml", ".yml", ".json"))]
    for name in preferred:
        try:
            with zipfile.ZipFile(path) as archive:
                text = archive.read(name).decode("utf-8-sig")
            return parse_labels(text, name, f"model metadata: {name} embedded in {path.name}")
        except (KeyError, OSError, zipfile.BadZipFile, UnicodeDecodeError, ModelError):
            continue
    return None


def _sidecar_prefix(name: str) -> str | None:
    lowered = name.lower()
    for suffix in _LABEL_SUFFIXES:
        if lowered.endswith(suffix):
            return lowered[: -len(suffix)].rstrip("_-.")
    return None


def _sidecars(path: Path) -> tuple[list[Path], list[Path]]:
    """(files whose prefix matches the model's name, longest first; every other label-like file)."""
    stem = path.name.lower().removesuffix(".tflite")
    matching: list[tuple[int, Path]] = []
    others: list[Path] = []
    try:
        entries = sorted(path.parent.iterdir())
    except OSError:
        return [], []
    for entry in entries:
        if not entry.is_file() or entry == path:
            continue
        prefix = _sidecar_prefix(entry.name)
        if prefix is None:
            continue
        if stem.startswith(prefix):
            matching.append((len(prefix), entry))
        else:
            others.append(entry)
    matching.sort(key=lambda item: -item[0])
    return [p for _, p in matching], others


def find_labels(path: Path, explicit: Path | None, facts: FileFacts) -> LabelSearch:
    """Labels for the model at `path`; an explicit file wins, then metadata, then a sidecar."""
    if explicit is not None:
        return LabelSearch(read_label_file(explicit, "file"))
    embedded = _from_metadata(path, facts)
    if embedded is not None:
        return LabelSearch(embedded)
    matching, others = _sidecars(path)
    rejected: list[str] = []
    for candidate in matching:
        try:
            return LabelSearch(read_label_file(candidate, "sidecar"))
        except ModelError as exc:
            rejected.append(f"{candidate.name} ({exc})")
            continue
    return LabelSearch(None, tuple(others), _places_looked(path, rejected))


def _places_looked(path: Path, rejected: list[str]) -> tuple[str, ...]:
    """Every place find_labels tried, in order, for the 'no labels found' message."""
    inside = embedded_files(path)
    stem = path.name.removesuffix(".tflite")
    sidecar_names = (
        f"{stem}_labels.txt, {stem}.labels, {stem}_labelmap.txt, {stem}_label_map.pbtxt, {stem}.pbtxt, "
        f"{stem}_metadata.yaml, labels.txt, labelmap.txt, label_map.pbtxt, metadata.yaml or dict.txt"
    )
    places = [
        "model.labels / --labels: not set",
        f"the model's metadata: {', '.join(inside)} hold no class names" if inside else (
            f"the model's metadata: {path.name} carries no associated files (no zip appended to the flatbuffer, "
            "where TFLite Support, MediaPipe and Ultralytics put label files)"
        ),
        f"sidecar files in {path.parent}: no {sidecar_names}",
    ]  # fmt: skip
    places += [f"sidecar file rejected: {reason}" for reason in rejected]
    return tuple(places)
