"""Configuration loading: errors name the TOML key and line; the example config is complete and valid."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from edged.config import load_config, parse_config
from edged.config.app import AppConfig
from edged.config.errors import _model_types
from edged.errors import ConfigError
from edged.publish.registry import PUBLISHERS
from edged.sources.registry import SOURCES

ROOT = Path(__file__).resolve().parents[1]
MINIMAL = '[model]\npath = "m.tflite"\n\n[camera]\ntype = "synthetic"\n'


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "test.toml")
    return str(info.value)


def test_minimal_config_gets_defaults() -> None:
    config = parse_config(MINIMAL)
    assert config.camera.type == "synthetic"
    assert config.publisher.type == "stdout"
    assert config.pipeline.shutdown_timeout_s == 5.0
    assert re.match(r"^[A-Za-z0-9_-]+$", config.device_id)


def test_unknown_key_names_line_and_suggests() -> None:
    message = error_of('[model]\npath = "m.tflite"\nthreshhold = 0.3\n\n[camera]\ntype = "synthetic"\n')
    assert "test.toml:3: model.threshhold: unknown key (did you mean 'threshold'?)" in message


def test_bad_value_names_key_and_line() -> None:
    message = error_of(MINIMAL + "\n[pipeline]\nmax_fps = -1\n")
    assert "test.toml:8: pipeline.max_fps:" in message and "greater than or equal to 0" in message


def test_unknown_camera_type_points_at_the_type_line() -> None:
    message = error_of('[model]\npath = "m.tflite"\n[camera]\ntype = "webcam"\n')
    assert "test.toml:4: camera.type:" in message and "'opencv'" in message


def test_missing_required_key() -> None:
    message = error_of('[camera]\ntype = "synthetic"\n')
    assert "model: required key is missing" in message


def test_not_toml() -> None:
    assert "not valid TOML" in error_of("[model\npath=")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    config_file = tmp_path / "sub" / "edged.toml"
    config_file.parent.mkdir()
    config_file.write_text(MINIMAL)
    assert load_config(config_file).model.path == tmp_path / "sub" / "m.tflite"


def test_rate_options_are_exclusive() -> None:
    assert "either max_fps or interval_s" in error_of(MINIMAL + "[pipeline]\nmax_fps = 2\ninterval_s = 5\n")


def test_device_id_must_be_topic_safe() -> None:
    assert "device_id" in error_of('device_id = "a/b#"\n' + MINIMAL)


def _all_keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    keys = set()
    for name, field in model.model_fields.items():
        keys.add(name)
        for nested in _model_types(field.annotation):
            keys |= _all_keys(nested)
    return keys


def test_example_config_is_valid_and_mentions_every_option() -> None:
    example = ROOT / "config.example.toml"
    load_config(example)
    text = example.read_text()
    mentioned = set(re.findall(r"^#?\s*([a-z_]+)\s*=", text, re.M))
    mentioned |= {table.split(".")[-1] for table in re.findall(r"^#?\s*\[([a-z_.]+)\]", text, re.M)}
    every = _all_keys(AppConfig)
    for plugin in [*SOURCES.all().values(), *PUBLISHERS.all().values()]:
        every |= _all_keys(plugin.config)
    missing = every - mentioned - {"camera", "model", "pipeline", "publisher", "reconnect"}
    assert not missing, f"config.example.toml does not document: {sorted(missing)}"
