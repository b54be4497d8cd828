"""The status page's security rules, against the real server and against the access rules on their own: no token,
a wrong token, a cross-site POST, a stolen-cookie POST without the CSRF token, DNS rebinding, a non-loopback
address, and no secret in any response."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pipeline_support import BackgroundDaemon, RecordingPublisher, wait_until
from pydantic import ValidationError
from support.web import TOKEN, Client, config_text, http_table

from edged.app.web.auth import Guard, read_token
from edged.config import parse_config
from edged.config.http import HttpConfig
from edged.errors import ConfigError

READ_PATHS = ("/api/state", "/api/stats", "/api/results/recent", "/snapshot.jpg", "/metrics", "/healthz")
JSON = {"Content-Type": "application/json"}


def start(tmp_path: Path, with_token: bool) -> tuple[BackgroundDaemon, RecordingPublisher]:
    token_file = tmp_path / "token" if with_token else None
    config = parse_config(config_text(http_table(token_file=token_file)))
    publisher = RecordingPublisher()
    background = BackgroundDaemon(config, publisher).__enter__()
    assert wait_until(lambda: background.daemon.web is not None and len(publisher.results) >= 2)
    return background, publisher


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[tuple[BackgroundDaemon, Client]]:
    background, _ = start(tmp_path, with_token=True)
    assert background.daemon.web is not None
    try:
        yield background, Client(background.daemon.web.port)
    finally:
        background.stop()


def test_posts_without_a_token_or_with_a_wrong_one_change_nothing(guarded: tuple[BackgroundDaemon, Client]) -> None:
    background, client = guarded
    for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}, {"Authorization": f"Basic {TOKEN}"},
                    {"Cookie": "edged_session=4102444800.deadbeef"}):  # fmt: skip
        reply = client.post("/api/command/pause", headers=headers)
        assert reply.status == 401, (headers, reply.body)
        assert reply.headers["www-authenticate"].startswith("Bearer")
        assert not background.daemon.paused
    wrong_login = client.post("/api/login", {"token": "not-the-token-at-all"})
    assert wrong_login.status == 401 and "set-cookie" not in wrong_login.headers
    # reading on loopback needs no token, but a wrong one is refused rather than ignored
    assert client.get("/api/state").status == 200
    assert client.get("/api/state", {"Authorization": "Bearer wrong"}).status == 401


def test_cross_site_posts_are_refused_even_with_a_valid_session(guarded: tuple[BackgroundDaemon, Client]) -> None:
    background, client = guarded
    login = client.post("/api/login", {"token": TOKEN})
    assert login.status == 200
    cookie = login.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
    session = cookie.split(";")[0]
    csrf = login.json()["csrf"]
    good = {"Cookie": session, "X-Edged-CSRF": csrf}
    attacks = [
        {**good, "Origin": "http://evil.example"},  # a page elsewhere posting with the browser's cookie
        {**good, "Origin": f"http://127.0.0.1:{client.port + 1}"},  # another port of this host: another origin
        {**good, "Origin": "null"},  # a sandboxed frame or a file:// page
        {**good, "Sec-Fetch-Site": "cross-site"},
        {**good, "Sec-Fetch-Site": "same-site"},  # another port of this host is another origin
        {"Cookie": session},  # the cookie alone: no CSRF token
        {"Cookie": session, "X-Edged-CSRF": "0" * 64},
    ]
    for headers in attacks:
        reply = client.post("/api/command/pause", headers=headers)
        assert reply.status == 403, (headers, reply.body)
        assert not background.daemon.paused
    # an HTML form can only send form encodings or text/plain, never JSON
    form = client.request("POST", "/api/command/pause", "{}", {**good, "Content-Type": "text/plain"})
    assert form.status == 403 and "JSON" in form.json()["error"]
    assert not background.daemon.paused
    same_origin = {**good, "Origin": f"http://127.0.0.1:{client.port}", "Sec-Fetch-Site": "same-origin"}
    assert client.post("/api/command/pause", headers=same_origin).status == 200
    assert background.daemon.paused
    session_answer = client.get("/api/session", {"Cookie": session}).json()
    assert session_answer["authenticated"] and session_answer["can_write"] and session_answer["csrf"] == csrf
    assert client.post("/api/logout").headers["set-cookie"].startswith("edged_session=;")


def test_a_foreign_host_name_cannot_read_the_loopback_api(guarded: tuple[BackgroundDaemon, Client]) -> None:
    """DNS rebinding: evil.example resolving to 127.0.0.1 would let a page there read the API."""
    _, client = guarded
    for path in READ_PATHS:
        reply = client.get(path, {"Host": f"evil.example:{client.port}"})
        assert reply.status == 403 and "Host header" in reply.json()["error"], path
    assert client.get("/api/state", {"Host": f"localhost:{client.port}"}).status == 200
    assert client.get("/api/state", {"Host": f"evil.example:{client.port}",
                                     "Authorization": f"Bearer {TOKEN}"}).status == 200  # fmt: skip


def test_no_response_contains_the_token(guarded: tuple[BackgroundDaemon, Client]) -> None:
    _, client = guarded
    auth = {"Authorization": f"Bearer {TOKEN}"}
    replies = [client.get(path, auth) for path in ("/", "/app.js", "/app.css", "/api/session", *READ_PATHS)]
    replies.append(client.post("/api/command/stats", headers=auth))
    replies.append(client.post("/api/command/state", headers=auth))
    replies.append(client.post("/api/login", {"token": TOKEN}))
    for reply in replies:
        assert reply.status == 200, reply.body[:200]
        assert TOKEN.encode() not in reply.body
        assert all(TOKEN not in value for value in reply.headers.values())
    page = client.get("/")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"


def test_without_a_token_the_page_is_read_only(tmp_path: Path) -> None:
    background, _ = start(tmp_path, with_token=False)
    try:
        assert background.daemon.web is not None
        client = Client(background.daemon.web.port)
        assert client.get("/api/state").status == 200
        refused = client.post("/api/command/pause")
        assert refused.status == 403 and 'auth = "token"' in refused.json()["error"]
        assert client.post("/api/login", {"token": "anything-anything"}).status == 400
        assert client.get("/api/session").json()["can_write"] is False
        assert not background.daemon.paused
    finally:
        background.stop()


# ---- the rules on their own: a non-loopback address (not bound here: the tests only use loopback) -----------
def environ(**headers: str) -> dict[str, object]:
    base: dict[str, object] = {"HTTP_HOST": "camera.lan:8080", "wsgi.url_scheme": "http", "REQUEST_METHOD": "GET"}
    base.update({f"HTTP_{k.upper()}": v for k, v in headers.items()})
    return base


def test_a_non_loopback_address_needs_the_token_for_everything() -> None:
    config = HttpConfig(listen="0.0.0.0:8080", auth="token")
    guard = Guard(config, TOKEN)
    assert not guard.check(environ()).can_read
    assert guard.check(environ()).reason.startswith("this needs the token")
    assert not guard.check(environ(authorization="Bearer nope")).can_read
    granted = guard.check(environ(authorization=f"Bearer {TOKEN}"))
    assert granted.can_read and granted.can_write
    session = guard.new_session(now=1000.0)
    assert guard.session_valid(session, now=2000.0)
    assert not guard.session_valid(session, now=1000.0 + 31 * 24 * 3600)  # expired
    assert not guard.session_valid(session.replace(session[-1], "0" if session[-1] != "0" else "1"), now=2000.0)
    cookie = guard.check(environ(cookie=f"edged_session={session}"), now=2000.0)
    assert cookie.can_read and not cookie.can_write  # no CSRF token
    with_csrf = environ(cookie=f"edged_session={session}", x_edged_csrf=guard.csrf_for(session))
    assert guard.check(with_csrf, now=2000.0).can_write


def test_the_config_refuses_an_open_address_without_a_token(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match='set auth = "token"'):
        HttpConfig(listen="0.0.0.0:8080")
    with pytest.raises(ValidationError, match="is not 'address:port'"):
        HttpConfig(listen="8080")
    with pytest.raises(ValidationError, match=r"IPv6 address in brackets"):
        HttpConfig(listen="::1:8080")
    with pytest.raises(ValidationError, match='auth is "none"'):
        HttpConfig(listen="127.0.0.1:8080", token_file=tmp_path / "t")
    assert HttpConfig(listen="[::1]:8080").loopback and HttpConfig(listen="localhost:8080").loopback
    with pytest.raises(ConfigError, match=r"http.toml:\d+: http: listen = .0.0.0.0:8080. is reachable"):
        parse_config(config_text('[http]\nlisten = "0.0.0.0:8080"\n'), origin="http.toml")


def test_short_or_missing_tokens_are_refused_with_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    short = tmp_path / "short"
    short.write_text("abc\n")
    with pytest.raises(ConfigError, match=r"at least 16.*openssl rand -hex 32"):
        read_token(HttpConfig(listen="127.0.0.1:8080", auth="token", token_file=short))
    with pytest.raises(ConfigError, match="cannot read"):
        read_token(HttpConfig(listen="127.0.0.1:8080", auth="token", token_file=tmp_path / "missing"))
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(ConfigError, match="LoadCredential=http-token"):
        read_token(HttpConfig(listen="127.0.0.1:8080", auth="token"))
    (tmp_path / "http-token").write_text(TOKEN + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert read_token(HttpConfig(listen="127.0.0.1:8080", auth="token")) == TOKEN
