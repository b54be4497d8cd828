"""What a reload decides from the old and the new config alone (pure: no daemon)."""

from __future__ import annotations

from pathlib import Path

from edged.app.reload import ReloadPlan, plan_reload
from edged.config import parse_config

CLASSIFIER = Path(__file__).parent / "fixtures" / "models" / "shapes_classifier_quant.tflite"


def config(extra_model: str = "", camera: str = 'type = "synthetic"', top: str = "", tables: str = "") -> str:
    return f'{top}\n[model]\npath = "{CLASSIFIER}"\n{extra_model}\n[camera]\n{camera}\n{tables}'


def plan(old: str, new: str) -> ReloadPlan:
    return plan_reload(parse_config(old), parse_config(new))


def test_decode_settings_need_no_new_bundle_and_the_rest_does() -> None:
    live = plan(config(), config('threshold = 0.4\ntop_k = 1\ninclude_labels = ["a"]'))
    assert live.changed == ("model.top_k", "model.threshold", "model.include_labels")
    assert live.model_keys == [] and not live.camera and not live.publisher and not live.refused
    rebuilt = plan(config(), config('decoder = "classification"\nnormalization = "signed"\nthreshold = 0.4'))
    assert rebuilt.model_keys == ["model.decoder", "model.normalization"]


def test_camera_publisher_pipeline_hosting_and_logging() -> None:
    changed = plan(
        config(),
        config(
            camera='type = "synthetic"\nfps = 5.0\n[camera.reconnect]\nmax_s = 10.0',
            tables='[pipeline]\nmax_fps = 2.0\n[publisher]\ntype = "stdout"\nevents = true\n'
            '[logging]\nlevels = { "edged.publish" = "debug" }\n',
        ),
    )
    assert set(changed.changed) == {"camera.fps", "camera.reconnect.max_s", "pipeline.max_fps",
                                    "publisher.events", "logging.levels"}  # fmt: skip
    assert changed.camera and changed.publisher and not changed.refused
    other_kind = plan(config(), config(camera='type = "images"\npath = "/srv/inbox"'))
    assert other_kind.changed == ("camera",) and other_kind.camera  # another type: the whole table is new


def test_device_id_and_state_dir_are_refused_with_the_reason() -> None:
    refused = plan(config(top='device_id = "a"'), config(top='device_id = "b"\nstate_dir = "/srv/state"'))
    assert set(refused.refused) == {"device_id", "state_dir"}
    assert "MQTT topics" in refused.refused["device_id"] and "model versions" in refused.refused["state_dir"]


def test_nothing_changed() -> None:
    same = plan(config(), config())
    assert same.changed == () and not same.refused
