"""Label files in the formats trainers produce, and their alignment with a model's class indices.

Formats: one name per line; Teachable Machine's `0 name`; TF Object Detection API label maps with a `???`
background line; `.pbtxt` `item { id name display_name }`; Ultralytics `metadata.yaml` `names:` (and the
dict Ultralytics embeds in its .tflite). Alignment never shifts silently: every offset comes with a note.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from edged.errors import ModelError
from edged.files import read_user_file

BACKGROUND_NAMES = frozenset({"???", "background", "__background__", "bg", "__bg__"})

#: How the model numbers its classes, which decides how label files line up with it.
ClassNumbering = Literal[
    "with_background",  # classifiers: index 0 may be a background class (Coral/ImageNet 1001)
    "foreground",  # TFLite_Detection_PostProcess: class 0 is the first real class, background excluded
    "plain",  # YOLO: every index is a real class
]

_INDEXED_LINE = re.compile(r"^\s*(\d+)\s*[\s:,]\s*(\S.*?)\s*$")
_PBTXT_ITEM = re.compile(r"item\s*\{(.*?)\}", re.S)
_PBTXT_FIELD = re.compile(r"""\b(id|name|display_name)\s*:\s*(?:"([^"]*)"|'([^']*)'|(\d+))""")


@dataclass(frozen=True)
class LabelFile:
    """Entries read from one label source, keyed by the id the file gives them."""

    entries: dict[int, str]
    format: str
    origin: str

    @property
    def background_first(self) -> bool:
        return self.entries.get(0, "").strip().lower() in BACKGROUND_NAMES

    @property
    def count(self) -> int:
        return len(self.entries)


@dataclass(frozen=True)
class LabelMap:
    """Names indexed by the model's own class index, with where they came from and how they were aligned."""

    names: tuple[str, ...]
    origin: str  # "file: …", "model metadata: …", "sidecar: …" or "none"
    format: str
    note: str = ""

    def name(self, index: int) -> str:
        if 0 <= index < len(self.names):
            return self.names[index]
        return f"class_{index}"

    def index_of(self, name: str) -> int | None:
        try:
            return self.names.index(name)
        except ValueError:
            return None


def parse_labels(text: str, source_name: str, origin: str) -> LabelFile:
    """Parse label text in any supported format, chosen by file name and content."""
    stripped = text.strip()
    lowered = source_name.lower()
    if not stripped:
        raise ModelError(f"label file {origin} is empty; expected one class name per line")
    if lowered.endswith(".pbtxt") or _PBTXT_ITEM.search(stripped):
        return LabelFile(_parse_pbtxt(stripped, origin), "pbtxt label map", origin)
    if stripped.startswith("{") and "names" in stripped:
        return LabelFile(_parse_embedded_dict(stripped, origin), "Ultralytics metadata", origin)
    if lowered.endswith((".yaml", ".yml")) or re.search(r"^names\s*:", stripped, re.M):
        return LabelFile(_parse_yaml_names(stripped, origin), "Ultralytics metadata.yaml", origin)
    lines = [line.strip() for line in stripped.splitlines()]
    indexed = [_INDEXED_LINE.match(line) for line in lines if line]
    if indexed and all(indexed):
        entries = {int(m.group(1)): m.group(2) for m in indexed if m}
        if len(entries) != len(indexed):
            raise ModelError(f"label file {origin} numbers some classes twice; each index must appear once")
        return LabelFile(entries, "indexed lines (Teachable Machine style)", origin)
    entries = dict(enumerate(lines))
    fmt = "one name per line"
    if lines and lines[0].lower() in BACKGROUND_NAMES:
        fmt = "one name per line, background first"
    return LabelFile(entries, fmt, origin)


def _parse_pbtxt(text: str, origin: str) -> dict[int, str]:
    entries: dict[int, str] = {}
    for item in _PBTXT_ITEM.findall(text):
        fields: dict[str, str] = {}
        for key, dq, sq, num in _PBTXT_FIELD.findall(item):
            fields[key] = dq or sq or num
        if "id" not in fields or not (fields.get("display_name") or fields.get("name")):
            raise ModelError(f"label map {origin}: an item lacks an id or a name: item {{{item.strip()}}}")
        entries[int(fields["id"])] = fields.get("display_name") or fields["name"]
    if not entries:
        raise ModelError(f'label map {origin} has no `item {{ id: N name: "…" }}` entries')
    return entries


