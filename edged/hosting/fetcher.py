"""python-tuf's urllib3 fetcher with edged's limits: a whole-file deadline on top of the gap timeout, downloads
written in state_dir (same filesystem as the install, and a disk-full shows up there), progress for targets, and
conditional requests (ETag / If-None-Match) for timestamp.json, the one file a device polls.

The length caps and all verification stay python-tuf's: this class only moves bytes.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import urllib3
from tuf.api import exceptions
from tuf.ngclient import Urllib3Fetcher

from edged.hosting.faults import test_only_crash_point

Progress = Callable[[int, int], None]  # (bytes so far, bytes expected)
_CHUNK = 64 * 1024
_POLLED = "/timestamp.json"


@dataclass
class FetchStats:
    """What this fetcher cost the host: every request, and the bytes it sent."""

    requests: int = 0
    not_modified: int = 0
    bytes_received: int = 0


class EdgedFetcher(Urllib3Fetcher):
    def __init__(
        self,
        download_dir: Path,
        *,
        connect_timeout_s: float,
        metadata_deadline_s: float,
        download_deadline_s: float,
        user_agent: str,
    ) -> None:
        super().__init__(socket_timeout=max(1, math.ceil(connect_timeout_s)), chunk_size=_CHUNK)
        self.timeout = urllib3.Timeout(connect=connect_timeout_s, read=connect_timeout_s)
        self.download_dir = download_dir
        self.metadata_deadline_s = metadata_deadline_s
        self.download_deadline_s = download_deadline_s
        self.user_agent = user_agent
        self.progress: Progress | None = None
        self.stats = FetchStats()
        self._etags: dict[str, tuple[str, bytes]] = {}
        self._deadline_s = download_deadline_s
        self._metadata = False

    def _fetch(self, url: str) -> Iterator[bytes]:
        headers = {"User-Agent": self.user_agent}
        cached = self._etags.get(url) if url.endswith(_POLLED) else None
        if cached is not None:
            headers["If-None-Match"] = cached[0]
        self.stats.requests += 1
        try:
            response = self._proxy_env.request("GET", url, preload_content=False, timeout=self.timeout, headers=headers)
        except urllib3.exceptions.MaxRetryError as exc:
            reason = exc.reason  # a refused connection is a NewConnectionError, which urllib3 derives from a timeout
            if isinstance(reason, urllib3.exceptions.TimeoutError) and not isinstance(
                reason, urllib3.exceptions.NewConnectionError
            ):
                raise exceptions.SlowRetrievalError(f"no answer from {url}") from exc
            raise
        if response.status == 304 and cached is not None:
            response.release_conn()
            self.stats.not_modified += 1
            return iter([cached[1]])
        if response.status >= 400:
            response.close()
            raise exceptions.DownloadHTTPError(f"HTTP {response.status} for {url}", response.status)
        etag = response.headers.get("ETag") if url.endswith(_POLLED) else None
        return self._stream(response, url, etag)

    def _stream(self, response: urllib3.BaseHTTPResponse, url: str, etag: str | None) -> Iterator[bytes]:
        deadline = time.monotonic() + self._deadline_s
        body = bytearray() if etag else None
        try:
            # read1 returns whatever has arrived (stream() waits for a full chunk), so a host that drips bytes
            # just fast enough to dodge the gap timeout still meets the deadline
            while chunk := response.read1(self.chunk_size):
                self.stats.bytes_received += len(chunk)
                if body is not None:
                    body += chunk
                yield chunk
                if time.monotonic() > deadline:
                    raise exceptions.SlowRetrievalError(f"{url} took longer than {self._deadline_s:g} s")
        except urllib3.exceptions.TimeoutError as exc:
            raise exceptions.SlowRetrievalError(f"{url} stalled") from exc
        finally:
            response.release_conn()
        if etag and body is not None:
            self._etags[url] = (etag, bytes(body))

    def download_bytes(self, url: str, max_length: int) -> bytes:
        """Metadata: the tighter deadline, no progress."""
        self._deadline_s, self._metadata = self.metadata_deadline_s, True
        try:
            return super().download_bytes(url, max_length)
        finally:
            self._deadline_s, self._metadata = self.download_deadline_s, False

    @contextmanager
    def download_file(self, url: str, max_length: int) -> Iterator[IO[bytes]]:
        """As python-tuf's, but the temporary file lives in state_dir (an unnamed O_TMPFILE: a crash leaves
        nothing behind), with progress, and the length cap checked before each write."""
        self.download_dir.mkdir(parents=True, exist_ok=True)
        received = 0
        progress = None if self._metadata else self.progress
        with tempfile.TemporaryFile(dir=self.download_dir) as temp:
            for chunk in self.fetch(url):
                received += len(chunk)
                if received > max_length:
                    raise exceptions.DownloadLengthMismatchError(
                        f"{url}: the host sent more than the {max_length} bytes allowed"
                    )
                temp.write(chunk)
                if progress is not None:
                    progress(received, max_length)
                    test_only_crash_point("download")
            temp.flush()
            temp.seek(0)
            yield temp
