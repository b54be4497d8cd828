"""A reload while a hosted model version runs (a real nginx serving a repository built with `edged hosting`): the
bundled model's settings do not replace it, the device's hardware settings reload it, [hosting] settings apply to
the next check, and what names another repository or model is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hosting_support import CLASSIFIER, MODELS, NAME, Repo
from pipeline_support import BackgroundDaemon, RecordingPublisher
from reload_support import write_config
from support.nginx import Nginx

from edged.config import load_config

Q128 = MODELS / "shapes_classifier_q128.tflite"


def text(url: str, repo: Repo, state_dir: Path, model: Path = CLASSIFIER, extra_model: str = "",
         hosting: str = "interval_s = 600", name: str = NAME) -> str:  # fmt: skip
    return (
        f'device_id = "dev-r"\nstate_dir = "{state_dir}"\n'
        f'[model]\npath = "{model}"\nnum_threads = 1\n{extra_model}\n'
        '[camera]\ntype = "synthetic"\nwidth = 96\nheight = 96\nfps = 30\n'
        f'[hosting]\nurl = "{url}"\nname = "{name}"\ntrusted_root = "{repo.root_json}"\n'
        f"health_window_s = 1\nfree_space_margin_bytes = 0\n{hosting}\n"
    )


def events(publisher: RecordingPublisher, name: str) -> list[dict[str, Any]]:
    return [e for e in publisher.events if e["event"] == name]


def test_a_reload_keeps_a_hosted_version_and_applies_what_concerns_it(tmp_path: Path, repo: Repo, nginx: Nginx) -> None:
    repo.publish(CLASSIFIER, "--notes", "v1")
    state = tmp_path / "state"
    path = write_config(tmp_path / "edged.toml", text(nginx.url, repo, state))
    publisher = RecordingPublisher()
    with BackgroundDaemon(load_config(path), publisher) as running:
        daemon = running.daemon
        daemon.config_path = path
        assert daemon.dispatcher.call("check_update")["ok"]
        assert publisher.wait_for(lambda: bool(events(publisher, "update_committed")))
        hosted_sha = daemon.models.current.info.sha256  # type: ignore[union-attr]

        write_config(path, text(nginx.url, repo, state, model=Q128))  # only the bundled fallback changes
        reply = daemon.dispatcher.call("reload")
        assert reply["ok"], reply
        assert reply["result"]["replaced"] == [] and "hosted version 1 keeps running" in reply["result"]["note"]
        assert daemon.models.current.info.sha256 == hosted_sha  # type: ignore[union-attr]

        write_config(path, text(nginx.url, repo, state, model=Q128, extra_model="num_threads = 2"
                                ).replace("num_threads = 1\n", ""))  # fmt: skip
        reply = daemon.dispatcher.call("reload")
        assert reply["ok"] and reply["result"]["replaced"] == ["model"], reply
        count = len(publisher.results)
        assert publisher.wait_for(lambda: len(publisher.results) >= count + 10)

        write_config(path, text(nginx.url, repo, state, model=Q128, hosting="interval_s = 1200\nchannel = \"beta\"",
                                extra_model="num_threads = 2").replace("num_threads = 1\n", ""))  # fmt: skip
        reply = daemon.dispatcher.call("reload")
        assert reply["ok"] and reply["result"]["changed"] == ["hosting.channel", "hosting.interval_s"], reply
        assert daemon.updates is not None and daemon.updates.hosting.interval_s == 1200
        assert daemon.state()["hosting"]["channel"] == "beta"
        assert daemon.updates._client().device.channel == "beta"  # the next check asks for the new channel

        renamed = text(nginx.url, repo, state, name="another-model")
        write_config(path, renamed)
        reply = daemon.dispatcher.call("reload")
        line = renamed.splitlines().index('name = "another-model"') + 1
        assert not reply["ok"] and f"{path}:{line}: hosting.name: cannot change while edged runs" in reply["error"]
    changes = events(publisher, "model_changed")
    assert [c["reason"] for c in changes] == [
        "hosted version 1",
        "reload: model.num_threads changed (hosted version 1)",
    ]
    assert {r["model"]["sha256"] for r in publisher.results[-10:]} == {hosted_sha}  # the same file, reloaded
    assert {r["model"]["version"] for r in publisher.results[-10:]} == {"1"}
    results = publisher.results
    assert [r["seq"] for r in results] == list(range(len(results)))


@pytest.mark.parametrize("change", ["add", "remove"])
def test_adding_or_removing_hosting_needs_a_restart(tmp_path: Path, repo: Repo, nginx: Nginx, change: str) -> None:
    with_hosting = text(nginx.url, repo, tmp_path / "state")
    without = with_hosting.split("[hosting]")[0]
    path = write_config(tmp_path / "edged.toml", with_hosting if change == "remove" else without)
    publisher = RecordingPublisher()
    with BackgroundDaemon(load_config(path), publisher) as running:
        running.daemon.config_path = path
        assert publisher.wait_for(lambda: len(publisher.results) >= 3)
        write_config(path, without if change == "remove" else with_hosting)
        reply = running.daemon.dispatcher.call("reload")
    assert not reply["ok"] and "hosting: cannot change while edged runs (adding or removing [hosting]" in reply["error"]
