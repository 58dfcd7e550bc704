"""Reading a user's image file: one place for the checks and the one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from oakpipe.errors import UserError


def read_image_u8(path: Path, what: str) -> np.ndarray:
    """The file as uint8, (H, W) or (H, W, C) in OpenCV's BGR(A) order, or a UserError."""
    import cv2

    if not Path(path).is_file():
        raise UserError(f"{what} {path}: no such file", "check the path")
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise UserError(f"{what} {path} cannot be read as an image", "use a PNG or JPEG file")
    if image.dtype != np.uint8:  # 16-bit or float images: stretch to 0..255
        image = cv2.convertScaleAbs(image, alpha=255.0 / max(1, int(image.max())))
    return image


def channels_of(image: np.ndarray) -> int:
    return 1 if image.ndim == 2 else image.shape[2]