def metadata_dict(text: str) -> object:
    """The metadata dict Ultralytics embeds: `metadata.json` (json.dumps, 8.3+) or `temp_meta.txt` (the Python
    repr of the dict, through TFLite Support's populator, 8.1–8.2). ValueError when it is neither."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        raise ValueError(str(exc)) from exc


def _parse_embedded_dict(text: str, origin: str) -> dict[int, str]:
    try:
        value = metadata_dict(text)
    except ValueError as exc:
        raise ModelError(f"{origin}: the embedded metadata is not a readable dictionary ({exc})") from exc
    names = value.get("names") if isinstance(value, dict) else None
    if isinstance(names, dict):
        return {int(k): str(v) for k, v in names.items()}
    if isinstance(names, list):
        return {i: str(v) for i, v in enumerate(names)}
    raise ModelError(f"{origin}: the embedded metadata has no `names` mapping")


def _parse_yaml_names(text: str, origin: str) -> dict[int, str]:
    """The `names:` block of an Ultralytics metadata.yaml / data.yaml, without a YAML dependency."""
    lines = text.splitlines()
    for position, line in enumerate(lines):
        match = re.match(r"^names\s*:\s*(.*)$", line)
        if not match:
            continue
        inline = match.group(1).strip()
        if inline:
            try:
                value = ast.literal_eval(inline)
            except (ValueError, SyntaxError):
                value = [part.strip().strip("'\"") for part in inline.strip("[]").split(",")]
            if isinstance(value, dict):
                return {int(k): str(v) for k, v in value.items()}
            return {i: str(v) for i, v in enumerate(value)}
        entries: dict[int, str] = {}
        for item in lines[position + 1 :]:
            if not item.startswith((" ", "\t", "-")) or not item.strip():
                break
            body = item.strip()
            if body.startswith("-"):
                entries[len(entries)] = _unquote(body[1:].strip())
            else:
                key, _, name = body.partition(":")
                entries[int(key.strip())] = _unquote(name.strip())
        if entries:
            return entries
    raise ModelError(f"{origin}: no `names:` list found (expected Ultralytics metadata.yaml)")


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def read_label_file(path: Path, origin_kind: str = "file") -> LabelFile:
    """Read and parse a label file on disk; ModelError when it cannot be read."""
    raw = read_user_file(path, "label file", ModelError, missing_hint="check the path given to --labels / labels")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ModelError(
            f"label file {path} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8"
        ) from exc
    return parse_labels(text, path.name, f"{origin_kind}: {path}")


def align_labels(labels: LabelFile, num_classes: int | None, numbering: ClassNumbering) -> LabelMap:
    """Names indexed by model class index; explain any offset, refuse counts that cannot fit."""
    ids = sorted(labels.entries)
    first, last = ids[0], ids[-1]
    dense = [labels.entries.get(i, f"class_{i}") for i in range(first, last + 1)]
    if num_classes is None:
        names = tuple(labels.entries.get(i, f"class_{i}") for i in range(last + 1))
        return LabelMap(names, labels.origin, labels.format, "the model's class count is unknown; not checked")
    if numbering == "foreground":
        if labels.background_first and last == num_classes:
            note = (
                f"first entry {labels.entries[0]!r} is the background: the detector's class 0 is "
                f"{labels.entries.get(1)!r} (entry 1)"
            )
            return LabelMap(tuple(dense[1:]), labels.origin, labels.format, note)
        if first == 1 and last == num_classes:
            note = f"ids start at 1 (0 is the background): the detector's class 0 is id 1 {dense[0]!r}"
            return LabelMap(tuple(dense), labels.origin, labels.format, note)
        if first == 0 and last == num_classes - 1 and not labels.background_first:
            return LabelMap(tuple(dense), labels.origin, labels.format)
    else:
        if first == 0 and last == num_classes - 1:
            return LabelMap(tuple(dense), labels.origin, labels.format)
        if labels.background_first and first == 0 and last == num_classes:
            note = f"first entry {labels.entries[0]!r} is a background the model does not output: dropped"
            return LabelMap(tuple(dense[1:]), labels.origin, labels.format, note)
        if first == 1 and last == num_classes:
            note = "ids start at 1: the model's class 0 is id 1"
            return LabelMap(tuple(dense), labels.origin, labels.format, note)
        if numbering == "with_background" and first == 0 and last == num_classes - 2:
            note = (
                f"the model has {num_classes} classes and the labels {num_classes - 1}: class 0 is taken as "
                "an unnamed background, so class 1 is the first label"
            )
            return LabelMap(("background", *dense), labels.origin, labels.format, note)
    expected = num_classes
    raise ModelError(
        f"labels from {labels.origin} ({labels.format}) name {labels.count} classes (ids {first}–{last}), "
        f"but the model outputs {expected} classes{_numbering_hint(numbering)}. "
        "Use the label file exported with this model"
    )


def _numbering_hint(numbering: ClassNumbering) -> str:
    if numbering == "foreground":
        return (
            " (its TFLite_Detection_PostProcess op excludes the background, so a label list needs "
            "exactly that many names, or one more with a '???' background line first)"
        )
    if numbering == "with_background":
        return " (a background class at index 0 may be named or left out of the file)"
    return ""


def index_names(num_classes: int) -> LabelMap:
    """Placeholder names when no labels are found: results name classes by index."""
    return LabelMap(
        tuple(f"class_{i}" for i in range(num_classes)),
        "none",
        "none",
        "no labels found: classes are named by index; give a label file (--labels / model.labels)",
    )
