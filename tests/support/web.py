"""Helpers for the status page tests: a daemon with [http] on a free loopback port, and a small HTTP client.

The client is the standard library's http.client: nothing in the test needs more, and it sends exactly the
headers a test gives it (no cookie jar, no Origin) so the security tests control every header.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support.broker import free_port

MODELS = Path(__file__).resolve().parents[1] / "fixtures" / "models"
DETECTOR = MODELS / "shapes_yolov8_int8.tflite"
TOKEN = "t0ken-for-tests-0123456789abcdef"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Client:
    port: int
    host: str = "127.0.0.1"
    default_headers: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, body: bytes | str | None = None,
                headers: dict[str, str] | None = None, timeout: float = 30.0) -> Reply:  # fmt: skip
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            data = body.encode() if isinstance(body, str) else body
            connection.request(method, path, body=data, headers={**self.default_headers, **(headers or {})})
            response = connection.getresponse()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            connection.close()

    def get(self, path: str, headers: dict[str, str] | None = None) -> Reply:
        return self.request("GET", path, headers=headers)

    def post(self, path: str, payload: object = None, headers: dict[str, str] | None = None) -> Reply:
        body = json.dumps(payload if payload is not None else {})
        return self.request("POST", path, body, {"Content-Type": "application/json", **(headers or {})})

    def stream(self, path: str, headers: dict[str, str] | None = None,
               timeout: float = 30.0) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:  # fmt: skip
        """A long response (MJPEG, server-sent events), left open for the caller to read and close."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        connection.request("GET", path, headers={**self.default_headers, **(headers or {})})
        return connection, connection.getresponse()


def mjpeg_frames(response: http.client.HTTPResponse) -> Iterator[bytes]:
    """The JPEGs of a multipart/x-mixed-replace response, as they arrive."""
    while True:
        line = response.readline()
        if not line:
            return
        if not line.startswith(b"--"):
            continue
        length = 0
        while (header := response.readline().strip()) != b"":
            name, _, value = header.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        yield response.read(length)


def sse_events(response: http.client.HTTPResponse) -> Iterator[tuple[str, Any]]:
    """(event name, decoded data) for each server-sent event, as they arrive."""
    name, data = "message", ""
    while True:
        line = response.readline()
        if not line:
            return
        text = line.decode().rstrip("\n")
        if text.startswith("event:"):
            name = text[6:].strip()
        elif text.startswith("data:"):
            data += text[5:].strip()
        elif text == "" and data:
            yield name, json.loads(data)
            name, data = "message", ""


def http_table(port: int | None = None, *, token_file: Path | None = None, extra: str = "") -> str:
    table = f'[http]\nlisten = "127.0.0.1:{port or free_port()}"\n'
    if token_file is not None:
        token_file.write_text(TOKEN + "\n")
        table += f'auth = "token"\ntoken_file = "{token_file}"\n'
    return table + extra


def config_text(http: str, camera: str = "", publisher: str = "", pipeline: str = "") -> str:
    camera = camera or 'type = "synthetic"\nfps = 20\nwidth = 320\nheight = 240\n'
    return (
        f'device_id = "web-cam"\n[model]\npath = "{DETECTOR}"\nnum_threads = 1\n\n[camera]\n{camera}\n'
        f"[pipeline]\nshutdown_timeout_s = 10.0\n{pipeline}\n{publisher}\n{http}"
    )
