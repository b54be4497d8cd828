"""Installed versions on the device: install, probation, commit, rollback, pruning, the crash marker, recovery
after kill -9 at every step, and a disk that fills up during a download."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hosting_support import CLASSIFIER, NAME, TEACHABLE, TEACHABLE_LABELS, YOLOV8, YOLOV8_LABELS, Repo, client_for
from support.nginx import Nginx

from edged.errors import HostingError
from edged.hosting.faults import ENV
from edged.hosting.store import Store, sha256_of

WORKER = Path(__file__).parent / "support" / "hosting_worker.py"


def _update(nginx: Nginx, repo: Repo, state: Path) -> int:
    """One full update in-process: check, download, install, probation, commit; the installed version."""
    store = Store(state)
    store.startup()
    client = client_for(nginx.url, repo, state)
    offer = client.check(store.local_facts())
    assert offer is not None
    installed = store.install(client.download(offer))
    store.begin_probation(installed)
    store.commit(installed)
    return installed.version


def _worker(nginx: Nginx, repo: Repo, state: Path, crash_at: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if crash_at:
        env[ENV] = crash_at
    return subprocess.run(
        [sys.executable, str(WORKER), nginx.url, str(repo.root_json), str(state), NAME],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _assert_consistent(state: Path, current: int | None, versions: set[int]) -> None:
    """No leftovers, every versions/N complete, current (and the symlink) a complete, hash-checked version."""
    store = Store(state)
    store.recover()
    assert list((state / "hosting" / "staging").glob("*")) == []
    assert list((state / "hosting" / "downloads").glob("*")) == []
    assert [p.name for p in (state / "versions").iterdir() if p.name.startswith(".")] == []
    assert set(store.installed_versions()) == versions
    for number in versions:
        store.load_installed(number)  # complete and hash-checked, or HostingError
    ref = store.state.current
    assert (ref.version if ref else None) == current
    if current is not None:
        assert os.readlink(state / "current") == f"versions/{current}"
    json.loads((state / "state.json").read_text())


@pytest.mark.parametrize(
    ("point", "versions_after"),
    [("download", {1}), ("install", {1}), ("before-switch", {1, 2})],
)
def test_kill_9_at_each_step_leaves_a_consistent_state(
    tmp_path: Path, repo: Repo, nginx: Nginx, point: str, versions_after: set[int]
) -> None:
    state = tmp_path / "state"
    repo.publish(CLASSIFIER)
    assert _update(nginx, repo, state) == 1
    repo.publish(TEACHABLE, "--labels", TEACHABLE_LABELS)
    killed = _worker(nginx, repo, state, point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    _assert_consistent(state, current=1, versions=versions_after)
    done = _worker(nginx, repo, state, None)  # the next start finishes the update
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"installed": 2}
    _assert_consistent(state, current=2, versions={1, 2})


def test_a_version_that_kills_the_process_twice_during_probation_is_rolled_back_and_blocked(
    tmp_path: Path, repo: Repo, nginx: Nginx
) -> None:
    state = tmp_path / "state"
    repo.publish(CLASSIFIER)
    assert _update(nginx, repo, state) == 1
    repo.publish(TEACHABLE, "--labels", TEACHABLE_LABELS)
    assert _worker(nginx, repo, state, "probation").returncode == -signal.SIGKILL  # the new model "crashes"
    first = Store(state).startup()
    assert first.load is not None and first.load.version == 2 and first.in_probation and first.rolled_back is None
    # ... and this start dies with it too: no commit. The next start gives up on version 2.
    second_store = Store(state)
    second = second_store.startup()
    assert second.load is not None and second.load.version == 1 and not second.in_probation
    assert second.rolled_back is not None and "did not finish its probation in 2 starts" in second.rolled_back
    assert sha256_of(TEACHABLE) in second_store.state.blocked
    client = client_for(nginx.url, repo, state)
    assert client.check(second_store.local_facts()) is None
    assert "blocked on this device" in client.last_selection.skipped[2]  # type: ignore[union-attr]
    repo.publish(YOLOV8, "--labels", YOLOV8_LABELS)  # a newer version lifts the rollback pin
    assert _update(nginx, repo, state) == 3
    assert Store(state).startup().load.version == 3  # type: ignore[union-attr]


def test_rollback_commit_prune_and_reinstall(tmp_path: Path, repo: Repo, nginx: Nginx) -> None:
    state = tmp_path / "state"
    for number, (model, extra) in enumerate(
        [
            (CLASSIFIER, ()),
            (TEACHABLE, ("--labels", TEACHABLE_LABELS)),
            (YOLOV8, ("--labels", YOLOV8_LABELS)),
            (CLASSIFIER, ("--set", "top_k=1")),
        ],
        start=1,
    ):
        repo.publish(model, *extra)
        assert _update(nginx, repo, state) == number
    store = Store(state, keep_versions=2)
    store.startup()
    assert store.installed_versions() == [2, 3, 4]  # installing 4 pruned 1 (keep_versions = 3 by default)
    assert store.prune() == [2]
    store.keep_versions = 1
    assert store.prune() == []  # never current (4) or previous (3)
    assert store.installed_versions() == [3, 4]
    back = store.rollback("operator asked", block=False)
    assert back is not None and back.version == 3
    assert store.state.rollback_pin is not None and store.state.rollback_pin.above == 4
    assert Store(state).startup().load.version == 3  # type: ignore[union-attr]
    assert client_for(nginx.url, repo, state).check(store.local_facts()) is None  # pinned until a newer version
    store.rollback("again", block=False)
    assert store.current() is None and not (state / "current").exists()  # the bundled model
    with pytest.raises(HostingError, match="bundled model is running"):
        store.rollback("nothing left")


def test_recover_falls_back_when_the_current_files_changed_on_disk(tmp_path: Path, repo: Repo, nginx: Nginx) -> None:
    state = tmp_path / "state"
    repo.publish(CLASSIFIER)
    _update(nginx, repo, state)
    repo.publish(TEACHABLE, "--labels", TEACHABLE_LABELS)
    _update(nginx, repo, state)
    model = state / "versions" / "2" / "model.tflite"
    data = bytearray(model.read_bytes())
    data[50] ^= 1
    model.write_bytes(bytes(data))
    store = Store(state)
    report = store.recover()
    assert store.state.current is not None and store.state.current.version == 1
    assert any("does not match its sha256" in note for note in report.notes)
    (state / "versions" / "1" / "version.json").unlink()
    store = Store(state)
    store.recover()
    assert store.state.current is None  # neither is usable: the bundled model
    (state / "state.json").write_text("{not json")
    report = Store(state).recover()
    assert any("set aside" in note for note in report.notes)


@contextlib.contextmanager
def _small_filesystem(path: Path, size: str) -> Iterator[None]:
    """A size-capped tmpfs (root only); skip, saying why, where mounting is not allowed."""
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.strip()}); the disk-full test needs root")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(path: Path, leave: int) -> None:
    """Fill the filesystem at `path` until only about `leave` bytes are free."""
    stats = os.statvfs(path)
    free = stats.f_bavail * stats.f_frsize
    with (path / "filler").open("ab") as handle:
        handle.write(b"\0" * max(0, free - leave))


def test_disk_full_during_download_fails_cleanly(tmp_path: Path, repo: Repo, nginx: Nginx) -> None:
    state = tmp_path / "small"
    with _small_filesystem(state, "4m"):
        repo.publish(CLASSIFIER)
        assert _update(nginx, repo, state) == 1
        repo.publish(YOLOV8, "--labels", YOLOV8_LABELS)
        store = Store(state)
        store.startup()
        client = client_for(nginx.url, repo, state)
        offer = client.check(store.local_facts())
        assert offer is not None
        _fill(state, leave=offer.total_length)  # less than twice the download: refused before downloading
        with pytest.raises(HostingError, match="not enough free space"):
            client.download(offer)
        (state / "filler").unlink()

        def fill_the_disk(done: int, total: int) -> None:  # another writer takes the space mid-download
            _fill(state, leave=0)

        with pytest.raises(HostingError, match="the disk is full"):
            client.download(offer, fill_the_disk)
        (state / "filler").unlink()
        _assert_consistent(state, current=1, versions={1})
        assert _update(nginx, repo, state) == 2  # with space again, the same update goes through
