"""Print the pip requirements of the Home Assistant integrations the real-HA test tier loads, with their
dependencies, pinned by Home Assistant's own package_constraints.txt (run with the HA venv's python).

Home Assistant installs an integration's requirements at run time; the test runs it with --skip-pip, so they
are installed once, by `make ha-venv`, from the manifests of the Home Assistant version installed there.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import homeassistant
from homeassistant import bootstrap

#: What tests/test_homeassistant_real.py configures (configuration.yaml) or adds (the MQTT config entry).
ROOTS = ("mqtt", "onboarding", "config", "api", "websocket_api", "auth", "http", "person", "homeassistant")


def loaded_anyway() -> set[str]:
    """What Home Assistant's bootstrap sets up whatever the configuration says (frontend, backup, ...); a missing
    requirement there sends it into recovery mode."""
    found: set[str] = set()
    for name in ("CORE_INTEGRATIONS", "CRITICAL_INTEGRATIONS", "DEFAULT_INTEGRATIONS", "LOGGING_INTEGRATIONS",
                 "FRONTEND_INTEGRATIONS"):  # fmt: skip
        found |= set(getattr(bootstrap, name, ()))
    return found - {"sentry"}


def main() -> int:
    components = Path(homeassistant.__file__).parent / "components"
    seen: set[str] = set()
    todo = [*ROOTS, *sorted(loaded_anyway())]
    requirements: list[str] = []
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        manifest_path = components / name / "manifest.json"
        if not manifest_path.exists():
            continue
        manifest = json.loads(manifest_path.read_text())
        requirements += manifest.get("requirements", [])
        todo += manifest.get("dependencies", []) + manifest.get("after_dependencies", [])
    print("\n".join(sorted(set(requirements))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
