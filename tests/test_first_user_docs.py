"""Issue 8, item 15: every shell example in the README and docs/ is accounted for, and the ones that can run here
do, as written, against a real mosquitto and a running `edged run` (device `kitchen-cam`, as in the docs).

Only the broker's address changes (`-h broker.lan` → the test broker). A new example that fits none of the
categories below fails `test_every_shell_line_is_accounted_for` until someone says how it is checked.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO

import cv2
import numpy as np
import pytest
from pipeline_support import wait_until
from support.broker import Mosquitto, require_mosquitto

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL = {"sh", "bash", "shell", "console"}
DETECTOR = ROOT / "tests" / "fixtures" / "models" / "shapes_yolov8_int8.tflite"
PREFIX = "edged/kitchen-cam"


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int  # of the opening fence
    lang: str
    lines: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"

    def commands(self) -> list[str]:
        """The commands, one per entry: console `$ ` lines, or shell lines with `\\` continuations joined."""
        if self.lang == "console":
            return [line[2:] for line in self.lines if line.startswith("$ ")]
        joined: list[str] = []
        pending = ""
        for line in self.lines:
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                continue
            pending += line.strip() if pending else line
            if pending.endswith("\\"):
                pending = pending[:-1].rstrip() + " "
                continue
            joined.append(pending)
            pending = ""
        return joined


def shell_blocks() -> list[Block]:
    found = []
    for doc in DOCS:
        lines = doc.read_text().splitlines()
        number = 0
        while number < len(lines):
            fence = re.match(r"^(\s*)```(\w*)\s*$", lines[number])  # also fences indented in a list item
            if fence:
                indent = len(fence.group(1))
                end = next(i for i in range(number + 1, len(lines)) if lines[i].strip().startswith("```"))
                if fence.group(2) in SHELL:
                    body = tuple(line[indent:] for line in lines[number + 1 : end])
                    found.append(Block(doc, number + 1, fence.group(2), body))
                number = end
            number += 1
    return found


def readme_install_block() -> Block:
    text = (ROOT / "README.md").read_text()
    fence_line = text[: text.index("```sh\n", text.index("Install for real use"))].count("\n") + 1
    return next(b for b in shell_blocks() if b.doc.name == "README.md" and b.line == fence_line)


#: How each shell line is checked when it is not run by this file: (pattern, where or why).
ELSEWHERE: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^make (demo|test)\b"), "the test suite and the demo themselves"),
    (re.compile(r"^\.venv/bin/python tools/bench(_\w+)?\.py\b"), "benchmarks (make bench), figures in performance.md"),
    (re.compile(r"^git worktree add /tmp/baseline \w+ "), "the checkout a before/after benchmark compares against"),
    (re.compile(r"^(sudo systemctl |journalctl -u edged|sudo install -D -m 644 systemd/edged\.service )"),
     "changes the host's systemd: tests/test_systemd_unit.py checks the unit itself"),
    (re.compile(r"^sudo install -m 600 /dev/null /etc/edged/"), "a root-only secret: see test_first_user_secrets"),
    (re.compile(r"^edged model inspect \S+\.tflite$"), "run below (in the folder that holds the model)"),
    (re.compile(r"^\s*edged hosting (init|publish|rollout|withdraw|refresh|rotate-key|verify|status) "),
     "test_hosting_repository.py, _client.py and _rotation.py run them on real repositories and hosts"),
    (re.compile(r"^(aws s3|gcloud storage) "), "uploads to the user's own cloud bucket (needs their account)"),
    (re.compile(r"^(for \w+ in .*; do|done)$"), "the shell loop around the hosting commands of a migration"),
    (re.compile(r"^(sudo )?(/opt/edged/bin/)?edged service install "), "tests/test_service_install.py (staging root)"),
    (re.compile(r"^(sudo )?(/opt/edged/bin/)?edged check-config "), "tests/test_check_config.py"),
    (re.compile(r"^(sudo )?(/opt/edged/bin/)?edged doctor\b"), "tests/test_doctor.py"),
    (re.compile(r"^sudoedit /etc/edged/config\.toml"), "the user edits the config (the install test does it its way)"),
    (re.compile(r"^curl -s\S* (-\S+ \S+ )*(-X POST .*)?localhost:8080/"),
     "the status page's API (docs/http.md): tests/test_http_server.py requests every endpoint"),
]  # fmt: skip
#: Whole documents whose shell lines need hardware this machine does not have.
ELSEWHERE_DOCS = {"raspberry-pi.md": "a Raspberry Pi's own setup: its packages, camera, Coral and udev"}


def how_checked(block: Block, command: str) -> str | None:
    if block == readme_install_block():
        return "tests/test_first_user_install.py runs the README's install lines"
    if re.match(r"^mosquitto_(sub|pub) ", command):
        return "run below against a real broker and edged"
    if block.doc.name in ELSEWHERE_DOCS:
        return ELSEWHERE_DOCS[block.doc.name]
    return next((why for pattern, why in ELSEWHERE if pattern.match(command)), None)


def test_every_shell_line_is_accounted_for() -> None:
    unaccounted = [f"{b.where}: {c}" for b in shell_blocks() for c in b.commands() if how_checked(b, c) is None]
    assert unaccounted == [], "shell examples nobody checks (add them to a category in this file)"


def test_the_snapshot_example_writes_the_jpeg_and_nothing_after_it() -> None:
    lines = [c for b in shell_blocks() for c in b.commands() if c.startswith("mosquitto_sub") and "snapshot.jpg" in c]
    assert lines and all(" -N " in line for line in lines), lines


# ---- running the MQTT examples --------------------------------------------------------------------------------


def mqtt_blocks() -> list[Block]:
    return [b for b in shell_blocks() if any(c.startswith("mosquitto_") for c in b.commands())]


@pytest.fixture(scope="module")
def device(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """A broker that logs subscriptions (so a backgrounded subscriber can be waited for) and edged on it."""
    require_mosquitto()
    if shutil.which("jq") is None:
        message = "jq is not installed (the docs pipe results into it): apt-get install jq"
        if os.environ.get("EDGED_REQUIRE_BROKER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    folder = tmp_path_factory.mktemp("docs-device")
    broker = Mosquitto(folder / "broker", log_subscriptions=True).start()
    config = folder / "edged.toml"
    config.write_text(
        f'device_id = "kitchen-cam"\n[model]\npath = "{DETECTOR}"\nnum_threads = 1\n'
        '[camera]\ntype = "synthetic"\nwidth = 320\nheight = 240\nfps = 10\n'
        f'[publisher]\ntype = "mqtt"\nhost = "{broker.host}"\nport = {broker.port}\n'
        "snapshot_interval_s = 5\nsnapshot_min_interval_s = 0\n"
    )
    edged = subprocess.Popen(
        [sys.executable, "-m", "edged", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL, stderr=(folder / "edged.log").open("w"),
    )  # fmt: skip
    try:
        yield broker
    finally:
        edged.terminate()
        edged.wait(60)
        broker.stop()


def topic_matches(pattern: str, topic: str) -> bool:
    want, have = pattern.split("/"), topic.split("/")
    for index, level in enumerate(want):
        if level == "#":
            return True
        if index >= len(have) or level not in ("+", have[index]):
            return False
    return len(want) == len(have)


class Running:
    """One example line run by bash in its own process group, its standard output in a file."""

    def __init__(self, line: str, cwd: Path, index: int) -> None:
        self.line = line
        self.out = cwd / f"example-{index}.out"
        self._file: IO[bytes] = self.out.open("wb")
        self.process = subprocess.Popen(["bash", "-c", line], cwd=cwd, stdout=self._file, stderr=subprocess.PIPE,
                                        start_new_session=True)  # fmt: skip

    def lines(self) -> list[str]:
        """The complete lines printed so far (a line still being written is left for later)."""
        text = self.out.read_bytes().decode(errors="replace")
        return text.splitlines()[: text.count("\n")]

    def finish(self, timeout_s: float = 30.0) -> int:
        code = self.process.wait(timeout_s)
        self._file.close()
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(30)
        self._file.close()


def option(words: list[str], flag: str) -> list[str]:
    return [words[i + 1] for i, word in enumerate(words) if word == flag]


def subscribed(broker: Mosquitto, since: int, filters: list[str]) -> bool:
    """The broker logged these subscriptions after `since` (its log's length when the subscriber started)."""
    return all(f in broker.log_text()[since:] for f in filters)


def printed(running: Running) -> bool:
    return bool(running.lines())


def replied(running: Running, wanted: list[str]) -> bool:
    return all(any(row.startswith(w) for row in running.lines()) for w in wanted)


def check_subscriber_output(line: str, output: list[str]) -> None:
    words = shlex.split(line.split("|", 1)[0], comments=True)
    if "|" in line:  # | jq -c '{seq, objects: [...]}'
        for row in output:
            assert set(json.loads(row)) == {"seq", "objects"}, row
        return
    if "-v" in words:
        for row in output:
            topic = row.split(" ", 1)[0]
            assert any(topic_matches(p, topic) for p in option(words, "-t")), (line, row)
            assert not any(topic_matches(p, topic) for p in option(words, "-T")), (line, row)


def run_block(block: Block, broker: Mosquitto, cwd: Path) -> None:
    background: list[Running] = []
    published: list[str] = []
    for index, command in enumerate(block.commands()):
        assert "-h broker.lan" in command, f"{block.where}: examples talk to broker.lan: {command}"
        line = command.replace("-h broker.lan", f"-h {broker.host} -p {broker.port}")
        words = shlex.split(line.split("|", 1)[0], comments=True)
        if line.rstrip().endswith("&"):  # a subscriber left running for the lines that follow
            since = len(broker.log_text())
            running = Running(line.rstrip().removesuffix("&"), cwd, index)
            background.append(running)
            assert wait_until(partial(subscribed, broker, since, option(words, "-t"))), line
        elif words[0] == "mosquitto_sub" and "-C" not in words:  # runs until stopped: read a few messages
            running = Running(line, cwd, index)
            got = wait_until(partial(printed, running))
            running.kill()
            assert got, f"{block.where}: {command} printed nothing"
            check_subscriber_output(line, running.lines())
        else:
            running = Running(line, cwd, index)
            assert running.finish() == 0, f"{block.where}: {command} failed"
            if words[0] == "mosquitto_pub":
                published += [t for t in option(words, "-t") if "/cmd/" in t and "-n" not in words]
            if "snapshot.jpg" in line:
                jpeg = (cwd / "snapshot.jpg").read_bytes()
                assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9", "snapshot.jpg is not exactly a JPEG"
                assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR) is not None
    for running in background:  # the replies to the commands the block published
        assert wait_until(partial(replied, running, [f"{topic}/reply " for topic in published])), running.lines()
        for reply in running.lines():
            assert json.loads(reply.split(" ", 1)[1])["ok"] is True, reply
        running.kill()


