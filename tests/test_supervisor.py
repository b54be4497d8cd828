"""The supervisor tells systemd the truth: exit statuses, worker crashes, forced exits, stuck threads, and a start
that fails half-way releasing what it started."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest
from pipeline_support import BackgroundDaemon, RecordingPublisher
from support.broker import free_port
from support.plugins import scripted

from edged.app.daemon import Daemon
from edged.config import parse_config
from edged.errors import SourceError
from edged.inference.loader import load_bundle
from edged.sources.registry import SOURCES

ROOT = Path(__file__).resolve().parents[1]
CLASSIFIER = ROOT / "tests" / "fixtures" / "models" / "shapes_classifier_quant.tflite"


@pytest.fixture(autouse=True)
def scripted_kind() -> Iterator[None]:
    SOURCES.register("support.plugins.scripted")
    scripted.RELEASE.clear()
    yield
    scripted.RELEASE.set()  # a source hung on purpose may go now
    SOURCES.unregister("support.plugins.scripted")


def config_text(camera: str, extra: str = "") -> str:
    return (
        f'device_id = "sup"\n[model]\npath = "{CLASSIFIER}"\nnum_threads = 1\n'
        f'[camera]\ntype = "scripted"\n{camera}\n{extra}'
    )


def test_a_worker_that_dies_of_a_bug_stops_edged_with_exit_1(caplog: pytest.LogCaptureFixture) -> None:
    publisher = RecordingPublisher()
    daemon = Daemon(parse_config(config_text("frames = 0\ncrash_at = 7")), publisher=publisher)
    with caplog.at_level(logging.INFO):
        assert daemon.run(handle_signals=False) == 1
    indexes = [r["source"]["frame_index"] for r in publisher.results]
    assert indexes == list(range(len(indexes))) and len(indexes) >= 6  # the frames before the bug (one may wait)
    crashes = [r for r in caplog.records if "died of an unexpected error" in r.getMessage()]
    assert len(crashes) == 1 and crashes[0].exc_info is not None  # once, with its traceback
    assert "scripted crash at frame 7" in caplog.text and "please report it" in caplog.text
    assert publisher.events[-1] == {**publisher.events[-1], "event": "stopped", "reason": "crashed"}
    assert publisher.flushed and publisher.stopped  # a crash still stops cleanly


def run_edged(tmp_path: Path, text: str) -> subprocess.Popen[str]:
    """`edged run` in its own process, with the test-only source kind registered (the one registry line)."""
    config = tmp_path / "edged.toml"
    config.write_text(text)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from edged.sources.registry import SOURCES; SOURCES.register('support.plugins.scripted');"
        "from edged.cli import main; sys.exit(main(['run', '--config', sys.argv[2]]))"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, str(ROOT / "tests"), str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_a_crash_gives_a_non_zero_exit_so_systemd_restarts_edged(tmp_path: Path) -> None:
    process = run_edged(tmp_path, config_text("frames = 0\ncrash_at = 3"))
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1, err
    assert err.count("Traceback") == 1 and "RuntimeError: scripted crash at frame 3" in err


class StderrWatcher:
    """Reads a process's stderr as it comes, so a test can wait for a line."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        assert process.stderr is not None
        self._thread = threading.Thread(target=self._read, args=(process.stderr,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()

    def wait_for(self, text: str, timeout: float = 60) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: any(text in line for line in self.lines), timeout)

    def wait_until(self, predicate: Callable[[str], bool], timeout: float = 60) -> bool:
        """Until `predicate` holds for everything read so far."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate("".join(self.lines)), timeout)

    def text(self) -> str:
        self._thread.join(10)
        return "".join(self.lines)


@pytest.mark.parametrize(("first", "second"), [(signal.SIGTERM, signal.SIGTERM), (signal.SIGINT, signal.SIGTERM),
                                               (signal.SIGTERM, signal.SIGINT)])  # fmt: skip
def test_a_second_signal_forces_exit_130_whichever_it_is(tmp_path: Path, first: int, second: int) -> None:
    # Results wait for a broker that never answers, so the clean stop would take the whole shutdown_timeout_s.
    publisher = f'[publisher]\ntype = "mqtt"\nport = {free_port()}\nhost = "127.0.0.1"\n'
    text = config_text("frames = 0\nlive = true", "[pipeline]\nshutdown_timeout_s = 120\n" + publisher)
    process = run_edged(tmp_path, text)
    watcher = StderrWatcher(process)
    assert watcher.wait_for("MQTT: connecting to"), watcher.lines
    process.send_signal(first)
    assert watcher.wait_for(f"{signal.Signals(first).name} received: stopping"), watcher.lines
    process.send_signal(second)
    try:
        code = process.wait(30)
    except subprocess.TimeoutExpired:  # say where it hangs: edged dumps its threads' stacks on SIGUSR1
        process.send_signal(signal.SIGUSR1)
        watcher.wait_for("edged: end of thread stacks", 10)
        process.kill()
        pytest.fail("no exit 30 s after the second signal; its stderr and threads:\n" + "".join(watcher.lines))
    assert code == 130
    assert "forced exit" in watcher.text()


def test_sigusr1_dumps_every_threads_stack_and_edged_carries_on(tmp_path: Path) -> None:
    """What a hung daemon is doing, from `kill -USR1`, without stopping it (docs/operations.md)."""
    text = config_text("frames = 0\nlive = true", '[publisher]\ntype = "null"\n')
    process = run_edged(tmp_path, text)
    watcher = StderrWatcher(process)
    assert watcher.wait_for("model shapes_classifier_quant"), watcher.lines
    for _ in range(20):  # the pipeline's threads start just after the model line: dump until they are in it
        dumps = "".join(watcher.lines).count("edged: end of thread stacks")
        process.send_signal(signal.SIGUSR1)
        assert watcher.wait_until(lambda out, n=dumps: out.count("edged: end of thread stacks") > n, 20), (
            process.poll(),
            watcher.lines,
        )
        if watcher.wait_until(lambda out: 'Thread "edged-inference"' in out and 'Thread "edged-capture-' in out, 2):
            break
    else:
        pytest.fail("no dump showed the capture and inference threads:\n" + "".join(watcher.lines))
    assert process.poll() is None  # still running
    out = "".join(watcher.lines)
    assert 'Thread "MainThread"' in out and "app/inference.py" in out and "app/capture.py" in out
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0


def test_a_capture_thread_stuck_at_the_stop_deadline_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    text = config_text("frames = 0\nhang_at = 5", "[pipeline]\nshutdown_timeout_s = 1\n")
    publisher = RecordingPublisher()
    with caplog.at_level(logging.ERROR):
        running = BackgroundDaemon(parse_config(text), publisher)
        with running:
            assert publisher.wait_for(lambda: len(publisher.results) == 5)
            code = running.stop()
    assert code == 1
    assert "the capture thread is still inside scripted source" in caplog.text
    assert publisher.flushed  # the results it had were still delivered


def test_a_start_that_fails_half_way_releases_what_it_started(tmp_path: Path) -> None:
    bundle = load_bundle(parse_config(config_text("")).model)
    text = config_text("").replace('type = "scripted"\n', f'type = "opencv"\nsource = "{tmp_path}/none.mp4"\n')
    publisher = RecordingPublisher()
    daemon = Daemon(parse_config(text), publisher=publisher, bundle=bundle)
    with pytest.raises(SourceError, match="does not exist"):
        daemon.run(handle_signals=False)
    assert publisher.stopped, "the publisher (the broker connection) is released"
    assert bundle.closed, "the model (and any Edge TPU delegate) is released"
    assert daemon.threads.alive() == [], "no thread is left running"
