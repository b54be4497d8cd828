"""The publishing side through the `edged hosting` commands: the files they write, what publish refuses, keys."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from hosting_support import CLASSIFIER, NAME, TEACHABLE, YOLOV8, YOLOV8_LABELS, Repo, edged
from tuf.api.metadata import Metadata

from edged.hosting import repository
from edged.hosting.layout import INDEX_PATH


def _targets(repo: Repo) -> Metadata:  # type: ignore[type-arg]
    status = repository.status(repo.path)
    version = status.metadata_versions["targets"]
    return Metadata.from_bytes((repo.path / "metadata" / f"{version}.targets.json").read_bytes())


def test_init_writes_a_repository_with_consistent_snapshots_and_private_keys(repo: Repo) -> None:
    root = json.loads(repo.root_json.read_text())["signed"]
    assert root["consistent_snapshot"] is True
    assert set(root["roles"]) == {"root", "targets", "snapshot", "timestamp"}
    assert len({keyid for role in root["roles"].values() for keyid in role["keyids"]}) == 4  # one key per role
    for pem in [repo.keys / "root" / "root.pem", *(repo.keys / "online").glob("*.pem")]:
        assert stat.S_IMODE(pem.stat().st_mode) == 0o600
        assert stat.S_IMODE(pem.parent.stat().st_mode) == 0o700
    assert len(list((repo.keys / "online").glob("*.pem"))) == 3
    assert {p.name for p in (repo.path / "metadata").iterdir()} == {
        "1.root.json", "root.json", "1.targets.json", "1.snapshot.json", "timestamp.json",
    }  # fmt: skip


def test_init_refuses_keys_inside_the_served_repository_and_an_existing_repository(
    tmp_path: Path, repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    assert edged("hosting", "init", tmp_path / "r2", "--keys", tmp_path / "r2" / "keys") == 1
    assert "served to everyone" in capsys.readouterr().err
    assert edged("hosting", "init", repo.path, "--keys", tmp_path / "other-keys") == 1
    assert "already a repository" in capsys.readouterr().err


def test_publish_numbers_versions_and_describes_each_in_signed_custom_metadata(repo: Repo) -> None:
    repo.publish(CLASSIFIER, "--notes", "first", "--set", "threshold=0.25", "--set", "top_k=2")
    repo.publish(YOLOV8, "--labels", YOLOV8_LABELS, "--channel", "beta", "--rollout", "30")
    targets = _targets(repo).signed.targets
    first = targets[f"{NAME}/1/model.tflite"].custom["edged"]
    assert first["version"] == 1 and first["notes"] == "first" and first["channel"] == "stable"
    assert json.loads(first["model_json"]) == {"threshold": 0.25, "top_k": 2}
    second = targets[f"{NAME}/2/model.tflite"].custom["edged"]
    assert (second["version"], second["channel"], second["rollout_percent"]) == (2, "beta", 30)
    assert second["files"]["labels"] == f"{NAME}/2/shapes_yolov8_metadata.yaml"
    assert targets[f"{NAME}/2/shapes_yolov8_metadata.yaml"].custom["edged"]["role"] == "labels"
    stored = targets[f"{NAME}/1/model.tflite"].hashes["sha256"]
    assert (repo.path / "targets" / NAME / "1" / f"{stored}.model.tflite").read_bytes() == CLASSIFIER.read_bytes()
    assert INDEX_PATH in targets


def test_rollout_withdraw_and_refresh_sign_new_metadata_versions(repo: Repo) -> None:
    repo.publish()
    before = repository.status(repo.path).metadata_versions
    assert (
        edged("hosting", "rollout", repo.path, "--name", NAME, "--version", "1", "--percent", "40", "--keys", repo.keys)
        == 0
    )
    assert edged("hosting", "withdraw", repo.path, "--name", NAME, "--version", "1", "--keys", repo.keys) == 0
    assert edged("hosting", "refresh", repo.path, "--keys", repo.keys) == 0
    after = repository.status(repo.path)
    meta = after.versions[NAME][1]
    assert (meta.rollout_percent, meta.withdrawn) == (40, True)
    assert after.metadata_versions["targets"] == before["targets"] + 2
    assert after.metadata_versions["timestamp"] == before["timestamp"] + 3


@pytest.mark.parametrize(
    ("make_model", "extra", "reason"),
    [
        (lambda d: d / "truncated.tflite", (), "truncated or corrupt"),
        (lambda d: CLASSIFIER, ("--set", "decoder=ssd"), "refused"),
        (lambda d: CLASSIFIER, ("--set", "threshold=2"), "--set threshold"),
        (lambda d: CLASSIFIER, ("--set", "path=other.tflite"), "not a per-version setting"),
        (lambda d: TEACHABLE, ("--labels", "{d}/five_labels.txt"), "but the model outputs 3 classes"),
        (lambda d: CLASSIFIER, ("--golden", "{d}/blue.png=red_square"), "golden image"),
        (lambda d: CLASSIFIER, ("--golden", "{d}/blue.png=dog"), "not one of the model's labels"),
    ],
    ids=[
        "truncated-model",
        "wrong-decoder",
        "bad-setting",
        "file-setting",
        "label-count",
        "golden-wrong",
        "golden-unknown-label",
    ],
)
def test_publish_refuses_what_a_device_would_refuse_with_the_reason(
    tmp_path: Path,
    repo: Repo,
    capsys: pytest.CaptureFixture[str],
    make_model: object,
    extra: tuple[str, ...],
    reason: str,
) -> None:
    (tmp_path / "truncated.tflite").write_bytes(CLASSIFIER.read_bytes()[:4000])
    (tmp_path / "five_labels.txt").write_text("a\nb\nc\nd\ne\n")
    _shape_image(tmp_path / "blue.png", "blue_triangle")
    before = sorted(p.name for p in (repo.path / "metadata").iterdir())
    model = make_model(tmp_path)  # type: ignore[operator]
    extra = tuple(arg.format(d=tmp_path) for arg in extra)
    assert edged("hosting", "publish", repo.path, model, "--name", NAME, "--keys", repo.keys, *extra) == 1
    err = capsys.readouterr().err
    assert reason in err, err
    assert "Traceback" not in err and err.count("edged: error:") == 1
    assert sorted(p.name for p in (repo.path / "metadata").iterdir()) == before  # nothing signed


def test_publish_accepts_golden_images_the_model_answers(tmp_path: Path, repo: Repo) -> None:
    _shape_image(tmp_path / "blue.png", "blue_triangle")
    repo.publish(CLASSIFIER, "--golden", f"{tmp_path / 'blue.png'}=blue_triangle")
    meta = repository.status(repo.path).versions[NAME][1]
    assert [(g.image, g.expected) for g in meta.golden] == [(f"{NAME}/1/golden/0-blue.png", "blue_triangle")]


def test_a_wrong_or_missing_key_directory_is_a_clear_error(
    tmp_path: Path, repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other"
    assert edged("hosting", "init", other / "repo", "--keys", other / "keys") == 0
    capsys.readouterr()
    assert edged("hosting", "refresh", repo.path, "--keys", other / "keys") == 1
    assert "is not the targets key of this repository" in capsys.readouterr().err
    assert edged("hosting", "publish", repo.path, CLASSIFIER, "--name", NAME, "--keys", other / "keys") == 1
    assert "is not the targets key of this repository" in capsys.readouterr().err
    assert edged("hosting", "refresh", repo.path, "--keys", tmp_path / "nowhere") == 1
    assert "does not exist" in capsys.readouterr().err
    (repo.keys / "online" / "timestamp.pem").chmod(0o644)
    assert edged("hosting", "refresh", repo.path, "--keys", repo.keys) == 1
    assert "chmod 600" in capsys.readouterr().err


def test_publish_of_an_edge_tpu_model_as_variant_must_be_compiled(
    tmp_path: Path, repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        edged(
            "hosting",
            "publish",
            repo.path,
            CLASSIFIER,
            "--name",
            NAME,
            "--keys",
            repo.keys,
            "--edgetpu-model",
            CLASSIFIER,
        )
        == 1
    )
    assert "not compiled for the Edge TPU" in capsys.readouterr().err


def _shape_image(path: Path, kind: str) -> None:
    """A scene of the kind the fixture models were trained on, drawn by edged's own synthetic-source code."""
    import cv2
    import numpy as np

    from edged.sources.shapes import Shape, draw_scene

    cv2.imwrite(str(path), draw_scene(np.random.default_rng(7), 128, 128, [Shape(kind, 0.5, 0.5, 0.3)]))


@pytest.mark.conformance
def test_conformance_edge_tpu_variant_and_a_model_with_an_unresolved_op(
    shared_data: Path, repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    models = shared_data / "models"
    cpu, tpu = models / "mobilenet_v1_0.25_128_quant.tflite", models / "mobilenet_v1_0.25_128_quant_edgetpu.tflite"
    labels = models / "imagenet_labels.txt"
    repo.publish(cpu, "--labels", labels, "--edgetpu-model", tpu)
    meta = repository.status(repo.path).versions[NAME][1]
    assert meta.files.edgetpu == f"{NAME}/1/model_edgetpu.tflite" and meta.files.cpu == f"{NAME}/1/model.tflite"
    repo.publish(tpu, "--labels", labels)  # Edge-TPU-only: inspected, not run (no TPU here)
    only = repository.status(repo.path).versions[NAME][2]
    assert only.files.cpu is None and only.files.edgetpu == f"{NAME}/2/model_edgetpu.tflite"
    capsys.readouterr()
    assert (
        edged("hosting", "publish", repo.path, models / "invalid_custom_op.tflite", "--name", NAME, "--keys", repo.keys)
        == 1
    )
    err = capsys.readouterr().err
    assert "fake-op-double" in err and "Traceback" not in err