@pytest.mark.parametrize("block", mqtt_blocks(), ids=lambda b: b.where)
def test_mqtt_examples_run_as_written(block: Block, device: Mosquitto, tmp_path: Path) -> None:
    try:
        run_block(block, device, tmp_path)
    finally:  # an example may have paused edged: the next one starts from a running device
        subprocess.run(["mosquitto_pub", "-h", device.host, "-p", str(device.port), "-q", "1",
                        "-t", f"{PREFIX}/cmd/resume", "-m", "{}"], check=True, timeout=30)  # fmt: skip


# ---- console examples (docs/models.md): the project's own fixture models, or the conformance tier's ------------


def console_examples() -> list[tuple[Block, str, list[str]]]:
    found = []
    for block in (b for b in shell_blocks() if b.lang == "console"):
        lines = list(block.lines)
        for index, line in enumerate(lines):
            if line.startswith("$ "):
                rest = lines[index + 1 :]
                end = next((i for i, text in enumerate(rest) if text.startswith("$ ")), len(rest))
                found.append((block, line[2:], rest[:end]))
    return found


@pytest.mark.parametrize(("block", "command", "expected"), console_examples(), ids=lambda v: getattr(v, "where", ""))
def test_console_examples_print_what_the_docs_show(
    block: Block, command: str, expected: list[str], request: pytest.FixtureRequest
) -> None:
    words = shlex.split(command)
    assert words[0] == "edged"
    model = next(word for word in words if word.endswith(".tflite"))
    folder = ROOT / "tests" / "fixtures" / "models"
    if not (folder / model).is_file():  # a third-party model: the conformance tier has it
        folder = request.getfixturevalue("shared_data") / "models"
    done = subprocess.run([sys.executable, "-m", "edged", "-q", *words[1:]], cwd=folder,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    printed = done.stdout.splitlines()
    assert len(printed) == len(expected), (block.where, printed)
    for shown, got in zip(expected, printed, strict=True):
        pattern = ".*".join(re.escape(part) for part in shown.split("…"))  # "…" in the docs elides a detail
        assert re.fullmatch(pattern, got), f"{block.where}: the docs show\n  {shown}\nedged prints\n  {got}"
