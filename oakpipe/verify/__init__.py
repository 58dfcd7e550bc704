"""Verification: every stage's artifact against the PyTorch model, on the host."""

#: The files the verify stage writes, named here so that a cached convert can name them
#: without importing the report's numerical modules (numpy, onnx).
REPORT_FILES = ("verify.json", "verify.md", "verify_ranges.png")
