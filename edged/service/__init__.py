"""edged as a systemd service: the unit it ships, installing it, and what its sandbox lets the daemon reach."""
