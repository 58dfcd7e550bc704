"""Verification: every stage's artifact against the PyTorch model, on the host."""

from pathlib import Path

#: The files the verify stage writes, named here so that a cached convert can name them
#: without importing the report's numerical modules (numpy, onnx).
REPORT_FILES = ("verify.json", "verify.md", "verify_ranges.png")
#: The photograph verify feeds every stage when no --image is given (its hash is in the key).
BUILTIN_PHOTO = Path(__file__).resolve().parent.parent / "data" / "astronaut.jpg"
