"""Shared by the stream tests (HTTP MJPEG and RTSP cameras on loopback): timeouts and reading until it breaks."""

from __future__ import annotations

import pytest

from edged.errors import SourceError
from edged.sources.opencv import OpenCvSource

#: Generous: the machine is shared and slow (FFmpeg probes an RTSP stream for about 2 s here). The read timeout
#: only bounds a stalled stream; a stopped server closes the connection, which OpenCV notices at once.
OPEN_TIMEOUT_S = 20.0
READ_TIMEOUT_S = 3.0
#: More reads than FFmpeg can have buffered, so a broken stream must have raised before this many.
MAX_BUFFERED = 500


def read_until_broken(source: OpenCvSource) -> SourceError:
    """Read past whatever FFmpeg buffered until the source raises; the error, for assertions."""
    with pytest.raises(SourceError) as raised:
        for _ in range(MAX_BUFFERED):
            source.read()
    return raised.value
