import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from oakpipe.errors import UserError
from oakpipe.preprocessing import (
    IMAGENET_MEAN,
    Preprocessing,
    bgr_to_planar,
    fit_like_camera_preview,
    frame_to_model_input,
    model_output_to_frame,
    parse_channel_values,
)


def test_default_contract_is_rgb_on_unit_range():
    frame = np.zeros((3, 2, 2), np.uint8)
    frame[0] = 255  # blue plane of a BGR frame
    x = frame_to_model_input(frame, Preprocessing())
    assert x.shape == (1, 3, 2, 2)
    assert_allclose(x[0, 2], 1.0)  # blue lands in the model's third (B of RGB) channel
    assert_allclose(x[0, :2], 0.0)


def test_mean_and_scale_in_model_channel_order():
    pre = Preprocessing(mean=(10, 20, 30), scale=(2, 4, 8), reverse_input_channels=True)
    frame = np.stack([np.full((1, 1), v, np.uint8) for v in (100, 150, 200)])  # B, G, R
    x = frame_to_model_input(frame, pre)[0, :, 0, 0]
    assert_allclose(x, [(200 - 10) / 2, (150 - 20) / 4, (100 - 30) / 8])


@pytest.mark.parametrize("reverse", [True, False])
def test_output_decoding_inverts_the_input_contract(reverse):
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (3, 5, 7), dtype=np.uint8)
    pre = Preprocessing(mean=(1, 2, 3), scale=(50, 60, 70), reverse_input_channels=reverse)
    shown = model_output_to_frame(frame_to_model_input(frame, pre), pre)
    assert_array_equal(shown, frame.transpose(1, 2, 0))


def test_parse_channel_values_forms():
    assert parse_channel_values("1,2,3", "--mean-values") == (1, 2, 3)
    assert parse_channel_values("[1, 2, 3]", "--mean-values") == (1, 2, 3)
    assert parse_channel_values("255", "--scale-values") == (255, 255, 255)
    assert parse_channel_values("imagenet", "--mean-values") == IMAGENET_MEAN
    with pytest.raises(UserError, match="1 or 3 values"):
        parse_channel_values("1,2", "--mean-values")
    with pytest.raises(UserError, match="not a list of numbers"):
        parse_channel_values("a,b,c", "--mean-values")


def test_zero_scale_is_refused():
    with pytest.raises(UserError, match="divide by zero"):
        Preprocessing(scale=(1, 0, 1))


def test_preview_fit_crops_to_aspect_then_resizes():
    image = np.zeros((100, 200, 3), np.uint8)
    image[:, 50:150] = 255  # the centre square survives the crop
    fitted = fit_like_camera_preview(image, 10, 10)
    assert fitted.shape == (10, 10, 3)
    assert fitted.min() == 255
    assert bgr_to_planar(fitted).shape == (3, 10, 10)
