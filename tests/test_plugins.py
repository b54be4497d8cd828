"""Plugins: every registered source and publisher kind fulfils the contract, and a new kind takes one file."""

from __future__ import annotations

import subprocess
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
from pipeline_support import RecordingPublisher
from pydantic import ValidationError

from edged.app.daemon import Daemon
from edged.config import parse_config
from edged.errors import ConfigError
from edged.publish.registry import PUBLISHERS
from edged.sources.registry import SOURCES

ROOT = Path(__file__).resolve().parents[1]
CLASSIFIER = ROOT / "tests" / "fixtures" / "models" / "shapes_classifier_quant.tflite"
SCRIPTED = "support.plugins.scripted"


@pytest.fixture
def scripted_kind() -> Iterator[None]:
    """The one registry line a new kind needs (here at run time: the kind lives in the tests)."""
    SOURCES.register(SCRIPTED)
    yield
    SOURCES.unregister(SCRIPTED)


def _type_literal(config: type) -> object:
    (value,) = typing.get_args(config.model_fields["type"].annotation)
    return value


@pytest.mark.parametrize("kind", SOURCES.names())
def test_every_source_kind_fulfils_the_contract(kind: str) -> None:
    plugin = SOURCES.all()[kind]
    assert _type_literal(plugin.config) == kind, "the config model's `type` Literal is the registered name"
    config = plugin.config.model_validate({"type": kind, **plugin.example})
    assert isinstance(config.is_live(), bool)
    with pytest.raises(ValidationError):
        plugin.config.model_validate({"type": kind, **plugin.example, "no_such_key": 1})
    source = plugin.create(config)
    assert source.id == config.id
    assert all(callable(getattr(source, name)) for name in ("open", "read", "close", "describe"))
    assert isinstance(source.describe(), str)
    assert f'type = "{kind}"' in (ROOT / "config.example.toml").read_text(), "config.example.toml documents it"


@pytest.mark.parametrize("kind", PUBLISHERS.names())
def test_every_publisher_kind_fulfils_the_contract(kind: str) -> None:
    plugin = PUBLISHERS.all()[kind]
    assert _type_literal(plugin.config) == kind
    config = plugin.config.model_validate({"type": kind, **plugin.example})
    with pytest.raises(ValidationError):
        plugin.config.model_validate({"type": kind, **plugin.example, "no_such_key": 1})
    publisher = plugin.create(config, "contract")
    for name in ("start", "publish_result", "publish_stats", "publish_state", "publish_event", "publish_snapshot",
                 "flush", "take_backlog", "stop"):  # fmt: skip
        assert callable(getattr(publisher, name)), name
    assert publisher.take_backlog() == []  # nothing was handed over yet
    assert isinstance(config.entity_labels(), list)
    if kind != "null":
        assert f'type = "{kind}"' in (ROOT / "config.example.toml").read_text()


def test_a_new_source_kind_takes_one_file_and_one_registry_line(scripted_kind: None) -> None:
    config = parse_config(
        f'device_id = "t"\n[model]\npath = "{CLASSIFIER}"\nnum_threads = 1\n[camera]\ntype = "scripted"\nframes = 12\n'
    )
    publisher = RecordingPublisher()
    assert Daemon(config, publisher=publisher).run(handle_signals=False) == 0
    assert [r["source"]["frame_index"] for r in publisher.results] == list(range(12))  # back-pressure: all
    # Nothing in edged itself knows the kind: its config model, live rule and source are in its one file.
    found = subprocess.run(["grep", "-rl", "scripted", str(ROOT / "edged")], capture_output=True, text=True)
    assert found.stdout == ""


def test_an_unregistered_kind_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config('[model]\npath = "m.tflite"\n[camera]\ntype = "scripted"\n', "c.toml")
    assert "c.toml:4: camera.type: 'scripted' is not a known camera type; use one of 'opencv'" in str(info.value)


def test_a_kind_registered_twice_is_a_clear_error() -> None:
    from edged.plugins import Registry

    registry: Registry[typing.Any] = Registry("camera", ["edged.sources.opencv", "edged.sources.opencv"])
    with pytest.raises(RuntimeError, match="registered twice"):
        registry.all()
