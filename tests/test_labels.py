"""Label files in every supported format, and their alignment with the model's class numbering."""

from __future__ import annotations

from pathlib import Path

import pytest

from edged.errors import ModelError
from edged.inference.labels import align_labels, index_names, parse_labels, read_label_file


def test_plain_lines() -> None:
    labels = parse_labels("cat\ndog\n\n", "labels.txt", "test")
    assert labels.entries == {0: "cat", 1: "dog"}
    assert labels.format == "one name per line"


def test_teachable_machine_indexed_lines() -> None:
    labels = parse_labels("0 Red square\n1 Green circle\n", "labels.txt", "test")
    assert labels.entries == {0: "Red square", 1: "Green circle"}
    assert "Teachable" in labels.format


def test_tf_od_labelmap_with_background_aligns_to_postprocess_classes() -> None:
    labels = parse_labels("???\nAbyssinian\nbeagle\n", "pets_labelmap.txt", "test")
    assert labels.background_first
    aligned = align_labels(labels, num_classes=2, numbering="foreground")
    assert aligned.names == ("Abyssinian", "beagle")
    assert "background" in aligned.note


def test_pbtxt_ids_start_at_one_for_detectors() -> None:
    text = 'item {\n  name: "sedan"\n  id: 1\n}\nitem { id: 2 name: "bus" display_name: "Bus" }\n'
    labels = parse_labels(text, "label_map.pbtxt", "test")
    assert labels.entries == {1: "sedan", 2: "Bus"}
    aligned = align_labels(labels, num_classes=2, numbering="foreground")
    assert aligned.names == ("sedan", "Bus")
    assert "ids start at 1" in aligned.note


def test_ultralytics_yaml_mapping_and_list() -> None:
    mapping = parse_labels("task: detect\nnames:\n  0: person\n  1: 'traffic light'\nstride: 32\n", "m.yaml", "t")
    assert mapping.entries == {0: "person", 1: "traffic light"}
    listed = parse_labels("names:\n- a\n- b\n", "data.yaml", "t")
    assert listed.entries == {0: "a", 1: "b"}
    inline = parse_labels("names: ['x', 'y']\n", "data.yaml", "t")
    assert inline.entries == {0: "x", 1: "y"}


def test_ultralytics_embedded_dict() -> None:
    text = "{'task': 'detect', 'names': {0: 'person', 1: 'bicycle'}}"
    assert parse_labels(text, "temp_meta.txt", "t").entries == {0: "person", 1: "bicycle"}


def test_classifier_with_background_named_in_file() -> None:
    labels = parse_labels("background\ncat\ndog\n", "l.txt", "t")
    assert align_labels(labels, 3, "with_background").names == ("background", "cat", "dog")


def test_classifier_with_unnamed_background_is_explained_not_silently_shifted() -> None:
    labels = parse_labels("cat\ndog\n", "l.txt", "t")
    aligned = align_labels(labels, 3, "with_background")
    assert aligned.names == ("background", "cat", "dog")
    assert "class 0 is taken as an unnamed background" in aligned.note


def test_yolo_never_gets_an_implicit_background() -> None:
    labels = parse_labels("cat\ndog\n", "l.txt", "t")
    with pytest.raises(ModelError, match=r"name 2 classes .* outputs 3 classes"):
        align_labels(labels, 3, "plain")


def test_count_mismatch_names_both_counts_and_the_fix() -> None:
    labels = parse_labels("a\nb\nc\nd\n", "l.txt", "labels.txt")
    with pytest.raises(ModelError) as info:
        align_labels(labels, 37, "foreground")
    message = str(info.value)
    assert "4 classes" in message and "37 classes" in message and "'???' background" in message


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        read_label_file(tmp_path / "nope.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    with pytest.raises(ModelError, match="is empty"):
        read_label_file(empty)


def test_index_names_placeholder() -> None:
    names = index_names(3)
    assert names.names == ("class_0", "class_1", "class_2")
    assert names.name(7) == "class_7"
    assert "no labels" in names.note
