import pytest

from oakpipe.errors import UserError
from oakpipe.options import ConvertOptions, parse_input_shape


def test_input_shape_forms():
    assert parse_input_shape("1,3,128,96") == (1, 3, 128, 96)
    assert parse_input_shape("[1, 3, 64, 64]") == (1, 3, 64, 64)


@pytest.mark.parametrize(
    ("text", "message"),
    [("1,3,256", "4 dimensions"), ("1,3,x,4", "whole numbers"), ("2,3,64,64", "batch size"),
     ("1,1,64,64", "1 channels"), ("1,3,4,4", "out of range")],
)
def test_bad_input_shapes(text, message):
    with pytest.raises(UserError, match=message):
        parse_input_shape(text)


@pytest.mark.parametrize("shaves", [0, 17])
def test_shaves_range(shaves):
    with pytest.raises(UserError, match="outside 1..16"):
        ConvertOptions(model="halve", shaves=shaves)


def test_opset_and_alpha_ranges():
    with pytest.raises(UserError, match="opset"):
        ConvertOptions(model="halve", opset=18)
    with pytest.raises(UserError, match="alpha"):
        ConvertOptions(model="halve", alpha=1.5)


def test_missing_weights_file(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        ConvertOptions(model="halve", weights=tmp_path / "nope.pt")
