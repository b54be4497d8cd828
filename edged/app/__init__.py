"""The running daemon: the only package that starts threads (capture, inference, supervisor)."""
