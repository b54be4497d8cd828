"""The status page's parts on their own: the health rule driven by its own clock, the shared JPEG cache, the caps
on long responses, the page URL Home Assistant links to."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from edged.app.web.health import HealthCheck, Sample
from edged.app.web.streams import JpegCache, Released, Slots
from edged.config.http import HttpConfig

FLOWING = Sample(now=0.0, captured=0, inferred=0, source_state="streaming", paused=False, live=True, stuck_s=0.0,
                 stall_limit_s=60.0)  # fmt: skip


def judge_after(check: HealthCheck, *samples: Sample) -> str:
    verdict = None
    for sample in samples:
        verdict = check.judge(sample)
    assert verdict is not None
    return ("ok: " if verdict.ok else "503: ") + verdict.reason


def test_health_follows_frames_and_results() -> None:
    check = HealthCheck(max_age_s=30.0, started=0.0)
    assert judge_after(check, replace(FLOWING, now=1.0, captured=10, inferred=10)) == "ok: frames flow"
    # frames stop coming from a live source
    assert judge_after(check, replace(FLOWING, now=40.0, captured=10, inferred=10)).startswith(
        "503: no frame from the source for 39 s"
    )
    # frames come, results do not (a model failing on every frame)
    check = HealthCheck(max_age_s=30.0, started=0.0)
    samples = [replace(FLOWING, now=float(t), captured=t, inferred=5) for t in range(0, 45, 5)]
    assert judge_after(check, *samples) == "503: frames arrive but no result for 40 s"
    # ... unless results are only expected once a minute (interval_s = 60)
    check = HealthCheck(max_age_s=30.0, started=0.0)
    slow = [replace(sample, min_period_s=60.0) for sample in samples]
    assert judge_after(check, *slow) == "ok: frames flow"


def test_health_reasons_for_the_source_a_stuck_model_and_pause() -> None:
    check = HealthCheck(max_age_s=30.0, started=0.0)
    assert judge_after(check, replace(FLOWING, source_state="reconnecting")) == "503: the source is reconnecting"
    assert judge_after(check, replace(FLOWING, stuck_s=61.0)) == "503: inference has been stuck on one frame for 61 s"
    assert judge_after(check, replace(FLOWING, now=1.0, captured=3, paused=True)) == "ok: paused"
    idle_folder = replace(FLOWING, now=500.0, live=False, source_state="streaming", paused=True)
    assert judge_after(check, idle_folder) == "ok: paused"  # a watched folder waits for files at its own pace


class Pictures:
    def __init__(self) -> None:
        self.last_frame: object | None = None
        self.encodes = 0

    def snapshot_jpeg(self, annotated: bool) -> bytes | None:
        self.encodes += 1
        return b"jpeg-%d-%d" % (id(self.last_frame), annotated)


def test_each_frame_is_encoded_once_for_every_viewer() -> None:
    pictures = Pictures()
    cache = JpegCache(pictures)
    assert cache.latest(True) is None and pictures.encodes == 0
    pictures.last_frame = object()
    first = [cache.latest(True) for _ in range(3)]
    assert pictures.encodes == 1 and len(set(first)) == 1
    cache.latest(False)
    assert pictures.encodes == 2  # the plain picture is another encoding
    pictures.last_frame = object()
    assert cache.latest(True) != first[0] and pictures.encodes == 3


def test_slots_cap_long_responses_and_come_back_when_closed_even_unread() -> None:
    slots = Slots(2)
    assert slots.take() and slots.take() and not slots.take()
    never_iterated = Released(iter([b"x"]), slots.give_back)
    never_iterated.close()
    never_iterated.close()  # closing twice gives back once
    assert slots.in_use == 1 and slots.take() and not slots.take()


def test_the_page_url_for_home_assistant() -> None:
    assert HttpConfig(listen="127.0.0.1:8080").page_url("cam") == "http://127.0.0.1:8080/"
    assert HttpConfig(listen="0.0.0.0:8080", auth="token").page_url("cam") == "http://cam:8080/"
    assert HttpConfig(listen="[::1]:9000").page_url("cam") == "http://[::1]:9000/"
    given = HttpConfig(listen="0.0.0.0:80", auth="token", public_url="https://cam.example/")
    assert given.page_url("cam") == "https://cam.example/"


def test_viewers_share_one_encoding_per_stream_period() -> None:
    pictures = Pictures()
    now = [0.0]
    cache = JpegCache(pictures, clock=lambda: now[0])
    pictures.last_frame = object()
    first = cache.latest(True, max_age_s=0.2)
    for step in range(3):  # newer frames, but younger than the period: the same JPEG for everyone
        pictures.last_frame = object()
        now[0] = 0.05 * (step + 1)
        assert cache.latest(True, max_age_s=0.2) == first
    now[0] = 0.2
    assert cache.latest(True, max_age_s=0.2) != first
    assert pictures.encodes == 2


class Observed:
    """What the metrics collector reads, as plain values (the collector's rendering on its own)."""

    def __init__(self) -> None:
        from edged.app.stats import Stats

        self.stats = Stats()
        self.stats.result({"inference": 4.0, "preprocess": 0.5, "decode": 0.2, "capture_to_publish": 30.0})

    def cumulative(self) -> dict[str, Any]:
        return self.stats.cumulative()

    def state(self) -> dict[str, Any]:
        return {"paused": False, "model": {"name": "m", "version": "3", "sha256": "ab"}, "task": "detection",
                "accelerator": "cpu", "edged_version": "0.1.0"}  # fmt: skip

    def link_stats(self) -> dict[str, Any]:
        return {"connected": True, "connects": 2, "buffered": 7, "in_flight": 1, "delivered": 40, "skipped_by_mode": 3,
                "dropped_overflow": 5, "dropped_expired": 1, "dropped_other": 0}  # fmt: skip

    def hosting_state(self) -> dict[str, Any]:
        return {"state": "idle", "checks": {"up_to_date": 4, "available": 1, "failed": 2}}


def test_metrics_render_the_link_and_the_update_checks() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from edged.app.web.metrics import build_registry, exposition

    text = exposition(build_registry(Observed())).decode()
    found = {(s.name, tuple(sorted(s.labels.items()))): s.value
             for family in text_string_to_metric_families(text) for s in family.samples}  # fmt: skip
    assert found[("edged_update_checks_total", (("outcome", "failed"),))] == 2
    assert found[("edged_update_checks_total", (("outcome", "up_to_date"),))] == 4
    assert found[("edged_publish_failures_total", (("reason", "overflow"),))] == 5
    assert found[("edged_mqtt_buffered_results", ())] == 7 and found[("edged_mqtt_connects_total", ())] == 2
    assert found[("edged_inference_seconds_bucket", (("le", "0.005"),))] == 1
    assert found[("edged_inference_seconds_bucket", (("le", "0.0025"),))] == 0
    assert found[("edged_capture_to_publish_seconds_sum", ())] == 0.03
    assert found[("edged_model_info", (("accelerator", "cpu"), ("name", "m"), ("sha256", "ab"), ("task", "detection"),
                                       ("version", "3")))] == 1  # fmt: skip
