"""Write TFLite model metadata the way the metadata populators of TFLite Support and MediaPipe Tasks do.

Developer tool for tools/make_test_models.py (needs TensorFlow for `flatbuffer_utils`). The layouts follow
mediapipe/tasks/metadata/metadata_schema.fbs (file identifier "M001") and
object_detector_metadata_schema.fbs ("V001", the DETECTOR_METADATA custom metadata that MediaPipe Model Maker
writes for detectors without a post-processing op). Field numbers below are the schema's field order.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import flatbuffers
import numpy as np
import numpy.typing as npt

METADATA_IDENTIFIER = b"M001"
DETECTOR_IDENTIFIER = b"V001"
FIXED_DATE = (2024, 1, 1, 0, 0, 0)  # zip entries with a fixed date: reproducible bytes

# enums of metadata_schema.fbs
ASSOCIATED_TENSOR_AXIS_LABELS = 2
COLOR_SPACE_RGB = 1
CONTENT_FEATURE, CONTENT_IMAGE, CONTENT_BOUNDING_BOX = 1, 2, 3
PROCESS_UNIT_NORMALIZATION = 1
BOUNDING_BOX_BOUNDARIES = 1
COORDINATE_RATIO = 0


def _floats(builder: flatbuffers.Builder, values: Sequence[float]) -> int:
    builder.StartVector(4, len(values), 4)
    for value in reversed(values):
        builder.PrependFloat32(float(value))
    return int(builder.EndVector())


def _uints(builder: flatbuffers.Builder, values: Sequence[int]) -> int:
    builder.StartVector(4, len(values), 4)
    for value in reversed(values):
        builder.PrependUint32(int(value))
    return int(builder.EndVector())


def _tables(builder: flatbuffers.Builder, offsets: Sequence[int]) -> int:
    builder.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return int(builder.EndVector())


def _bytes(builder: flatbuffers.Builder, data: bytes, alignment: int) -> int:
    builder.StartVector(1, len(data), alignment)
    for byte in reversed(data):
        builder.PrependUint8(byte)
    return int(builder.EndVector())


def _associated_file(builder: flatbuffers.Builder, name: str, description: str, kind: int) -> int:
    name_off, desc_off = builder.CreateString(name), builder.CreateString(description)
    builder.StartObject(5)  # AssociatedFile: name, description, type, locale, version
    builder.PrependUOffsetTRelativeSlot(0, name_off, 0)
    builder.PrependUOffsetTRelativeSlot(1, desc_off, 0)
    builder.PrependInt8Slot(2, kind, 0)
    return int(builder.EndObject())


def _value_range(builder: flatbuffers.Builder, low: int, high: int) -> int:
    builder.StartObject(2)  # ValueRange: min, max
    builder.PrependInt32Slot(0, low, 0)
    builder.PrependInt32Slot(1, high, 0)
    return int(builder.EndObject())


def _content(builder: flatbuffers.Builder, kind: int, properties: int, value_range: int | None = None) -> int:
    builder.StartObject(3)  # Content: content_properties_type, content_properties, range
    builder.PrependUint8Slot(0, kind, 0)
    builder.PrependUOffsetTRelativeSlot(1, properties, 0)
    if value_range is not None:
        builder.PrependUOffsetTRelativeSlot(2, value_range, 0)
    return int(builder.EndObject())


def _tensor(
    builder: flatbuffers.Builder,
    name: str,
    description: str,
    content: int,
    process_units: Sequence[int] = (),
    files: Sequence[int] = (),
    stats: int | None = None,
) -> int:
    name_off, desc_off = builder.CreateString(name), builder.CreateString(description)
    units = _tables(builder, process_units) if process_units else None
    file_vec = _tables(builder, files) if files else None
    builder.StartObject(7)  # TensorMetadata: name, description, dimension_names, content, process_units, stats, files
    builder.PrependUOffsetTRelativeSlot(0, name_off, 0)
    builder.PrependUOffsetTRelativeSlot(1, desc_off, 0)
    builder.PrependUOffsetTRelativeSlot(3, content, 0)
    if units is not None:
        builder.PrependUOffsetTRelativeSlot(4, units, 0)
    if stats is not None:
        builder.PrependUOffsetTRelativeSlot(5, stats, 0)
    if file_vec is not None:
        builder.PrependUOffsetTRelativeSlot(6, file_vec, 0)
    return int(builder.EndObject())


def _image_input(builder: flatbuffers.Builder, mean: float, std: float) -> int:
    builder.StartObject(2)  # ImageProperties: color_space, default_size
    builder.PrependInt8Slot(0, COLOR_SPACE_RGB, 0)
    properties = builder.EndObject()
    content = _content(builder, CONTENT_IMAGE, properties)
    mean_vec, std_vec = _floats(builder, [mean]), _floats(builder, [std])
    builder.StartObject(2)  # NormalizationOptions: mean, std
    builder.PrependUOffsetTRelativeSlot(0, mean_vec, 0)
    builder.PrependUOffsetTRelativeSlot(1, std_vec, 0)
    options = builder.EndObject()
    builder.StartObject(2)  # ProcessUnit: options_type, options
    builder.PrependUint8Slot(0, PROCESS_UNIT_NORMALIZATION, 0)
    builder.PrependUOffsetTRelativeSlot(1, options, 0)
    unit = builder.EndObject()
    lo, hi = (0 - mean) / std, (255 - mean) / std
    max_vec, min_vec = _floats(builder, [hi]), _floats(builder, [lo])
    builder.StartObject(2)  # Stats: max, min
    builder.PrependUOffsetTRelativeSlot(0, max_vec, 0)
    builder.PrependUOffsetTRelativeSlot(1, min_vec, 0)
    stats = builder.EndObject()
    return _tensor(builder, "image", "Input image to be processed.", content, [unit], stats=stats)


def _feature_content(builder: flatbuffers.Builder, value_range: int | None = None) -> int:
    builder.StartObject(0)  # FeatureProperties
    return _content(builder, CONTENT_FEATURE, builder.EndObject(), value_range)


def _model(
    builder: flatbuffers.Builder,
    name: str,
    description: str,
    inputs: Sequence[int],
    outputs: Sequence[int],
    custom: Sequence[int] = (),
) -> bytes:
    input_vec, output_vec = _tables(builder, inputs), _tables(builder, outputs)
    custom_vec = _tables(builder, custom) if custom else None
    builder.StartObject(10)  # SubGraphMetadata: ..., input_tensor_metadata 2, output_tensor_metadata 3, custom 9
    builder.PrependUOffsetTRelativeSlot(2, input_vec, 0)
    builder.PrependUOffsetTRelativeSlot(3, output_vec, 0)
    if custom_vec is not None:
        builder.PrependUOffsetTRelativeSlot(9, custom_vec, 0)
    subgraph = builder.EndObject()
    name_off, desc_off = builder.CreateString(name), builder.CreateString(description)
    version_off, author_off = builder.CreateString("v1"), builder.CreateString("edged tools/make_test_models.py")
    license_off = builder.CreateString("Apache-2.0")
    parser_off = builder.CreateString("1.5.0" if custom else "1.0.0")
    subgraphs = _tables(builder, [subgraph])
    builder.StartObject(8)  # ModelMetadata: name, description, version, subgraphs, author, license, files, parser
    builder.PrependUOffsetTRelativeSlot(0, name_off, 0)
    builder.PrependUOffsetTRelativeSlot(1, desc_off, 0)
    builder.PrependUOffsetTRelativeSlot(2, version_off, 0)
    builder.PrependUOffsetTRelativeSlot(3, subgraphs, 0)
    builder.PrependUOffsetTRelativeSlot(4, author_off, 0)
    builder.PrependUOffsetTRelativeSlot(5, license_off, 0)
    builder.PrependUOffsetTRelativeSlot(7, parser_off, 0)
    builder.Finish(builder.EndObject(), METADATA_IDENTIFIER)
    return bytes(builder.Output())


def classifier_metadata(mean: float, std: float, labels_file: str) -> bytes:
    """ImageClassifier metadata: image input with normalization, a probability output with TENSOR_AXIS_LABELS."""
    builder = flatbuffers.Builder(1024)
    image = _image_input(builder, mean, std)
    labels = _associated_file(builder, labels_file, "Labels for the classes.", ASSOCIATED_TENSOR_AXIS_LABELS)
    probability = _tensor(builder, "probability", "Class probabilities.", _feature_content(builder), files=[labels])
    return _model(builder, "ImageClassifier", "edged fixture: coloured shapes", [image], [probability])


@dataclass(frozen=True)
class DecodingOptions:
    """TensorsDecodingOptions of object_detector_metadata_schema.fbs."""

    num_classes: int
    num_boxes: int
    x_scale: float
    y_scale: float
    w_scale: float
    h_scale: float
    apply_exponential_on_box_size: bool
    sigmoid_score: bool


def _detector_options(anchors: npt.NDArray[np.float32], decoding: DecodingOptions) -> bytes:
    """ObjectDetectorOptions ("V001"); anchors are rows of (y_center, x_center, height, width)."""
    builder = flatbuffers.Builder(1024)
    anchor_offsets = []
    for y_center, x_center, height, width in anchors.tolist():
        builder.StartObject(4)  # FixedAnchor: x_center, y_center, width, height
        builder.PrependFloat32Slot(0, x_center, 0.0)
        builder.PrependFloat32Slot(1, y_center, 0.0)
        builder.PrependFloat32Slot(2, width, 0.0)
        builder.PrependFloat32Slot(3, height, 0.0)
        anchor_offsets.append(builder.EndObject())
    anchor_vec = _tables(builder, anchor_offsets)
    builder.StartObject(1)  # FixedAnchorsSchema: anchors
    builder.PrependUOffsetTRelativeSlot(0, anchor_vec, 0)
    schema = builder.EndObject()
    builder.StartObject(1)  # SsdAnchorsOptions: fixed_anchors_schema
    builder.PrependUOffsetTRelativeSlot(0, schema, 0)
    ssd = builder.EndObject()
    builder.StartObject(12)  # TensorsDecodingOptions
    builder.PrependInt32Slot(0, decoding.num_classes, 0)
    builder.PrependInt32Slot(1, decoding.num_boxes, 0)
    builder.PrependInt32Slot(2, 4, 0)  # num_coords
    builder.PrependInt32Slot(3, 0, 0)  # keypoint_coord_offset
    builder.PrependInt32Slot(4, 0, 0)  # num_keypoints
    builder.PrependInt32Slot(5, 2, 0)  # num_values_per_keypoint (Model Maker writes 2)
    builder.PrependFloat32Slot(6, decoding.x_scale, 0.0)
    builder.PrependFloat32Slot(7, decoding.y_scale, 0.0)
    builder.PrependFloat32Slot(8, decoding.w_scale, 0.0)
    builder.PrependFloat32Slot(9, decoding.h_scale, 0.0)
    builder.PrependBoolSlot(10, decoding.apply_exponential_on_box_size, False)
    builder.PrependBoolSlot(11, decoding.sigmoid_score, False)
    tensors = builder.EndObject()
    builder.StartObject(3)  # ObjectDetectorOptions: min_parser_version, ssd_anchors_options, tensors_decoding
    builder.PrependUOffsetTRelativeSlot(1, ssd, 0)
    builder.PrependUOffsetTRelativeSlot(2, tensors, 0)
    builder.Finish(builder.EndObject(), DETECTOR_IDENTIFIER)
    return bytes(builder.Output())


def raw_detector_metadata(
    mean: float, std: float, labels_file: str, anchors: npt.NDArray[np.float32], decoding: DecodingOptions
) -> bytes:
    """What MediaPipe Model Maker's `create_for_models_without_nms` writes: outputs `location` (boxes) and
    `score` (with the label file, TENSOR_AXIS_LABELS), and the DETECTOR_METADATA custom metadata."""
    builder = flatbuffers.Builder(4096)
    image = _image_input(builder, mean, std)
    index = _uints(builder, [1, 0, 3, 2])
    builder.StartObject(3)  # BoundingBoxProperties: index, type, coordinate_type
    builder.PrependUOffsetTRelativeSlot(0, index, 0)
    builder.PrependInt8Slot(1, BOUNDING_BOX_BOUNDARIES, 0)
    builder.PrependInt8Slot(2, COORDINATE_RATIO, 0)
    box_properties = builder.EndObject()
    location = _tensor(
        builder,
        "location",
        "The locations of the detected boxes.",
        _content(builder, CONTENT_BOUNDING_BOX, box_properties, _value_range(builder, 2, 2)),
    )
    labels = _associated_file(builder, labels_file, "Labels for categories.", ASSOCIATED_TENSOR_AXIS_LABELS)
    score = _tensor(
        builder,
        "score",
        "The scores of the detected boxes.",
        _feature_content(builder, _value_range(builder, 2, 2)),
        files=[labels],
    )
    name_off = builder.CreateString("DETECTOR_METADATA")
    data_off = _bytes(builder, _detector_options(anchors, decoding), 16)
    builder.StartObject(2)  # CustomMetadata: name, data
    builder.PrependUOffsetTRelativeSlot(0, name_off, 0)
    builder.PrependUOffsetTRelativeSlot(1, data_off, 0)
    custom = builder.EndObject()
    return _model(builder, "ObjectDetector", "edged fixture: coloured shapes", [image], [location, score], [custom])


def populate(path: Path, metadata: bytes, files: dict[str, str]) -> None:
    """Put `metadata` in the model's TFLITE_METADATA buffer, then append `files` as a zip, as the populator does."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(path.read_bytes()))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(metadata, np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = b"TFLITE_METADATA"
    entry.buffer = len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), entry]
    path.write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(model)))
    append_files(path, files)


def append_files(path: Path, files: dict[str, str], compression: int = zipfile.ZIP_STORED) -> None:
    """Append files as a zip archive after the flatbuffer (the .tflite stays loadable)."""
    with zipfile.ZipFile(path, "a", compression) as archive:
        for name, text in files.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=FIXED_DATE), text, compress_type=compression)
    with zipfile.ZipFile(path) as archive:
        missing = set(files) - set(archive.namelist())
        if missing:
            raise RuntimeError(f"{path.name}: associated files {sorted(missing)} were not appended")


def add_ultralytics_metadata(path: Path, metadata: dict[str, object]) -> None:
    """What Ultralytics' exporter (`_add_tflite_metadata`, 8.3.x) does: `zipfile.ZipFile(file, "a",
    ZIP_DEFLATED).writestr("metadata.json", json.dumps(self.metadata, indent=2))`."""
    append_files(path, {"metadata.json": json.dumps(metadata, indent=2)}, zipfile.ZIP_DEFLATED)
