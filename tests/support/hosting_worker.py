"""A device's update steps in a process of their own, so a test can kill -9 it at a named point.

    python hosting_worker.py URL ROOT_JSON STATE_DIR NAME

runs start-up (recover + decision), check, download, install, begin_probation and commit. With the test-only
environment variable EDGED_TEST_ONLY_CRASH_AT=<point> (edged.hosting.faults) the process SIGKILLs itself there.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from edged.config.hosting import HostingConfig
from edged.hosting.client import HostingClient
from edged.hosting.store import Store


def main() -> int:
    url, root, state_dir, name = sys.argv[1:5]
    config = HostingConfig(url=url, name=name, trusted_root=Path(root), free_space_margin_bytes=0)
    store = Store(Path(state_dir))
    store.startup()
    client = HostingClient(config, Path(state_dir), "worker")
    offer = client.check(store.local_facts())
    if offer is None:
        print(json.dumps({"installed": None}))
        return 0
    installed = store.install(client.download(offer))
    store.begin_probation(installed)
    store.commit(installed)
    print(json.dumps({"installed": installed.version}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
