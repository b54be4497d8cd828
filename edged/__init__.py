"""edged: a TFLite image-labeling / object-detection sensor daemon for Linux edge devices."""

__version__ = "0.1.0"
