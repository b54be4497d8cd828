"""Selection as a pure function (Edge TPU variants, Edge-TPU-only versions, channels) and the [hosting] table."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from edged.config import parse_config
from edged.config.hosting import InstallWindow
from edged.errors import ConfigError
from edged.hosting.layout import VersionFiles, VersionMeta
from edged.hosting.selection import DeviceFacts, LocalFacts, PublishedFile, PublishedVersion, select


def _version(number: int, cpu: bool = True, edgetpu: bool = False, channel: str = "stable") -> PublishedVersion:
    files = VersionFiles(
        cpu=f"m/{number}/model.tflite" if cpu else None,
        edgetpu=f"m/{number}/model_edgetpu.tflite" if edgetpu else None,
    )
    meta = VersionMeta(name="m", version=number, channel=channel, files=files)
    published = [PublishedFile("model", files.cpu, 10, f"cpu{number}")] if files.cpu else []
    if files.edgetpu:
        published.append(PublishedFile("edgetpu_model", files.edgetpu, 20, f"tpu{number}"))
    return PublishedVersion(meta, tuple(published))


def _device(tpu: bool, channel: str = "stable") -> DeviceFacts:
    return DeviceFacts("dev", channel, tpu, "0.1.0")


def test_a_device_with_an_edge_tpu_takes_the_variant_and_its_cpu_twin() -> None:
    offer = select({1: _version(1, edgetpu=True)}, _device(tpu=True), LocalFacts()).offer
    assert offer is not None and offer.variant == "edgetpu" and offer.sha256 == "tpu1"
    assert [f.role for f in offer.files] == ["edgetpu_model", "model"]  # the CPU model comes as fallback
    offer = select({1: _version(1, edgetpu=True)}, _device(tpu=False), LocalFacts()).offer
    assert offer is not None and offer.variant == "cpu" and [f.role for f in offer.files] == ["model"]


def test_an_edge_tpu_only_version_is_skipped_without_a_tpu() -> None:
    published = {1: _version(1), 2: _version(2, cpu=False, edgetpu=True)}
    selection = select(published, _device(tpu=False), LocalFacts())
    assert selection.offer is not None and selection.offer.version == 1
    assert "Edge-TPU-only version" in selection.skipped[2]
    assert select(published, _device(tpu=True), LocalFacts()).offer.version == 2  # type: ignore[union-attr]


def test_channels_and_a_current_version_that_left_the_channel() -> None:
    published = {1: _version(1), 2: _version(2, channel="beta")}
    assert select(published, _device(False, "beta"), LocalFacts()).offer.version == 2  # type: ignore[union-attr]
    on_beta = LocalFacts(current_version=2, current_sha256="cpu2")
    back = select(published, _device(False, "stable"), on_beta)
    assert back.offer is not None and back.offer.version == 1 and "going back" in back.note
    assert select({2: _version(2, channel="beta")}, _device(False), on_beta).current_allowed is False


def test_the_hosting_table_is_strict_and_resolves_paths(tmp_path: Path) -> None:
    base = '[model]\npath = "m.tflite"\n[camera]\ntype = "synthetic"\n'
    text = (
        'state_dir = "state"\n' + base
        + '[hosting]\nurl = "https://models.example.com/kitchen"\nname = "kitchen"\ntrusted_root = "root.json"\n'
        'install_window = "22:00-04:00"\n'
    )  # fmt: skip
    config = parse_config(text, "edged.toml", tmp_path)
    assert config.hosting is not None and config.state_dir == tmp_path / "state"
    assert config.hosting.trusted_root == tmp_path / "root.json"
    assert config.hosting.metadata_url == "https://models.example.com/kitchen/metadata/"
    window = config.hosting.window()
    assert window is not None and window.contains(dt.time(23, 0)) and window.contains(dt.time(3, 59))
    assert not window.contains(dt.time(4, 0)) and not window.contains(dt.time(12, 0))
    for bad, words in (
        ('auto_install = "yes"', "hosting.auto_install"),
        ('interval_s = "900"', "hosting.interval_s"),
        ("keep_versions = 0", "hosting.keep_versions"),
        ("pin_version = true", "hosting.pin_version"),
        ("chanel = 'beta'", "did you mean 'channel'"),
    ):
        with pytest.raises(ConfigError, match=words):
            parse_config(text + bad + "\n", "edged.toml", tmp_path)
    with pytest.raises(ConfigError, match="HH:MM-HH:MM"):
        parse_config(text.replace("22:00-04:00", "2:00-5:00"), "edged.toml", tmp_path)
    with pytest.raises(ConfigError, match="not an http"):
        parse_config(text.replace("https://models.example.com/kitchen", "ftp://x"), "edged.toml", tmp_path)


def test_state_dir_defaults_to_the_systemd_state_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    text = '[model]\npath = "m.tflite"\n[camera]\ntype = "synthetic"\n'
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/edged")
    assert parse_config(text).state_dir == Path("/var/lib/edged")
    monkeypatch.delenv("STATE_DIRECTORY")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert parse_config(text).state_dir == tmp_path / ".local" / "state" / "edged"
    assert InstallWindow.parse("02:00-05:00").contains(dt.time(2, 0))
