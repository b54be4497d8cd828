"""A real RTSP camera on loopback: GStreamer's RTSP server streaming live H.264, as IP cameras do.

The server runs in its own process under the system Python, which has PyGObject (`python3-gi`); the project's
virtual environment does not, and needs nothing from it: the tests only talk RTSP to it through OpenCV's FFmpeg
backend, exactly as edged talks to a camera. Debian packages: `gir1.2-gst-rtsp-server-1.0`
`gstreamer1.0-plugins-base` `gstreamer1.0-plugins-good` `gstreamer1.0-plugins-ugly` (x264enc) and `python3-gi`;
`.ci/run` installs them.

The process is the camera's power switch: `stop()` kills it (the connection drops, as when a camera reboots),
`restart()` serves again on the same port, and `freeze()` / `thaw()` stop and continue it with SIGSTOP /
SIGCONT, so the TCP connection stays open but no packet comes (a hung camera, which only a read timeout can
detect).

Run directly (`/usr/bin/python3 tests/support/rtsp_server.py --port N`) it serves until killed and prints READY
once it listens.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

SYSTEM_PYTHON = "/usr/bin/python3"
PACKAGES = (
    "gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly "
    "python3-gi"
)
INSTALL_HINT = f"the RTSP test camera needs GStreamer's RTSP server: sudo apt-get install {PACKAGES}"
_PROBE = (
    "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
    "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
    "missing = [e for e in ('videotestsrc', 'x264enc', 'rtph264pay') if Gst.ElementFactory.find(e) is None]; "
    "raise SystemExit(', '.join(missing) or None)"
)


def missing_parts() -> str | None:
    """None when the RTSP camera can run here, else what is missing."""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"{SYSTEM_PYTHON} is missing"
    probe = subprocess.run([SYSTEM_PYTHON, "-c", _PROBE], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        lines = (probe.stderr.strip() or probe.stdout.strip() or "GStreamer elements are missing").splitlines()
        return lines[-1]
    return None


class RtspServer:
    """One GStreamer RTSP server process on 127.0.0.1:`port`, serving `/stream` (see the module docstring)."""

    def __init__(self, port: int, width: int = 160, height: int = 120, fps: int = 15) -> None:
        self.port = port
        self.size = (width, height)
        self.fps = fps
        self.process: subprocess.Popen[str] | None = None
        # GStreamer's warnings go to a file (a pipe nobody reads could fill and block it); closed by __exit__
        self._log = tempfile.TemporaryFile("w+")  # noqa: SIM115

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/stream"

    def start(self, timeout_s: float = 30.0) -> RtspServer:
        width, height = self.size
        command = [SYSTEM_PYTHON, __file__, "--port", str(self.port), "--width", str(width),
                   "--height", str(height), "--fps", str(self.fps)]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self._log, text=True)
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout_s
        line = ""
        while time.monotonic() < deadline and self.process.poll() is None:
            line = self.process.stdout.readline().strip()
            if line == "READY":
                return self
        self.stop()
        raise RuntimeError(f"the RTSP test camera did not start: {line or 'no output'}\n{self.log_text()[-2000:]}")

    def log_text(self) -> str:
        self._log.seek(0)
        return self._log.read()

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)  # a frozen process cannot die until it runs
            process.kill()
        process.communicate(timeout=30)

    def restart(self) -> None:
        self.stop()
        self.start()

    def freeze(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def __enter__(self) -> RtspServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
        self._log.close()


def serve(port: int, width: int, height: int, fps: int) -> None:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},framerate={fps}/1 "
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} bitrate=300 "
        f"! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    factory.set_shared(True)  # one encoder, however many clients: a camera, not a file server
    server.get_mount_points().add_factory("/stream", factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{port}")
    print("READY", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--height", type=int, default=120)
    parser.add_argument("--fps", type=int, default=15)
    arguments = parser.parse_args()
    serve(arguments.port, arguments.width, arguments.height, arguments.fps)
