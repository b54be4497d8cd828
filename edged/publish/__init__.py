"""Publishers: where results, stats, state and events go (stdout JSON lines, MQTT)."""
