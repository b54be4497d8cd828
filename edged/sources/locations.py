"""What an OpenCV `source` string names (device, stream or file), and masking secrets in URLs for logs.

Kept outside the opencv plugin so the pipeline can tell live sources from files without importing a plugin.
"""

from __future__ import annotations

import re
from typing import Literal

SourceKind = Literal["device", "stream", "file"]

_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):[^/\s]*@")
_SECRET_QUERY = re.compile(r"(?P<head>[?&](?:password|passwd|pass|pwd|token|key|secret|auth)=)[^&#\s]*", re.I)


def mask_url(text: str) -> str:
    """`text` with URL passwords (and password-like query parameters) replaced by ***, for logs and errors."""
    return _SECRET_QUERY.sub(r"\g<head>***", _USERINFO.sub(r"\g<head>:***@", text))


def classify(source: str) -> tuple[SourceKind, str]:
    """What `source` names and where it is: a device path, a URL, or a file path."""
    text = source.strip()
    if text.isdigit():
        return "device", f"/dev/video{int(text)}"
    if text.startswith("/dev/"):
        return "device", text
    scheme, sep, rest = text.partition("://")
    if sep:
        return ("file", rest) if scheme.lower() == "file" else ("stream", text)
    return "file", text
