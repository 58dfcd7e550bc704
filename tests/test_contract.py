"""The camera contract has one definition (``Preprocessing.steps``); its four uses agree.

The device graph (ONNX nodes), the host emulator (OpenVINO pre-processing), the NN Archive
reader and the verifier's reference (numpy) are each built from one ``Preprocessing`` and
fed the same U8 planar BGR frame."""

import logging

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from oakpipe.live.archive_input import add_contract_steps, archive_preprocessing
from oakpipe.preprocessing import (
    IMAGENET_MEAN,
    IMAGENET_SCALE,
    Preprocessing,
    declared_contract,
    frame_to_model_input,
    resolve_contract,
)
from oakpipe.stages.device_graph import CAMERA_INPUT, MODEL_INPUT, preprocessing_nodes
from tests.fixtures.mtcnn_pnet import PNet

SHAPE = [1, 3, 6, 5]
CONTRACTS = [
    Preprocessing(),
    Preprocessing((127.5,) * 3, (128.0,) * 3, True),  # MTCNN
    Preprocessing(IMAGENET_MEAN, IMAGENET_SCALE, False),
    Preprocessing((0, 0, 0), (1, 1, 1), False),  # identity
    Preprocessing((10, 20, 30), (1, 1, 1), True),
]


def frame() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, SHAPE[1:], dtype=np.uint8)


def device_graph_output(pre: Preprocessing, x: np.ndarray, opset: int) -> np.ndarray:
    nodes, constants = preprocessing_nodes(pre, opset)
    graph = helper.make_graph(
        nodes, "contract", [helper.make_tensor_value_info(CAMERA_INPUT, TensorProto.FLOAT, SHAPE)],
        [helper.make_tensor_value_info(MODEL_INPUT, TensorProto.FLOAT, SHAPE)], constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {CAMERA_INPUT: x[None].astype(np.float32)})[0]


