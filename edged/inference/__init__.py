"""Inference: load and inspect a .tflite, preprocess frames into it, run it, decode its outputs."""
