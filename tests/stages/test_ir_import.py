"""Starting the chain at a 2021.4 IR (v10), as a Model Optimizer user would."""

import subprocess

import numpy as np
import onnxruntime as ort
import pytest
import torch
from numpy.testing import assert_allclose

from oakpipe import ConvertOptions, convert
from oakpipe.blobfile import read_blob
from oakpipe.errors import UserError
from oakpipe.preprocessing import Preprocessing
from oakpipe.stages.ir import compile_for_host
from oakpipe.toolchain import toolchain_python
from tests.fixtures.models import small_cnn

pytestmark = pytest.mark.toolchain
IDENTITY = Preprocessing(mean=(0, 0, 0), scale=(1, 1, 1), reverse_input_channels=False)


@pytest.fixture(scope="module")
def ir_v10(tmp_path_factory):
    """An IR v10 written by the 2021.4 Inference Engine itself (what its Model Optimizer emits)."""
    folder = tmp_path_factory.mktemp("ir")
    onnx_path = folder / "net.onnx"
    torch.onnx.export(small_cnn().eval(), torch.rand(1, 3, 32, 32), str(onnx_path), dynamo=False, opset_version=12)
    script = ("from openvino.inference_engine import IECore; import sys; "
              "IECore().read_network(model=sys.argv[1]).serialize(sys.argv[2], sys.argv[3])")
    subprocess.run([str(toolchain_python()), "-c", script, str(onnx_path), str(folder / "net.xml"),
                    str(folder / "net.bin")], check=True, capture_output=True)
    assert 'version="10"' in (folder / "net.xml").read_text()[:200]
    return folder


def test_ir_converts_to_a_blob_and_a_host_ir(ir_v10, tmp_path):
    export = convert(ConvertOptions(model=str(ir_v10 / "net.xml"), input_shape=(1, 3, 32, 32),
                                    preprocessing=IDENTITY, out=tmp_path / "net"))
    info = read_blob(export.blob)
    assert info.inputs[0].dims == [32, 32, 3, 1] and info.inputs[0].data_type == "U8F"
    frame = np.random.default_rng(0).integers(0, 256, (1, 3, 32, 32), dtype=np.uint8)
    host = compile_for_host(export.ir)(frame)[0]
    session = ort.InferenceSession(str(ir_v10 / "net.onnx"), providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: frame.astype(np.float32)})[0]
    # Sigmoid outputs on [0, 1]; the host IR keeps FP16 weights: errors stay near 1e-3.
    assert_allclose(host, expected, atol=5e-3)


def test_ir_refuses_a_second_contract(ir_v10, tmp_path):
    with pytest.raises(UserError, match="preprocessing"):
        convert(ConvertOptions(model=str(ir_v10 / "net.xml"), input_shape=(1, 3, 32, 32), out=tmp_path / "x"))


def test_ir_of_another_size_says_which(ir_v10, tmp_path):
    with pytest.raises(UserError, match=r"takes input \[1, 3, 32, 32\]"):
        convert(ConvertOptions(model=str(ir_v10 / "net.xml"), preprocessing=IDENTITY, out=tmp_path / "y"))


def test_new_weights_in_the_bin_rebuild_the_blob(ir_v10, tmp_path):
    """Same .xml, retrained .bin: every stage after the device graph must see the change."""
    import shutil

    folder = tmp_path / "src"
    shutil.copytree(ir_v10, folder)
    options = ConvertOptions(model=str(folder / "net.xml"), input_shape=(1, 3, 32, 32), preprocessing=IDENTITY,
                             out=tmp_path / "net")
    first = convert(options)
    weights = bytearray((folder / "net.bin").read_bytes())
    weights[-4:] = np.float32(3.0).tobytes()  # change one stored value
    (folder / "net.bin").write_bytes(bytes(weights))
    second = convert(options)
    for stage in ("device", "ir", "blob"):
        assert first.manifest["stages"][stage]["key"] != second.manifest["stages"][stage]["key"], stage
