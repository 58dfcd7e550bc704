"""Read a style image for the style-transfer models, refusing what cannot work."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from oakpipe.errors import UserError
from oakpipe.imageio import channels_of, read_image_u8

log = logging.getLogger("oakpipe")
MIN_STYLE_SIDE = 64  # below this there is too little texture to take statistics from


def load_style_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) float32 RGB in [0, 1]. Grey images are converted (and that is said)."""
    import cv2

    image = read_image_u8(path, "--style")
    if channels_of(image) == 1:
        log.warning("style image %s is greyscale: converted to RGB (the style will carry no colour)", path)
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.shape[2] == 4:
        image = image[:, :, :3]
    if min(image.shape[:2]) < MIN_STYLE_SIDE:
        raise UserError(
            f"--style {path} is only {image.shape[1]}x{image.shape[0]} pixels",
            f"use a style image at least {MIN_STYLE_SIDE} pixels on each side (256 or more is best)",
        )
    return np.ascontiguousarray(image[:, :, ::-1]).astype(np.float32) / 255.0
