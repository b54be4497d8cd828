"""Read what the interpreter API does not expose from a .tflite flatbuffer: custom ops and their options,
and the TFLite metadata (name, version, normalization, output tensor names, associated label files).

A minimal, bounds-checked flatbuffer walker: it never executes the model, so it can explain a model that the
interpreter refuses to load (an Edge TPU model on a CPU, an unresolved custom op, a truncated file).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from flatbuffers import flexbuffers

from edged.errors import ModelError

_TFLITE_IDENTIFIER = b"TFL3"
_METADATA_IDENTIFIER = b"M001"
_PROCESS_UNIT_NORMALIZATION = 1  # ProcessUnitOptions union: NormalizationOptions is member 1
_DETECTOR_METADATA = "DETECTOR_METADATA"  # MediaPipe's SubGraphMetadata.custom_metadata entry for raw detectors


class _CorruptFlatbuffer(Exception):
    """An offset points outside the buffer."""


class _Table:
    """One flatbuffer table: field `i` lives at vtable slot 4 + 2*i."""

    def __init__(self, buf: bytes, pos: int) -> None:
        self.buf = buf
        self.pos = pos

    def _unpack(self, fmt: str, at: int) -> Any:
        size = struct.calcsize(fmt)
        if at < 0 or at + size > len(self.buf):
            raise _CorruptFlatbuffer(f"offset {at} outside a buffer of {len(self.buf)} bytes")
        return struct.unpack_from(fmt, self.buf, at)[0]

    def _field(self, index: int) -> int | None:
        vtable = self.pos - self._unpack("<i", self.pos)
        vtable_len = self._unpack("<H", vtable)
        slot = 4 + 2 * index
        if slot >= vtable_len:
            return None
        rel = self._unpack("<H", vtable + slot)
        return self.pos + rel if rel else None

    def scalar(self, index: int, fmt: str, default: Any) -> Any:
        at = self._field(index)
        return default if at is None else self._unpack(fmt, at)

    def _vector(self, index: int) -> tuple[int, int] | None:
        at = self._field(index)
        if at is None:
            return None
        start = at + self._unpack("<I", at)
        length = self._unpack("<I", start)
        return start + 4, length

    def table(self, index: int) -> _Table | None:
        at = self._field(index)
        return None if at is None else _Table(self.buf, at + self._unpack("<I", at))

    def tables(self, index: int) -> list[_Table]:
        vec = self._vector(index)
        if vec is None:
            return []
        start, length = vec
        return [_Table(self.buf, start + 4 * i + self._unpack("<I", start + 4 * i)) for i in range(length)]

    def raw_bytes(self, index: int) -> bytes:
        vec = self._vector(index)
        if vec is None:
            return b""
        start, length = vec
        if start + length > len(self.buf):
            raise _CorruptFlatbuffer("vector runs past the end of the buffer")
        return self.buf[start : start + length]

    def floats(self, index: int) -> tuple[float, ...]:
        vec = self._vector(index)
        if vec is None:
            return ()
        start, length = vec
        return tuple(self._unpack("<f", start + 4 * i) for i in range(length))

    def string(self, index: int) -> str | None:
        vec = self._vector(index)
        if vec is None:
            return None
        start, length = vec
        return self.buf[start : start + length].decode("utf-8", errors="replace")


def _root(buf: bytes) -> _Table:
    return _Table(buf, struct.unpack_from("<I", buf, 0)[0])


@dataclass(frozen=True)
class Operator:
    """One operator of the main subgraph: its name (builtin code number or custom code) and custom options."""

    name: str
    custom: bool
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TensorMeta:
    """Per-tensor TFLite metadata: its name, normalization and associated files."""

    name: str | None
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    associated_files: tuple[str, ...] = ()


@dataclass(frozen=True)
class DetectorMetadata:
    """MediaPipe's ObjectDetectorOptions (object_detector_metadata_schema.fbs): how raw boxes and scores of a
    detector without a post-processing op are decoded (MediaPipe Model Maker writes it)."""

    anchors: tuple[tuple[float, float, float, float], ...]  # (y_center, x_center, height, width), normalized
    num_classes: int
    num_boxes: int
    num_coords: int
    y_scale: float
    x_scale: float
    h_scale: float
    w_scale: float
    apply_exponential_on_box_size: bool
    sigmoid_score: bool


@dataclass(frozen=True)
class FileFacts:
    """What the flatbuffer says about a model, independent of any runtime."""

    operators: tuple[Operator, ...]
    metadata_name: str | None = None
    metadata_version: str | None = None
    metadata_description: str | None = None
    inputs: tuple[TensorMeta, ...] = ()
    outputs: tuple[TensorMeta, ...] = ()
    model_associated_files: tuple[str, ...] = ()
    detector: DetectorMetadata | None = None

    @property
    def custom_ops(self) -> tuple[str, ...]:
        return tuple(sorted({op.name for op in self.operators if op.custom}))

    def custom_options(self, name: str) -> dict[str, Any]:
        for op in self.operators:
            if op.custom and op.name == name:
                return op.options
        return {}


def check_identifier(data: bytes, path: str) -> None:
    """Fail with a clear message when `data` is obviously not a TFLite flatbuffer."""
    if not data:
        raise ModelError(f"{path}: the file is empty; expected a TensorFlow Lite model (.tflite)")
    if len(data) < 16 or data[4:8] != _TFLITE_IDENTIFIER:
        hint = ""
        if data[:2] == b"PK":
            hint = " (it is a zip archive: unpack it and point edged at the .tflite inside)"
        elif data[:1] in (b"{", b"<"):
            hint = " (it looks like text: JSON or HTML, perhaps an error page saved instead of the model)"
        raise ModelError(
            f"{path}: not a TensorFlow Lite model: the file lacks the 'TFL3' flatbuffer identifier{hint}. "
            "Export the model to .tflite (e.g. TFLiteConverter, or the trainer's 'TensorFlow Lite' export)"
        )


def read_file_facts(data: bytes, path: str) -> FileFacts:
    """Parse operators and metadata; raise ModelError when the flatbuffer is truncated or corrupt."""
    check_identifier(data, path)
    try:
        return _read(data)
    except (_CorruptFlatbuffer, struct.error, UnicodeDecodeError, IndexError) as exc:
        raise ModelError(
            f"{path}: the model file is truncated or corrupt ({exc}); download or export it again"
        ) from exc


def _read(data: bytes) -> FileFacts:
    model = _root(data)
    codes: list[tuple[str, bool]] = []
    for code in model.tables(1):
        custom_code = code.string(1)
        if custom_code is not None:
            codes.append((custom_code, True))
        else:
            builtin = max(code.scalar(0, "<b", 0), code.scalar(3, "<i", 0))
            codes.append((str(builtin), False))
    operators: list[Operator] = []
    subgraphs = model.tables(2)
    if subgraphs:
        for op in subgraphs[0].tables(3):
            index = op.scalar(0, "<I", 0)
            if index >= len(codes):
                raise _CorruptFlatbuffer(f"operator refers to missing operator code {index}")
            name, custom = codes[index]
            options: dict[str, Any] = {}
            raw = op.raw_bytes(5)
            if custom and raw:
                try:
                    loaded = flexbuffers.Loads(raw)
                    options = loaded if isinstance(loaded, dict) else {}
                except Exception:  # options of some custom ops are not flexbuffers (Edge TPU)
                    options = {}
            operators.append(Operator(name=name, custom=custom, options=options))
    facts = FileFacts(operators=tuple(operators))
    metadata_bytes = _metadata_buffer(data, model)
    if metadata_bytes is not None and metadata_bytes[4:8] == _METADATA_IDENTIFIER:
        facts = _with_metadata(facts, metadata_bytes)
    return facts


def _metadata_buffer(data: bytes, model: _Table) -> bytes | None:
    buffers = model.tables(4)
    for entry in model.tables(6):
        if entry.string(0) == "TFLITE_METADATA":
            index = entry.scalar(1, "<I", 0)
            if index < len(buffers):
                buffer = buffers[index]
                inline = buffer.raw_bytes(0)
                if inline:
                    return bytes(inline)
                offset, size = buffer.scalar(1, "<Q", 0), buffer.scalar(2, "<Q", 0)
                if offset and size and offset + size <= len(data):
                    return bytes(data[offset : offset + size])
    return None


def _tensor_meta(table: _Table) -> TensorMeta:
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    for unit in table.tables(4):
        if unit.scalar(0, "<B", 0) == _PROCESS_UNIT_NORMALIZATION:
            options = unit.table(1)
            if options is not None:
                mean, std = options.floats(0), options.floats(1)
    files = tuple(name for f in table.tables(6) if (name := f.string(0)))
    return TensorMeta(name=table.string(0), mean=mean, std=std, associated_files=files)


def _detector_metadata(data: bytes) -> DetectorMetadata:
    """ObjectDetectorOptions: ssd_anchors_options (1) → fixed_anchors_schema (0) → anchors (0) of FixedAnchor
    (x_center, y_center, width, height); tensors_decoding_options (2), fields in schema order."""
    options = _root(data)
    ssd = options.table(1)
    schema = ssd.table(0) if ssd is not None else None
    anchors = tuple(
        (a.scalar(1, "<f", 0.0), a.scalar(0, "<f", 0.0), a.scalar(3, "<f", 0.0), a.scalar(2, "<f", 0.0))
        for a in (schema.tables(0) if schema is not None else [])
    )
    decoding = options.table(2)
    if decoding is None:
        raise _CorruptFlatbuffer("DETECTOR_METADATA has no tensors_decoding_options")
    return DetectorMetadata(
        anchors=anchors,
        num_classes=decoding.scalar(0, "<i", 0),
        num_boxes=decoding.scalar(1, "<i", 0),
        num_coords=decoding.scalar(2, "<i", 0),
        x_scale=decoding.scalar(6, "<f", 0.0),
        y_scale=decoding.scalar(7, "<f", 0.0),
        w_scale=decoding.scalar(8, "<f", 0.0),
        h_scale=decoding.scalar(9, "<f", 0.0),
        apply_exponential_on_box_size=bool(decoding.scalar(10, "<B", 0)),
        sigmoid_score=bool(decoding.scalar(11, "<B", 0)),
    )


def _with_metadata(facts: FileFacts, buf: bytes) -> FileFacts:
    meta = _root(buf)
    subgraphs = meta.tables(3)
    inputs: tuple[TensorMeta, ...] = ()
    outputs: tuple[TensorMeta, ...] = ()
    detector: DetectorMetadata | None = None
    if subgraphs:
        inputs = tuple(_tensor_meta(t) for t in subgraphs[0].tables(2))
        outputs = tuple(_tensor_meta(t) for t in subgraphs[0].tables(3))
        for custom in subgraphs[0].tables(9):  # custom_metadata (schema 1.5)
            if custom.string(0) == _DETECTOR_METADATA:
                detector = _detector_metadata(bytes(custom.raw_bytes(1)))
    files = tuple(name for f in meta.tables(6) if (name := f.string(0)))
    return FileFacts(
        operators=facts.operators,
        metadata_name=meta.string(0),
        metadata_version=meta.string(2),
        metadata_description=meta.string(1),
        inputs=inputs,
        outputs=outputs,
        model_associated_files=files,
        detector=detector,
    )
