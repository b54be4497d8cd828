"""The running daemon: the only package that starts threads (capture, inference, commands, publishers' loops),
the control surface every front end uses, the model manager, and the supervisor that decides the exit status."""
