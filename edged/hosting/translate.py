"""The one boundary where python-tuf, urllib3 and OS errors become HostingError: which check failed, and the fix.

The TUF checks themselves are python-tuf's; this module only names them for the person reading the log.
"""

from __future__ import annotations

import errno
import functools
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

import urllib3
from tuf.api import exceptions as tuf_errors

from edged.errors import HostingError

REFRESH_HINT = "run `edged hosting refresh REPO_DIR` where the repository is published (daily, from cron or a timer)"


def _cause_chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _network(exc: BaseException, what: str, url: str) -> HostingError | None:
    for cause in _cause_chain(exc):
        if isinstance(cause, urllib3.exceptions.MaxRetryError):
            reason = cause.reason
            if isinstance(reason, urllib3.exceptions.NewConnectionError | urllib3.exceptions.NameResolutionError):
                return HostingError(
                    f"{what}: cannot reach the repository host ({reason}); check [hosting] url {url} and the "
                    "network; the current model keeps running"
                )
            if isinstance(reason, urllib3.exceptions.SSLError):
                return HostingError(f"{what}: TLS failed ({reason}); check the host's certificate and the clock")
            if isinstance(reason, urllib3.exceptions.ResponseError):
                return HostingError(f"{what}: {reason} (too many redirects or errors); check the host's redirects")
            return HostingError(f"{what}: the host is unreachable ({reason}); check [hosting] url {url}")
        if isinstance(cause, urllib3.exceptions.ProtocolError | urllib3.exceptions.ReadTimeoutError):
            return HostingError(
                f"{what}: the connection broke mid-transfer ({cause}); the host or the network dropped it, the "
                "next check retries"
            )
        if isinstance(cause, urllib3.exceptions.HTTPError):
            return HostingError(f"{what}: HTTP transfer failed ({cause}); the next check retries")
    return None


def translate(exc: BaseException, what: str, url: str, state_dir: Path | None = None) -> HostingError:
    """A HostingError naming the check that failed in `what` (e.g. 'refreshing metadata from URL')."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, HostingError):
        return exc
    if isinstance(exc, tuf_errors.UnsignedMetadataError):
        return HostingError(
            f"{what}: signature check failed: {message}. The metadata is not signed by the keys this device's "
            "trusted_root names (a wrong or unknown key, tampered metadata, or another repository's root.json); "
            "publish with the repository's own keys, and give devices that repository's root.json"
        )
    if isinstance(exc, tuf_errors.ExpiredMetadataError):
        return HostingError(
            f"{what}: expiry check failed: {message} (a stale repository, or a freeze attack); {REFRESH_HINT}"
        )
    if isinstance(exc, tuf_errors.BadVersionNumberError):
        return HostingError(
            f"{what}: rollback check failed: {message}. The host serves older metadata than this device has "
            "already verified (a replayed copy, or a cache or restore serving old files); serve the current "
            "repository, and publish again if it was restored from a backup"
        )
    if isinstance(exc, tuf_errors.LengthOrHashMismatchError):
        return HostingError(
            f"{what}: length/hash check failed: {message}. The bytes on the host are not the ones the signed "
            "metadata names (tampered, corrupted or half-uploaded); upload the repository again, targets first"
        )
    if isinstance(exc, tuf_errors.DownloadLengthMismatchError):
        return HostingError(
            f"{what}: length check failed: {message} (the host sends more than the signed length or the "
            "configured cap: an endless-data attack or the wrong file); fix the file on the host, or raise the "
            "*_max_bytes limit in [hosting] if the metadata is really that large"
        )
    if isinstance(exc, tuf_errors.SlowRetrievalError):
        return HostingError(
            f"{what}: timed out (the host stalled or drips data too slowly); check the host and the network, or "
            "raise connect_timeout_s / metadata_deadline_s / download_deadline_s in [hosting]"
        )
    if isinstance(exc, tuf_errors.DownloadHTTPError):
        status = exc.status_code
        hint = {
            404: "the file is missing on the host (an incomplete upload, or a wrong [hosting] url)",
            403: "the host refuses access (bucket or web server permissions)",
            401: "the host wants credentials; serve the repository publicly (TUF signs it, it needs no secrecy)",
        }.get(status, "the host failed; check its logs" if status >= 500 else "check the host")
        return HostingError(f"{what}: HTTP {status} from the host: {hint}")
    if isinstance(exc, tuf_errors.RepositoryError):
        return HostingError(
            f"{what}: the repository's metadata was rejected: {message} (not valid TUF metadata, or inconsistent); "
            "publish it again with `edged hosting` commands"
        )
    network = _network(exc, what, url)
    if network is not None:
        return network
    if isinstance(exc, tuf_errors.DownloadError):
        return HostingError(f"{what}: download failed: {message}; the next check retries")
    if isinstance(exc, OSError):
        where = f" in {state_dir}" if state_dir else ""
        if exc.errno == errno.ENOSPC:
            return HostingError(
                f"{what}: the disk is full{where}; free space there (or move state_dir) — nothing was installed"
            )
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return HostingError(
                f"{what}: cannot write{where}: {exc.strerror}; state_dir must be writable by edged "
                "(StateDirectory=edged in the unit)"
            )
        return HostingError(f"{what}: {exc.strerror or exc}{where}")
    return HostingError(f"{what}: {type(exc).__name__}: {message}")


P = ParamSpec("P")
R = TypeVar("R")


def os_errors_as_hosting(what: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """For the store's methods: an OSError (disk full, read-only, permissions) becomes a HostingError."""

    def wrap(function: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(function)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return function(*args, **kwargs)
            except OSError as exc:
                raise translate(exc, f"{what} ({function.__name__})", "") from exc

        return run

    return wrap
