"""Bad style input for the style-transfer models: a clear error, or a conversion said aloud."""

import logging

import cv2
import numpy as np
import pytest

from oakpipe import ConvertOptions
from oakpipe.errors import UserError
from oakpipe.models.loader import build_module
from oakpipe.models.source import parse_model_spec
from oakpipe.models.style_image import load_style_rgb


def test_grey_style_is_converted_and_said(tmp_path, caplog):
    path = tmp_path / "grey.png"
    cv2.imwrite(str(path), np.tile(np.arange(128, dtype=np.uint8), (128, 1)))
    with caplog.at_level(logging.WARNING, logger="oakpipe"):
        rgb = load_style_rgb(path)
    assert rgb.shape == (128, 128, 3) and rgb.dtype == np.float32
    assert "greyscale" in caplog.text


def test_tiny_and_unreadable_styles_are_refused(tmp_path):
    cv2.imwrite(str(tmp_path / "tiny.png"), np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(UserError, match="only 16x16"):
        load_style_rgb(tmp_path / "tiny.png")
    (tmp_path / "bad.jpg").write_bytes(b"no jpeg here")
    with pytest.raises(UserError, match="cannot be read"):
        load_style_rgb(tmp_path / "bad.jpg")


def test_style_must_match_the_model(tmp_path):
    style = tmp_path / "s.png"
    cv2.imwrite(str(style), np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(UserError, match="needs a style image"):
        build_module(parse_model_spec("stylizer"), ConvertOptions(model="stylizer"))
    with pytest.raises(UserError, match="takes no style image"):
        build_module(parse_model_spec("halve"), ConvertOptions(model="halve", style=style))
    with pytest.raises(UserError, match="alpha"):
        ConvertOptions(model="stylizer", style=style, alpha=-0.1)
