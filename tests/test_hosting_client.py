"""A device against a real static host (Debian's nginx on loopback) serving a repository built by the `edged
hosting` commands: selection, download, install, conditional requests, pins, withdrawals, staged rollouts."""

from __future__ import annotations

from pathlib import Path

import pytest
from hosting_support import (
    CLASSIFIER,
    NAME,
    TEACHABLE,
    TEACHABLE_LABELS,
    YOLOV8,
    YOLOV8_LABELS,
    Repo,
    client_for,
    edged,
)
from support.nginx import Nginx

from edged.hosting.rollout import takes_part
from edged.hosting.selection import DeviceFacts, LocalFacts, select
from edged.hosting.store import Store, sha256_of


def _install(client_store: tuple[object, Store], offer: object) -> int:
    client, store = client_store
    staged = client.download(offer)  # type: ignore[attr-defined]
    installed = store.install(staged)
    store.begin_probation(installed)
    store.commit(installed)
    return installed.version


def test_a_device_installs_each_new_version_from_nginx(tmp_path: Path, repo: Repo, nginx: Nginx) -> None:
    state = tmp_path / "state"
    client, store = client_for(nginx.url, repo, state), Store(state)
    store.startup()
    assert client.check(store.local_facts()) is None  # nothing published yet
    repo.publish(CLASSIFIER, "--notes", "first")
    offer = client.check(store.local_facts())
    assert offer is not None and (offer.version, offer.variant, offer.meta.notes) == (1, "cpu", "first")
    seen: list[tuple[int, int]] = []
    staged = client.download(offer, lambda done, total: seen.append((done, total)))
    assert seen and seen[-1] == (offer.total_length, offer.total_length)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    installed = store.install(staged)
    assert installed.model.read_bytes() == CLASSIFIER.read_bytes() and installed.sha256 == sha256_of(CLASSIFIER)
    store.begin_probation(installed)
    store.commit(installed)
    assert client.check(store.local_facts()) is None and client.last_selection.note == "up to date"  # type: ignore[union-attr]
    repo.publish(TEACHABLE, "--labels", TEACHABLE_LABELS, "--set", "top_k=1")
    offer = client.check(store.local_facts())
    assert offer is not None and offer.version == 2 and offer.reason == "newer than version 1"
    assert _install((client, store), offer) == 2
    current = store.current()
    assert (
        current is not None
        and current.labels is not None
        and current.labels.read_text() == TEACHABLE_LABELS.read_text()
    )
    assert current.model_settings()["top_k"] == 1 and current.model_settings()["path"] == current.model
    assert (state / "current").resolve() == current.directory.resolve()
    assert {p.name for p in (state / "versions").iterdir()} == {"1", "2"}
    statuses = [status for status, _, uri in nginx.requests() if uri.endswith(".model.tflite")]
    assert statuses == [200, 200]  # each model downloaded once, through consistent-snapshot names


def test_the_timestamp_poll_is_a_conditional_request(tmp_path: Path, repo: Repo, nginx: Nginx) -> None:
    repo.publish()
    client = client_for(nginx.url, repo, tmp_path / "state")
    client.catalog()
    client.catalog()
    polls = [status for status, _, uri in nginx.requests() if uri == "/metadata/timestamp.json"]
    assert polls == [200, 304]
    assert client.stats.not_modified == 1
    repo.publish(YOLOV8, "--labels", YOLOV8_LABELS)
    assert 2 in client.catalog().versions(NAME)  # a changed timestamp is fetched again (new ETag)
    polls = [status for status, _, uri in nginx.requests() if uri == "/metadata/timestamp.json"]
    assert polls == [200, 304, 200]


