"""The only module that imports a TensorFlow Lite runtime: interpreter creation, Edge TPU delegate, fallback.

Runtimes are tried in order: ai_edge_litert (LiteRT, numpy 2 friendly), tflite_runtime, tensorflow.lite.
Foreign exceptions raised while creating interpreters are translated into `ModelError` here.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from edged.config.model import edgetpu_device_problem
from edged.errors import ModelError

log = logging.getLogger(__name__)

Accelerator = Literal["auto", "cpu", "edgetpu"]
EDGETPU_LIBRARY = "libedgetpu.so.1"
EDGETPU_CUSTOM_OP = "edgetpu-custom-op"

#: Loads a delegate: (library, options) -> delegate object. Injectable so tests can fake the Edge TPU.
DelegateLoader = Callable[[str, dict[str, str]], Any]


@dataclass(frozen=True)
class RuntimeModule:
    """The TFLite runtime found on this machine."""

    name: str
    version: str
    interpreter_class: Any
    load_delegate: DelegateLoader


@functools.cache
def find_runtime() -> RuntimeModule:
    """The first importable runtime; ModelError with an install hint when there is none."""
    try:
        from ai_edge_litert import interpreter as litert

        version = _package_version("ai-edge-litert")
        return RuntimeModule("ai-edge-litert", version, litert.Interpreter, litert.load_delegate)
    except ImportError:
        pass
    try:
        from tflite_runtime import interpreter as tflite

        version = _package_version("tflite-runtime")
        return RuntimeModule("tflite-runtime", version, tflite.Interpreter, tflite.load_delegate)
    except ImportError:
        pass
    try:
        import tensorflow as tf

        return RuntimeModule("tensorflow", tf.__version__, tf.lite.Interpreter, tf.lite.experimental.load_delegate)
    except ImportError:
        pass
    raise ModelError(
        "no TensorFlow Lite runtime is installed: `pip install ai-edge-litert` "
        "(or `pip install 'edged[tflite-runtime]'` on platforms without LiteRT wheels, e.g. 32-bit ARM)"
    )


def _package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def validate_device(device: str) -> str:
    """Check an Edge TPU device string: '', 'usb', 'usb:N', 'pci', 'pci:N' or ':N'."""
    problem = edgetpu_device_problem(device)
    if problem:
        raise ModelError(problem)
    return device


def load_edgetpu_delegate(device: str = "", loader: DelegateLoader | None = None) -> Any:
    """Load the Edge TPU delegate; raise ModelError saying why when there is no usable TPU."""
    validate_device(device)
    options = {"device": device} if device else {}
    try:
        if loader is None:
            ctypes.CDLL(EDGETPU_LIBRARY)  # fail here, quietly, rather than inside the runtime's Delegate
            loader = find_runtime().load_delegate
        return loader(EDGETPU_LIBRARY, options)
    except (ValueError, OSError, RuntimeError) as exc:
        detail = " ".join(str(exc).split())
        raise ModelError(
            f"no usable Edge TPU{f' at {device!r}' if device else ''}: {detail or 'the delegate failed to load'}. "
            "Install the Edge TPU runtime (libedgetpu1-std from the Coral apt repository), plug in the "
            "accelerator, and give the service access to it (udev rules / the 'plugdev' group)"
        ) from exc


#: USB ids of the Coral USB Accelerator, before (Global Unichip) and after (Google) its firmware is loaded.
EDGETPU_USB_IDS = {("1a6e", "089a"), ("18d1", "9302")}


def edgetpu_present(sysfs: Path = Path("/sys/bus/usb/devices"), dev: Path = Path("/dev")) -> bool:
    """An Edge TPU runtime and at least one Edge TPU are there (a PCIe /dev/apex_N or a USB Coral); creates no
    delegate. Enumerates devices the way pycoral's list_edge_tpus() finds them, without pycoral."""
    try:
        ctypes.CDLL(EDGETPU_LIBRARY)
    except OSError:
        return False
    if any(dev.glob("apex_*")):
        return True
    for vendor_file in sysfs.glob("*/idVendor"):
        try:
            vendor = vendor_file.read_text().strip()
            product = (vendor_file.parent / "idProduct").read_text().strip()
        except OSError:
            continue
        if (vendor, product) in EDGETPU_USB_IDS:
            return True
    return False


def default_threads() -> int:
    """All the cores the process may use: an edge device runs edged and little else."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def create_interpreter(path: str, num_threads: int, delegates: list[Any] | None = None) -> Any:
    """An interpreter over `path` (not yet allocated); ModelError when the runtime refuses the file."""
    runtime = find_runtime()
    try:
        return runtime.interpreter_class(
            model_path=path, num_threads=num_threads, experimental_delegates=delegates or None
        )
    except (ValueError, RuntimeError) as exc:
        detail = " ".join(str(exc).split())
        raise ModelError(
            f"{path}: the TFLite runtime ({runtime.name} {runtime.version}) cannot read this model: {detail}. "
            "The file may be truncated or not a TFLite flatbuffer; download or export it again"
        ) from exc


def allocate(interpreter: Any, path: str) -> None:
    """Allocate tensors, translating an unresolved custom op into an actionable message."""
    try:
        interpreter.allocate_tensors()
    except (RuntimeError, ValueError) as exc:
        detail = " ".join(str(exc).split())
        match = re.search(r"unresolved custom op: ([^.\s]+)", detail)
        if match and match.group(1) == EDGETPU_CUSTOM_OP:
            raise ModelError(
                f"{path}: the model is compiled for the Edge TPU and cannot run without one; "
                "use accelerator = 'edgetpu' with a Coral device, or the CPU version of the model"
            ) from exc
        if match:
            raise ModelError(
                f"{path}: the model uses the custom operator {match.group(1)!r}, which the TFLite runtime "
                "does not provide. Re-export it with builtin operators only "
                "(converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]) "
                "or use the runtime the model was built for"
            ) from exc
        raise ModelError(f"{path}: the TFLite runtime cannot prepare this model: {detail}") from exc
