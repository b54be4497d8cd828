"""The one exception family: every foreign error is translated into one of these at a single boundary.

Messages are written for the person running edged: they say what is wrong and what would fix it.
"""

from __future__ import annotations


class EdgedError(Exception):
    """Base of every error edged raises on purpose; the CLI prints its message without a traceback."""


class ConfigError(EdgedError):
    """The TOML configuration (or a command-line option) is invalid."""


class SourceError(EdgedError):
    """A frame source cannot be opened or read.

    `permanent` marks what waiting cannot heal (a file that does not exist, a module that is not installed): it is
    reported at start and never retried. Everything else (a stream that is down, a camera that was unplugged) is
    retried with backoff.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class ModelError(EdgedError):
    """A model file cannot be loaded, inspected or used as configured."""


class ImageError(EdgedError):
    """An image file cannot be read or decoded."""


class PublishError(EdgedError):
    """Results cannot be published (broker unreachable, bad credentials, ...)."""


class HostingError(EdgedError):
    """A model update cannot be fetched, verified or installed."""


class CommandRefused(EdgedError):
    """A command was not carried out; the message is the reply's `error` (nothing was changed)."""