def test_pin_and_withdraw(tmp_path: Path, repo: Repo, nginx: Nginx) -> None:
    repo.publish()
    repo.publish(YOLOV8, "--labels", YOLOV8_LABELS)
    pinned = client_for(nginx.url, repo, tmp_path / "pinned", pin_version=1)
    assert pinned.check(LocalFacts(current_version=2, current_sha256=sha256_of(YOLOV8))).version == 1  # type: ignore[union-attr]
    assert pinned.last_selection.skipped == {2: "pinned to version 1"}  # type: ignore[union-attr]
    follower = client_for(nginx.url, repo, tmp_path / "follower")
    on_two = LocalFacts(current_version=2, current_sha256=sha256_of(YOLOV8))
    assert follower.check(on_two) is None
    assert edged("hosting", "withdraw", repo.path, "--name", NAME, "--version", "2", "--keys", repo.keys) == 0
    offer = follower.check(on_two)
    assert offer is not None and offer.version == 1 and "going back" in offer.reason
    assert follower.last_selection.skipped == {2: "withdrawn"}  # type: ignore[union-attr]


def test_blocked_hash_rollback_pin_and_min_edged_version(tmp_path: Path, repo: Repo, nginx: Nginx) -> None:
    repo.publish()
    repo.publish(YOLOV8, "--labels", YOLOV8_LABELS, "--min-edged-version", "99.0")
    client = client_for(nginx.url, repo, tmp_path / "state")
    offer = client.check(LocalFacts())
    assert offer is not None and offer.version == 1
    assert "needs edged 99.0 or newer" in client.last_selection.skipped[2]  # type: ignore[union-attr]
    assert client.check(LocalFacts(blocked=frozenset({sha256_of(CLASSIFIER)}))) is None
    assert client.check(LocalFacts(current_version=1, current_sha256=sha256_of(CLASSIFIER), rollback_above=1)) is None


def test_staged_rollout_over_a_thousand_devices(tmp_path: Path, repo: Repo, nginx: Nginx) -> None:
    repo.publish()
    repo.publish(YOLOV8, "--labels", YOLOV8_LABELS, "--rollout", "30")
    client = client_for(nginx.url, repo, tmp_path / "state")
    devices = [f"device-{n:04d}" for n in range(1000)]

    def taking_v2() -> set[str]:
        published = client.catalog().versions(NAME)
        picked = set()
        for device_id in devices:
            selection = select(published, DeviceFacts(device_id, "stable", False, "0.1.0"), LocalFacts())
            assert selection.offer is not None
            if selection.offer.version == 2:
                picked.add(device_id)
        return picked

    at_30 = taking_v2()
    assert 240 <= len(at_30) <= 360  # binomial(1000, 0.3): sd 14.5, so this is ±8 sd
    assert (
        edged("hosting", "rollout", repo.path, "--name", NAME, "--version", "2", "--percent", "60", "--keys", repo.keys)
        == 0
    )
    at_60 = taking_v2()
    assert at_30 <= at_60 and 540 <= len(at_60) <= 660
    assert (
        edged(
            "hosting", "rollout", repo.path, "--name", NAME, "--version", "2", "--percent", "100", "--keys", repo.keys
        )
        == 0
    )
    assert len(taking_v2()) == 1000


def test_rollout_buckets_are_salted_per_model_and_version() -> None:
    devices = [f"d{n}" for n in range(1000)]
    first = {d for d in devices if takes_part(d, NAME, 2, 30)}
    other_version = {d for d in devices if takes_part(d, NAME, 3, 30)}
    other_model = {d for d in devices if takes_part(d, "other", 2, 30)}
    assert first != other_version and first != other_model
    assert all(takes_part(d, NAME, 2, 31) for d in first)
    assert not any(takes_part(d, NAME, 2, 0) for d in devices) and all(takes_part(d, NAME, 2, 100) for d in devices)


def test_verify_checks_a_served_repository_as_a_device_would(
    tmp_path: Path, repo: Repo, nginx: Nginx, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.publish(CLASSIFIER, "--notes", "first")
    assert edged("hosting", "verify", nginx.url, "--root", repo.root_json, "--name", NAME) == 0
    out = capsys.readouterr().out
    assert "would install version 1" in out and "its files verified" in out
    assert edged("hosting", "status", nginx.url, "--root", repo.root_json) == 0
    assert "v1" in capsys.readouterr().out
    other = tmp_path / "other"
    assert edged("hosting", "init", other / "repo", "--keys", other / "keys") == 0
    capsys.readouterr()
    assert edged("hosting", "verify", nginx.url, "--root", other / "repo" / "metadata" / "root.json") == 1
    err = capsys.readouterr().err
    assert "signature check failed" in err and "Traceback" not in err
