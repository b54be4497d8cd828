"""Reading a file the user named, with the one set of messages for what goes wrong (missing, a folder, not
readable): the config file, models, label files and images all come through here."""

from __future__ import annotations

from pathlib import Path

from edged.errors import EdgedError


def read_user_file(
    path: Path,
    what: str,
    error: type[EdgedError],
    *,
    missing_hint: str = "check the path",
    directory_hint: str = "",
) -> bytes:
    """The bytes of `path`, or `error` naming `what` it was meant to be, what is wrong, and the fix."""
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise error(f"{what} {path} does not exist; {missing_hint}") from exc
    except IsADirectoryError as exc:
        hint = directory_hint or f"give the {what} itself"
        raise error(f"{path} is a directory, not a {what}; {hint}") from exc
    except PermissionError as exc:
        raise error(
            f"{what} {path} cannot be read: permission denied; make it readable by the user edged runs as "
            "(under the shipped systemd unit, keep it under /var/lib/edged or /etc/edged, world-readable, or pass "
            "secrets with LoadCredential=)"
        ) from exc
    except OSError as exc:
        raise error(f"{what} {path} cannot be read: {exc.strerror or exc}") from exc
