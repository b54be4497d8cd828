"""Shared parts of the hosting tests: repositories built with the `edged hosting` commands, and device clients."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.fault_server import FaultServer
from support.nginx import Nginx, require_nginx

from edged.cli import main
from edged.config.hosting import HostingConfig
from edged.hosting.client import HostingClient

MODELS = Path(__file__).parent / "fixtures" / "models"
CLASSIFIER = MODELS / "shapes_classifier_quant.tflite"
TEACHABLE = MODELS / "teachable" / "model_unquant.tflite"
TEACHABLE_LABELS = MODELS / "teachable" / "labels.txt"
YOLOV8 = MODELS / "shapes_yolov8_int8.tflite"
YOLOV8_LABELS = MODELS / "shapes_yolov8_metadata.yaml"
NAME = "shapes"


def edged(*args: str | Path) -> int:
    return main(["-q", *(str(a) for a in args)])


@dataclass
class Repo:
    path: Path
    keys: Path

    @property
    def root_json(self) -> Path:
        return self.path / "metadata" / "root.json"

    def publish(self, model: Path = CLASSIFIER, *extra: str | Path) -> None:
        assert edged("hosting", "publish", self.path, model, "--name", NAME, "--keys", self.keys, *extra) == 0

    def timestamp(self) -> bytes:
        return (self.path / "metadata" / "timestamp.json").read_bytes()


def new_repo(base: Path) -> Repo:
    repo = Repo(base / "repo", base / "keys")
    assert edged("hosting", "init", repo.path, "--keys", repo.keys) == 0
    return repo


def client_for(url: str, repo: Repo, state_dir: Path, device_id: str = "device-1", **settings: Any) -> HostingClient:
    config = HostingConfig(url=url, name=NAME, trusted_root=repo.root_json, free_space_margin_bytes=0, **settings)
    return HostingClient(config, state_dir, device_id, has_edgetpu=settings.pop("has_edgetpu", False))


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return new_repo(tmp_path)


@pytest.fixture
def nginx(tmp_path: Path, repo: Repo) -> Iterator[Nginx]:
    server = Nginx(repo.path, tmp_path / "nginx", require_nginx()).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def faulty(repo: Repo) -> Iterator[FaultServer]:
    server = FaultServer(repo.path).start()
    try:
        yield server
    finally:
        server.stop()


def copy_tree(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target
