"""The device graph, fed the camera's U8 BGR planar frame, must compute what the model
computes on the RGB float tensor of the same image (the preprocessing contract)."""

import numpy as np
import onnxruntime as ort
import pytest
import torch
from numpy.testing import assert_allclose

from oakpipe.options import ConvertOptions
from oakpipe.preprocessing import Preprocessing, frame_to_model_input
from oakpipe.stages.device_graph import build_device_graph
from oakpipe.stages.onnx_export import export_torch
from tests.fixtures.models import small_cnn


def run(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


@pytest.mark.parametrize("opset", [11, 12, 13])
@pytest.mark.parametrize(
    "pre",
    [Preprocessing(), Preprocessing((123.7, 116.3, 103.5), (58.4, 57.1, 57.4), True),
     Preprocessing((0, 0, 0), (1, 1, 1), False), Preprocessing((5, 10, 20), (100, 100, 100), False)],
    ids=["default", "imagenet", "identity", "bgr-model"],
)
def test_device_graph_matches_the_model_on_the_same_image(tmp_path, pre, opset):
    options = ConvertOptions(model="halve", input_shape=(1, 3, 32, 48), opset=opset, preprocessing=pre)
    model = small_cnn().eval()
    export_torch(model, options, tmp_path / "m.onnx")
    build_device_graph(tmp_path / "m.onnx", pre, tmp_path / "d.onnx")

    frame = np.random.default_rng(1).integers(0, 256, (3, 32, 48), dtype=np.uint8)  # BGR planar
    expected = model(torch.from_numpy(frame_to_model_input(frame, pre))).detach().numpy()
    got = run(tmp_path / "d.onnx", frame[None].astype(np.float32))
    # Both sides are float32; the only difference is the order of rounding in the
    # preprocessing arithmetic, amplified a little by the convolutions.
    assert_allclose(got, expected, atol=1e-5, rtol=1e-4)


def test_wrong_colour_order_is_visible(tmp_path):
    """A sanity check that the contract test above can fail: swapping channels changes results."""
    options = ConvertOptions(model="halve", input_shape=(1, 3, 16, 16))
    model = small_cnn().eval()
    export_torch(model, options, tmp_path / "m.onnx")
    build_device_graph(tmp_path / "m.onnx", Preprocessing(reverse_input_channels=False), tmp_path / "d.onnx")
    frame = np.random.default_rng(2).integers(0, 256, (3, 16, 16), dtype=np.uint8)
    expected = model(torch.from_numpy(frame_to_model_input(frame, Preprocessing()))).detach().numpy()
    got = run(tmp_path / "d.onnx", frame[None].astype(np.float32))
    assert np.abs(got - expected).max() > 1e-3


def test_many_row_linear_layers_become_1x1_convs_with_the_same_numbers(tmp_path):
    """ConvNeXt's channels-last Linear layers: MatMul/Gemm over H*W rows, which the MYRIAD
    compiler takes minutes on, become 1x1 Convs computing the same sums."""
    import onnx

    from tests.fixtures.verdict_models import ChannelsLastMLP

    torch.manual_seed(0)
    export_torch(ChannelsLastMLP().eval(), ConvertOptions(model="halve", input_shape=(1, 3, 32, 32)),
                 tmp_path / "m.onnx")
    info = build_device_graph(tmp_path / "m.onnx", Preprocessing(scale=(1.0, 1.0, 1.0), reverse_input_channels=False),
                              tmp_path / "d.onnx")
    assert sum(v for k, v in info["rewrites"].items() if k.startswith("MatMul/Gemm")) == 2
    ops = [n.op_type for n in onnx.load(str(tmp_path / "d.onnx")).graph.node]
    assert "MatMul" not in ops and "Gemm" not in ops and ops.count("Conv") == 4
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, 32, 32)).astype(np.float32)
    want = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"input": x})[0]
    got = ort.InferenceSession(str(tmp_path / "d.onnx")).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4 * np.abs(want).max())  # FP32 sums, other order
