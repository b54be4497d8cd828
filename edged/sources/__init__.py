"""Frame sources: plugins that produce `Frame`s from cameras, streams, files, folders or a synthetic scene."""
