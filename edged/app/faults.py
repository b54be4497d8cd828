"""TEST-ONLY fault injection for the running model, so tests can prove that a model which fails, slows down or
kills the process after it was activated is rolled back.

Active only when the environment variable EDGED_TEST_ONLY_MODEL_FAULT is set when the daemon starts, as
`<kind>:<sha256 prefix>[:<milliseconds>]` with kind `error` (invoke raises), `slow` (invoke takes the given extra
milliseconds) or `crash` (the process is killed with SIGKILL, as a segfault in a bad model would end it). Never set
it on a real device.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any

ENV = "EDGED_TEST_ONLY_MODEL_FAULT"


@dataclass
class ModelFault:
    kind: str
    sha256_prefix: str
    milliseconds: float = 0.0
    armed: set[int] = field(default_factory=set)

    def arm(self, bundle: Any) -> None:
        """Wrap the interpreter's invoke() of a bundle whose model matches (once per bundle)."""
        if id(bundle) in self.armed or not bundle.info.sha256.startswith(self.sha256_prefix):
            return
        self.armed.add(id(bundle))
        interpreter = bundle.interpreter
        real_invoke = interpreter.invoke

        def faulty_invoke() -> Any:
            if self.kind == "error":
                raise RuntimeError("test-only fault: this model fails at invoke")
            if self.kind == "crash":
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(self.milliseconds / 1000.0)
            return real_invoke()

        interpreter.invoke = faulty_invoke


def model_fault_from_environment() -> ModelFault | None:
    value = os.environ.get(ENV, "")
    if not value:
        return None
    kind, _, rest = value.partition(":")
    prefix, _, ms = rest.partition(":")
    if kind not in ("error", "slow", "crash") or len(prefix) < 6:
        raise ValueError(f"{ENV}={value!r}: use error|slow|crash:<sha256 prefix>[:<ms>]")
    return ModelFault(kind, prefix, float(ms or 0))
