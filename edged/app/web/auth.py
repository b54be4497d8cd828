"""Who may do what on the status page: the token, session cookies, and the checks every request passes.

The rules (docs/http.md#security):
- on a loopback address, reading needs no token, but the Host header must name a loopback host too, so a web
  page elsewhere cannot read the API through DNS rebinding;
- anywhere else, every request but the page's own files needs the token;
- every POST needs the token, whatever the address, and passes a cross-site check.

The token travels as `Authorization: Bearer <token>` (curl, Prometheus) or, for the page, as a session cookie
(HttpOnly, SameSite=Strict) that a login with the token sets. A cookie-authenticated POST must also carry the
session's CSRF token in a header, which only a page served by edged can read; a POST whose Origin or
Sec-Fetch-Site says it comes from another site is refused before anything else. Tokens, cookies and CSRF tokens
are compared with hmac.compare_digest (constant time). No response ever contains the token.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from edged.config.http import HttpConfig, is_loopback, split_listen
from edged.errors import ConfigError

#: The systemd credential read when `token_file` is not set (LoadCredential=http-token:/etc/edged/http-token).
CREDENTIAL_NAME = "http-token"
MIN_TOKEN_CHARS = 16
SESSION_COOKIE = "edged_session"
CSRF_HEADER = "HTTP_X_EDGED_CSRF"
SESSION_S = 30 * 24 * 3600


def read_token(config: HttpConfig) -> str | None:
    """The token (None with auth = "none"); ConfigError naming the file and the fix when it cannot be read."""
    if config.auth != "token":
        return None
    path: Path | None = config.token_file
    where = "http.token_file"
    if path is None:
        credentials = os.environ.get("CREDENTIALS_DIRECTORY")
        if not credentials:
            raise ConfigError(
                'http.auth = "token" needs the token: set http.token_file, or give edged the systemd credential '
                f"'{CREDENTIAL_NAME}' (LoadCredential={CREDENTIAL_NAME}:/etc/edged/http-token in the unit)"
            )
        path = Path(credentials) / CREDENTIAL_NAME
        where = f"the systemd credential '{CREDENTIAL_NAME}'"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: cannot read {path}: {exc}") from exc
    token = lines[0].strip() if lines else ""
    if len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(
            f"{where}: the token in {path} is {len(token)} characters long; use at least {MIN_TOKEN_CHARS} "
            "(make one with: openssl rand -hex 32)"
        )
    return token


def _mac(token: str, message: str) -> str:
    return hmac.new(token.encode(), message.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Verdict:
    """What a request may do: read the API, and send commands; `reason` says why not."""

    can_read: bool
    can_write: bool
    authenticated: bool
    reason: str = ""
    via_cookie: bool = False


class Guard:
    """Decides, request by request (a WSGI environ), what is allowed. Pure: no I/O, the clock passed in."""

    def __init__(self, config: HttpConfig, token: str | None) -> None:
        self.config = config
        self.token = token
        self.loopback = is_loopback(split_listen(config.listen)[0])

    # ---- the token and the session cookie ------------------------------------------------------------------
    def token_matches(self, candidate: str) -> bool:
        if self.token is None:
            return False
        return hmac.compare_digest(candidate.encode(), self.token.encode())

    def new_session(self, now: float | None = None) -> str:
        assert self.token is not None
        expiry = int((now if now is not None else time.time()) + SESSION_S)
        return f"{expiry}.{_mac(self.token, f'session:{expiry}')}"

    def session_valid(self, value: str, now: float | None = None) -> bool:
        if self.token is None:
            return False
        expiry, _, mac = value.partition(".")
        if not expiry.isdigit() or int(expiry) < (now if now is not None else time.time()):
            return False
        return hmac.compare_digest(mac.encode(), _mac(self.token, f"session:{expiry}").encode())

    def csrf_for(self, session: str) -> str:
        assert self.token is not None
        return _mac(self.token, f"csrf:{session}")

    def cookie_header(self, session: str) -> str:
        return f"{SESSION_COOKIE}={session}; Max-Age={SESSION_S}; Path=/; HttpOnly; SameSite=Strict"

    @staticmethod
    def clear_cookie_header() -> str:
        return f"{SESSION_COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict"

    # ---- per request -----------------------------------------------------------------------------------------
    @staticmethod
    def session_of(environ: Mapping[str, object]) -> str | None:
        cookies = str(environ.get("HTTP_COOKIE", ""))
        for part in cookies.split(";"):
            name, _, value = part.strip().partition("=")
            if name == SESSION_COOKIE and value:
                return value
        return None

    def _bearer(self, environ: Mapping[str, object]) -> bool | None:
        """True / False for a right / wrong bearer token, None when the request has none."""
        header = str(environ.get("HTTP_AUTHORIZATION", ""))
        if not header:
            return None
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return self.token_matches(value.strip())

    def host_is_loopback(self, environ: Mapping[str, object]) -> bool:
        host = str(environ.get("HTTP_HOST", ""))
        if host.startswith("["):  # [::1]:8080
            return is_loopback(host[1:].partition("]")[0])
        return is_loopback(host.rpartition(":")[0] if ":" in host else host)

    def cross_site(self, environ: Mapping[str, object]) -> str | None:
        """Why a state-changing request looks cross-site, or None."""
        fetch_site = str(environ.get("HTTP_SEC_FETCH_SITE", ""))
        if fetch_site and fetch_site not in ("same-origin", "none"):
            return f"cross-site request refused (Sec-Fetch-Site: {fetch_site[:32]})"
        origin = str(environ.get("HTTP_ORIGIN", ""))
        if origin:
            # host[:port] only: behind a TLS proxy the page is https:// while edged itself is spoken to in http
            _, _, origin_host = origin.partition("://")
            expected = str(environ.get("HTTP_HOST", ""))
            if not origin_host or not hmac.compare_digest(origin_host.lower().encode(), expected.lower().encode()):
                return f"cross-site request refused (Origin {origin[:80]!r} is not this page)"
        content_type = str(environ.get("CONTENT_TYPE", "")).split(";")[0].strip().lower()
        if content_type != "application/json":
            return "send commands as JSON (Content-Type: application/json)"
        return None

    def check(self, environ: Mapping[str, object], now: float | None = None) -> Verdict:
        bearer = self._bearer(environ)
        if bearer is False:
            return Verdict(False, False, False, "wrong token")
        session = self.session_of(environ)
        by_cookie = session is not None and self.session_valid(session, now)
        authenticated = bool(bearer) or by_cookie
        if authenticated:
            can_write = True
            reason = ""
            if not bearer:  # a cookie goes with every request the browser makes: the CSRF token must go too
                sent = str(environ.get(CSRF_HEADER, ""))
                assert session is not None
                if not hmac.compare_digest(sent.encode(), self.csrf_for(session).encode()):
                    can_write, reason = False, "missing or wrong CSRF token (X-Edged-CSRF); reload the page"
            return Verdict(True, can_write, True, reason, via_cookie=not bearer)
        if self.token is None:
            write_reason = 'commands need a token: set [http] auth = "token" and token_file (docs/http.md)'
        else:
            write_reason = "this needs the token (log in on the page, or send Authorization: Bearer <token>)"
        if self.loopback:
            if not self.host_is_loopback(environ):
                return Verdict(False, False, False, "the Host header must name this machine (127.0.0.1 or localhost)")
            return Verdict(True, False, False, write_reason)
        return Verdict(False, False, False, write_reason)
