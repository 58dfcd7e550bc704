"""The inputs every stage is checked on: a real photograph and seeded random frames,
each as the camera would send it (U8 planar BGR at the network's size)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from oakpipe.errors import UserError
from oakpipe.imageio import channels_of, read_image_u8
from oakpipe.preprocessing import bgr_to_planar, fit_like_camera_preview
from oakpipe.verify import BUILTIN_PHOTO


def read_colour_image(path: Path, what: str = "--image") -> np.ndarray:
    """A BGR (H, W, 3) uint8 image, or a UserError saying why not."""
    image = read_image_u8(path, what)
    channels = channels_of(image)
    if channels == 4:
        return np.ascontiguousarray(image[:, :, :3])
    if channels != 3:
        raise UserError(
            f"{what} {path} has {channels} channel(s); the camera sends 3-channel colour frames",
            "use a colour image (convert a grey one to RGB first)",
        )
    return image


def sample_frames(height: int, width: int, image: Path | None = None, randoms: int = 2) -> list[tuple[str, np.ndarray]]:
    """(label, U8 planar BGR frame (3, H, W)) pairs: the photograph first."""
    photo = read_colour_image(image) if image else read_colour_image(BUILTIN_PHOTO, "built-in photo")
    label = Path(image).name if image else "photo"
    frames = [(label, bgr_to_planar(fit_like_camera_preview(photo, width, height)))]
    rng = np.random.default_rng(0)
    for index in range(randoms):
        frames.append((f"random{index}", rng.integers(0, 256, (3, height, width), dtype=np.uint8)))
    return frames