def host_emulator_output(pre: Preprocessing, x: np.ndarray) -> np.ndarray:
    import openvino as ov
    from openvino.preprocess import PrePostProcessor

    parameter = ov.opset8.parameter(SHAPE, ov.Type.f32, name="x")
    network = ov.Model([ov.opset8.result(parameter)], [parameter], "identity")
    ppp = PrePostProcessor(network)
    step = ppp.input()
    step.tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NCHW"))
    step.model().set_layout(ov.Layout("NCHW"))
    step.preprocess().convert_element_type(ov.Type.f32)
    add_contract_steps(step.preprocess(), pre)
    compiled = ov.Core().compile_model(ppp.build(), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return compiled([x[None]])[0]


@pytest.mark.parametrize("pre", CONTRACTS, ids=["default", "mtcnn", "imagenet_bgr", "identity", "mean_only"])
def test_the_four_uses_of_the_contract_agree(pre, tmp_path):
    x = frame()
    reference = frame_to_model_input(x, pre)  # the verifier's reference
    written = x.astype(np.float64)[list(pre.channel_order)]  # the formula, by hand, once more
    by_hand = (written - np.array(pre.mean).reshape(3, 1, 1)) / np.array(pre.scale).reshape(3, 1, 1)
    # float32 arithmetic against float64: a few ulps of values up to ~255
    np.testing.assert_allclose(reference[0], by_hand, rtol=1e-6, atol=1e-5)
    for opset in (12, 13):  # Split takes its sizes as an attribute before 13, as an input from 13
        # the same float32 operations in the same order: equal up to rounding
        np.testing.assert_allclose(device_graph_output(pre, x, opset), reference, rtol=1e-6, atol=1e-6)
    # OpenVINO may fold divide into multiply-by-reciprocal: 1 ulp of float32 per value
    np.testing.assert_allclose(host_emulator_output(pre, x), reference, rtol=1e-6, atol=1e-5)
    archive = {"mean": list(pre.mean), "scale": list(pre.scale),
               "reverse_channels": pre.reverse_input_channels, "dai_type": "BGR888p"}
    read, _ = archive_preprocessing(archive, tmp_path / "m.tar.xz")
    assert read == pre
    # an RGB888p camera frame is the BGR frame reversed once: the flag flips, the contract is the same
    rgb_archive = {**archive, "reverse_channels": not pre.reverse_input_channels, "dai_type": "RGB888p"}
    assert archive_preprocessing(rgb_archive, tmp_path / "m.tar.xz") == (pre, "RGB888p")


def test_a_declaration_fills_what_was_not_given_and_a_conflict_is_one_line():
    declared = declared_contract(PNet)
    assert declared == Preprocessing((127.5,) * 3, (128.0,) * 3, True)
    all_defaults = frozenset({"mean", "scale", "reverse_input_channels"})
    assert resolve_contract(Preprocessing(), all_defaults, declared) == (declared, None)
    typed = Preprocessing(mean=(0, 0, 0))
    pre, warning = resolve_contract(typed, frozenset({"scale", "reverse_input_channels"}), declared)
    assert pre == Preprocessing((0, 0, 0), (128.0,) * 3, True)
    assert warning is not None and "\n" not in warning
    assert "--mean-values 0,0,0" in warning and "127.5" in warning and "--scale-values" not in warning
    same = Preprocessing((127.5,) * 3, (128.0,) * 3, True)
    assert resolve_contract(same, frozenset(), declared) == (same, None)  # agreeing values: nothing to say
    assert resolve_contract(typed, frozenset({"scale"}), None) == (typed, None)  # nothing declared


def test_a_declaration_that_cannot_be_read_is_a_user_error():
    from oakpipe.errors import UserError

    class Bad:
        oakpipe_preprocessing = {"means": [1, 2, 3]}

    with pytest.raises(UserError, match="means"):
        declared_contract(Bad)


@pytest.mark.toolchain
def test_mtcnn_pnet_declared_contract_converts_and_verifies_with_no_flags(tmp_path, caplog):
    import json

    import oakpipe
    from oakpipe.errors import VerificationError

    spec = f"{PNet.__module__.replace('.', '/')}.py:PNet"
    export = oakpipe.convert(spec, input_shape=(1, 3, 24, 24), out=tmp_path / "pnet")
    manifest = json.loads((export.folder / "manifest.json").read_text())
    assert manifest["preprocessing"]["mean"] == [127.5] * 3 and manifest["verified"] is True
    with caplog.at_level(logging.WARNING, logger="oakpipe"), pytest.raises(VerificationError):
        oakpipe.convert(spec, input_shape=(1, 3, 24, 24), out=tmp_path / "typed", mean_values="0,0,0")
    lines = [r.getMessage() for r in caplog.records if "oakpipe_preprocessing" in r.getMessage()]
    assert len(lines) == 1 and "--mean-values 0,0,0" in lines[0]


def test_precedence_typed_then_config_file_then_declaration_then_default(tmp_path):
    from oakpipe.cli import build_parser, convert_options

    def resolved(*argv: str):
        options = convert_options(build_parser().parse_args(["convert", "tests/fixtures/mtcnn_pnet.py:PNet", *argv]))
        return resolve_contract(options.preprocessing, options.contract_defaults, declared_contract(PNet))

    assert resolved() == (Preprocessing((127.5,) * 3, (128.0,) * 3, True), None)  # the declaration
    config = tmp_path / "oakpipe.yaml"
    config.write_text("mean_values: [100, 100, 100]\n")
    pre, warning = resolved("--config", str(config))
    assert pre == Preprocessing((100,) * 3, (128.0,) * 3, True)  # the file's mean, the declared rest
    assert warning is not None and "--mean-values 100,100,100" in warning
    pre, _ = resolved("--config", str(config), "--mean-values", "1,2,3", "--no-reverse-input-channels")
    assert pre == Preprocessing((1, 2, 3), (128.0,) * 3, False)  # typed beats the file and the declaration


@pytest.mark.toolchain
def test_a_factory_that_declares_on_its_module_is_built_once_and_its_contract_used(tmp_path):
    import json

    import oakpipe

    model_file = tmp_path / "factory.py"
    model_file.write_text(
        "from pathlib import Path\n"
        "import torch\nfrom torch import nn\n\n"
        "def make():\n"
        "    with open(Path(__file__).with_suffix('.calls'), 'a') as log:\n"
        "        log.write('x')\n"
        "    torch.manual_seed(0)\n"
        "    net = nn.Sequential(nn.Conv2d(3, 3, 1), nn.Sigmoid())\n"
        "    net.oakpipe_preprocessing = {'mean': [127.5] * 3, 'scale': [128.0] * 3}\n"
        "    return net\n")
    export = oakpipe.convert(f"{model_file}:make", input_shape=(1, 3, 32, 32), out=tmp_path / "out")
    manifest = json.loads((export.folder / "manifest.json").read_text())
    assert manifest["preprocessing"]["mean"] == [127.5] * 3 and manifest["verified"] is True
    assert (tmp_path / "factory.calls").read_text() == "x"  # read the declaration, exported, verified: one build
