"""The local status page, its JSON API, the live view, /metrics and /healthz: one small HTTP server, off unless
`[http]` is set. waitress and prometheus-client are imported only then (the `http` extra)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from edged.errors import ConfigError

if TYPE_CHECKING:
    from edged.app.daemon import Daemon
    from edged.app.web.server import WebServer

INSTALL_HINT = "pip install 'edged[http]'"


def start_web(daemon: Daemon) -> WebServer:
    """Start the server for `daemon.config.http`; ConfigError for a missing library, token or address."""
    config = daemon.config.http
    assert config is not None, "[http] is not configured"
    try:
        from edged.app.web.api import WebApp
        from edged.app.web.auth import Guard, read_token
        from edged.app.web.server import WebServer
        from edged.app.web.view import DaemonView
    except ImportError as exc:
        raise ConfigError(f"[http] needs {exc.name or 'waitress and prometheus-client'}: {INSTALL_HINT}") from exc
    guard = Guard(config, read_token(config))
    app = WebApp(DaemonView(daemon), config, guard, time.monotonic())
    server = WebServer(app, config, daemon.threads)
    server.start()
    return server
