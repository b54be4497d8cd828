"""The CPU-bound limit of `edged bench`: the frame rate no pipeline could beat on this machine.

Each frame needs four pieces of work whatever the pipeline does around them: capture decode (the source's
read), preprocess (the capture side's preparer plus the copy into the tensor), invoke, and decode. Their CPU time
per frame is measured here by running them alone, one after the other, on the same file, model and thread count,
half just before the pipeline runs and half just after (nothing else in the process uses the CPU then, and the
machine's drift over the run reaches the limit as it reaches the fps). The usable cores divided by that
CPU time per frame is the limit; `edged bench` reports its fps as a fraction of it.

CPU time, not wall time, and of every thread: FFmpeg decodes on its own threads (ahead of the reads, in the
background) and XNNPACK runs invoke on a worker pool. Each thread's time comes from the kernel's per-thread
accounting (/proc/self/task/*/schedstat, in ns): the calling thread's time is split by stage, helper threads are
counted for the stage whose library started them: the threads that appear when the model is loaded and first
invoked are the runtime's worker pool, which lives as long as the interpreter; those that appear later are the
decoder's, and so is the CPU time of threads that ended meanwhile (the process total minus the live threads'),
since FFmpeg's threads end and are replaced each time a looping file is reopened.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from edged.app.inference import roi_of
from edged.config.app import AppConfig
from edged.errors import SourceError
from edged.inference.loader import load_bundle
from edged.inference.preprocess import InputPreparer
from edged.sources.base import create_source

STAGES = ("capture", "preprocess", "inference", "decode")
WARMUP_FRAMES = 10


def usable_cores() -> float:
    """The CPUs this process may run on, capped by a cgroup v2 CPU quota (a container, a systemd CPUQuota=)."""
    cores: float = len(os.sched_getaffinity(0))
    try:
        with open("/sys/fs/cgroup/cpu.max") as limit:
            quota, period = limit.read().split()
        if quota != "max":
            cores = min(cores, int(quota) / int(period))
    except (OSError, ValueError):
        pass
    return cores


def thread_cpu_ns() -> dict[int, int]:
    """CPU time so far of each thread of this process, in ns, by thread id."""
    times: dict[int, int] = {}
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return times
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as stat:
                times[int(tid)] = int(stat.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that just ended
    return times


def stage_cpu_seconds(config: AppConfig, frames: int) -> dict[str, float]:
    """CPU seconds each necessary stage took over `frames` frames run alone and serially (after a warm-up)."""
    main = threading.get_native_id()
    existing = set(thread_cpu_ns())
    roi, preparer = roi_of(config), InputPreparer()
    bundle = load_bundle(config.model, roi=roi)
    source = create_source(config.camera)
    try:
        bundle.invoke()  # the runtime's worker threads exist from here on
        model_threads = set(thread_cpu_ns()) - existing - {main}
        source.open()
        own = dict.fromkeys(STAGES, 0.0)  # the calling thread's CPU seconds per stage
        threads_before, process_before = thread_cpu_ns(), time.process_time()
        for number in range(WARMUP_FRAMES + frames):
            if number == WARMUP_FRAMES:  # measure from here
                threads_before, process_before = thread_cpu_ns(), time.process_time()
                own = dict.fromkeys(STAGES, 0.0)
            started = time.thread_time()
            frame = source.read()
            if frame is None:
                raise SourceError("the source ended while measuring the CPU-bound limit: use a looping source")
            read = time.thread_time()
            prepared = preparer.prepare(bundle.recipe, frame.image, frame.color, roi)
            geometry, _ = bundle.fill_input(frame.image, frame.color, roi, prepared)  # copies, then releases
            filled = time.thread_time()
            bundle.invoke()
            invoked = time.thread_time()
            bundle.decode(geometry, bundle.params)
            decoded = time.thread_time()
            for stage, spent in zip(STAGES, (read - started, filled - read, invoked - filled, decoded - invoked),
                                    strict=True):  # fmt: skip
                own[stage] += spent
        process_s = time.process_time() - process_before
        threads_after = thread_cpu_ns()
    finally:
        source.close()
        bundle.close()
    helpers = {tid: (ns - threads_before.get(tid, 0)) / 1e9 for tid, ns in threads_after.items() if tid != main}
    stage_s = dict(own)
    capture_threads = set(helpers) - existing - model_threads  # the source's (FFmpeg's)
    stage_s["capture"] += sum(s for tid, s in helpers.items() if tid in capture_threads)
    stage_s["inference"] += sum(s for tid, s in helpers.items() if tid in model_threads)
    ended_s = max(0.0, process_s - sum(stage_s.values()))  # threads gone by now: FFmpeg's, when the file looped
    stage_s["capture"] += ended_s
    return stage_s


def cpu_bound_limit(measurements: list[tuple[dict[str, float], int]]) -> dict[str, Any]:
    """The limit from one or more `stage_cpu_seconds` runs (taken before and after the pipeline, so that the
    machine's drift during the run hits the limit and the fps alike): per-frame CPU per stage, total, fps."""
    frames = sum(count for _, count in measurements)
    stage_s = {stage: sum(spent[stage] for spent, _ in measurements) for stage in STAGES}
    total_ms = sum(stage_s.values()) * 1000.0 / frames
    cores = usable_cores()
    return {
        "stage_cpu_ms": {stage: round(s * 1000.0 / frames, 3) for stage, s in stage_s.items()},
        "cpu_ms_per_frame": round(total_ms, 3),
        "usable_cores": cores,
        "limit_fps": round(cores * 1000.0 / total_ms, 2) if total_ms > 0 else None,
        "calibration_frames": frames,
    }
