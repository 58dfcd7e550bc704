"""Fixtures for ``oakpipe run``: a converted halve export and a small generated video."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def halve_dir(request) -> Path:
    """The session's halve export (converted once by tests/conftest.py); needs the compiler."""
    from oakpipe import toolchain

    if not toolchain.status().installed:
        pytest.skip("MyriadX toolchain not installed (oakpipe toolchain install): no blob to run")
    return Path(request.getfixturevalue("halve_export").folder)


def write_video(path: Path, count: int, size: tuple[int, int] = (160, 120)) -> list[np.ndarray]:
    """A small mp4 of distinct, textured frames; returns the frames as decoded back."""
    import cv2

    from oakpipe.live.sources import sample_frame

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 15.0, size)
    for i in range(count):
        writer.write(cv2.resize(sample_frame(i * 3), size, interpolation=cv2.INTER_AREA))
    writer.release()
    capture, frames = cv2.VideoCapture(str(path)), []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(frame)


@pytest.fixture
def video(tmp_path) -> tuple[Path, list[np.ndarray]]:
    path = tmp_path / "clip.mp4"
    return path, write_video(path, 12)
