"""Real servers and helpers the tests run on loopback (no fakes here)."""
