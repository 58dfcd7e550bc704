import onnx
import pytest

from oakpipe.errors import ModelError, UnsupportedModelError, UserError
from oakpipe.options import ConvertOptions
from oakpipe.stages.onnx_export import export_torch, import_onnx
from tests.fixtures.models import NeedsFourChannels, Raising, TwoHeads, small_cnn

OPTIONS = ConvertOptions(model="halve", input_shape=(1, 3, 32, 32))


def test_export_is_static_named_and_checked(tmp_path):
    info = export_torch(small_cnn().eval(), OPTIONS, tmp_path / "m.onnx")
    assert info["inputs"] == [{"name": "input", "shape": [1, 3, 32, 32], "dtype": "float32"}]
    assert info["outputs"][0]["name"] == "output" and info["outputs"][0]["shape"] == [1, 3, 32, 32]
    model = onnx.load(str(tmp_path / "m.onnx"))
    onnx.checker.check_model(model, full_check=True)
    assert {n.op_type for n in model.graph.node} >= {"Conv", "MaxPool", "Resize", "Concat", "Sigmoid"}
    assert "BatchNormalization" not in {n.op_type for n in model.graph.node}  # folded into the conv


def test_dict_outputs_are_named_by_their_keys(tmp_path):
    info = export_torch(TwoHeads(), OPTIONS, tmp_path / "m.onnx")
    assert [o["name"] for o in info["outputs"]] == ["bright", "mean"]


def test_forward_that_raises_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="deliberate failure"):
        export_torch(Raising(), OPTIONS, tmp_path / "m.onnx")


def test_wrong_input_rank_or_channels_names_the_shape(tmp_path):
    with pytest.raises(ModelError, match=r"\[1, 3, 32, 32\]"):
        export_torch(NeedsFourChannels(), OPTIONS, tmp_path / "m.onnx")


def test_onnx_import_fixes_dynamic_dims_and_renames_input(tmp_path):
    import torch

    src = tmp_path / "src.onnx"
    torch.onnx.export(small_cnn().eval(), torch.rand(1, 3, 32, 32), str(src), dynamo=False, opset_version=12,
                      input_names=["image"], output_names=["y"], dynamic_axes={"image": {2: "h", 3: "w"}})
    info = import_onnx(src, OPTIONS, tmp_path / "m.onnx")
    assert info["inputs"][0] == {"name": "input", "shape": [1, 3, 32, 32], "dtype": "float32"}


def test_corrupt_onnx_is_a_user_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not protobuf")
    with pytest.raises(UserError, match="not a valid ONNX model"):
        import_onnx(bad, OPTIONS, tmp_path / "m.onnx")


def test_onnx_with_a_fixed_other_size_is_refused(tmp_path):
    import torch

    src = tmp_path / "src.onnx"
    torch.onnx.export(small_cnn().eval(), torch.rand(1, 3, 64, 64), str(src), dynamo=False, opset_version=12)
    with pytest.raises(UserError, match="--input-shape"):
        import_onnx(src, OPTIONS, tmp_path / "m.onnx")


def test_unexportable_op_is_unsupported(tmp_path):
    class Fft(torch_module()):
        def forward(self, x):
            import torch

            return torch.fft.fft2(x).real

    with pytest.raises(UnsupportedModelError, match="torch.onnx.export"):
        export_torch(Fft(), OPTIONS, tmp_path / "m.onnx")


def torch_module():
    from torch import nn

    return nn.Module


@pytest.mark.parametrize("opset", [11, 12, 13])
@pytest.mark.parametrize("name", ["TinyViT", "UnflattenHeads"])
def test_attention_exports_below_opset_14_in_its_math_form(tmp_path, opset, name):
    import numpy as np
    import onnxruntime as ort
    import torch

    from tests.fixtures import verdict_models

    torch.manual_seed(0)
    net = getattr(verdict_models, name)().eval()
    options = ConvertOptions(model="halve", input_shape=(1, 3, 32, 32), opset=opset)
    export_torch(net, options, tmp_path / "m.onnx")
    model = onnx.load(str(tmp_path / "m.onnx"))
    assert {"MatMul", "Softmax"} <= {n.op_type for n in model.graph.node}
    x = torch.rand(1, 3, 32, 32)
    got = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        want = net(x).numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)  # FP32, same maths in another order


def test_attention_symbolics_are_removed_after_the_export(tmp_path):
    import torch

    from tests.fixtures.verdict_models import UnflattenHeads

    export_torch(UnflattenHeads().eval(), OPTIONS, tmp_path / "m.onnx")
    with pytest.raises(Exception, match="scaled_dot_product_attention|unflatten"):  # torch's own exporter
        torch.onnx.export(UnflattenHeads().eval(), torch.rand(1, 3, 32, 32), str(tmp_path / "plain.onnx"),
                          dynamo=False, opset_version=12)


@pytest.mark.parametrize("dynamic", [-1, "?"], ids=["minus-one", "question-mark"])
def test_onnx_with_paddle_style_dynamic_dims_takes_the_input_shape(tmp_path, dynamic):
    """Paddle's exporter writes dynamic dims as -1 or names them "?": they are not sizes."""
    import torch

    src = tmp_path / "src.onnx"
    torch.onnx.export(small_cnn().eval(), torch.rand(1, 3, 32, 32), str(src), dynamo=False, opset_version=12)
    model = onnx.load(str(src))
    for index in (0, 2, 3):
        dim = model.graph.input[0].type.tensor_type.shape.dim[index]
        dim.Clear()
        if isinstance(dynamic, int):
            dim.dim_value = dynamic
        else:
            dim.dim_param = dynamic
    onnx.save(model, str(src))
    info = import_onnx(src, OPTIONS, tmp_path / "m.onnx")
    assert info["inputs"][0]["shape"] == [1, 3, 32, 32]
