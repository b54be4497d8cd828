"""Which Edge TPUs this machine has, for `edged doctor`: through libedgetpu's own C API when it is installed
(`edgetpu_list_devices`, which pycoral's `list_edge_tpus` wraps), and from sysfs and /dev otherwise, so a plugged-in
Coral is reported even before its runtime is installed.

A USB Coral enumerates as 1a6e:089a (Global Unichip) until the runtime first talks to it, then re-enumerates as
18d1:9302 (Google): both ids mean "a Coral USB Accelerator is plugged in", and udev rules must cover both.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from edged.inference.runtime import EDGETPU_LIBRARY

#: (idVendor, idProduct) of the Coral USB Accelerator before and after the runtime initialises it.
CORAL_USB_IDS = {("1a6e", "089a"): "not yet initialised", ("18d1", "9302"): "initialised"}


@dataclass(frozen=True)
class EdgeTpu:
    type: Literal["usb", "pci"]
    path: str
    note: str = ""


class _Device(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("path", ctypes.c_char_p)]  # edgetpu_c.h: struct edgetpu_device


def load_library(name: str = EDGETPU_LIBRARY) -> tuple[ctypes.CDLL | None, str]:
    """(the library, its version) or (None, why it cannot be loaded)."""
    try:
        library = ctypes.CDLL(name)
    except OSError as exc:
        return None, str(exc)
    try:
        library.edgetpu_version.restype = ctypes.c_char_p
        raw = library.edgetpu_version()
        version = raw.decode(errors="replace") if raw else "unknown version"
    except AttributeError:
        version = "unknown version"
    return library, version


def list_with_library(library: ctypes.CDLL) -> list[EdgeTpu]:
    """The devices libedgetpu sees, as pycoral's list_edge_tpus() reports them."""
    library.edgetpu_list_devices.restype = ctypes.POINTER(_Device)
    library.edgetpu_list_devices.argtypes = [ctypes.POINTER(ctypes.c_size_t)]
    library.edgetpu_free_devices.argtypes = [ctypes.POINTER(_Device)]
    count = ctypes.c_size_t(0)
    devices = library.edgetpu_list_devices(ctypes.byref(count))
    try:
        found = []
        for index in range(count.value):
            device = devices[index]
            path = device.path.decode(errors="replace") if device.path else ""
            found.append(EdgeTpu("pci" if device.type == 0 else "usb", path))
        return found
    finally:
        if devices:
            library.edgetpu_free_devices(devices)


def scan_usb(sysfs: Path = Path("/sys/bus/usb/devices")) -> list[EdgeTpu]:
    """Coral USB Accelerators by their USB ids in sysfs (no library needed)."""
    found = []
    for device in sorted(sysfs.glob("*")) if sysfs.is_dir() else []:
        try:
            ids = ((device / "idVendor").read_text().strip(), (device / "idProduct").read_text().strip())
        except OSError:
            continue
        if ids in CORAL_USB_IDS:
            found.append(EdgeTpu("usb", f"{device.name} ({ids[0]}:{ids[1]})", CORAL_USB_IDS[ids]))
    return found


def scan_pci(dev: Path = Path("/dev")) -> list[EdgeTpu]:
    """PCIe / M.2 Corals by their /dev/apex_N nodes (the gasket and apex kernel drivers make them)."""
    return [EdgeTpu("pci", str(path)) for path in sorted(dev.glob("apex_*"))]
