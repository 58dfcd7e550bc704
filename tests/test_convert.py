"""The whole chain with the real compiler: halve, a small CNN, and a rejected op."""

import struct

import numpy as np
import pytest
from numpy.testing import assert_allclose

from oakpipe import ConvertOptions, convert
from oakpipe.blobfile import read_blob
from oakpipe.errors import UnsupportedModelError
from oakpipe.manifest import sha256_file
from oakpipe.preprocessing import Preprocessing
from oakpipe.progress import Progress
from tests.conftest import MODELS_FILE

pytestmark = pytest.mark.toolchain


def test_halve_writes_every_artifact_and_a_manifest(halve_export):
    for path in (halve_export.onnx, halve_export.device_onnx, halve_export.ir, halve_export.blob,
                 halve_export.archive, halve_export.folder / "manifest.json"):
        assert path.is_file(), path
    assert halve_export.blob.name == "halve_openvino_2021.4_6shave.blob"
    manifest = halve_export.manifest
    assert manifest["complete"] is True
    for stage in ("onnx", "device", "ir", "blob", "archive"):
        record = manifest["stages"][stage]
        assert record["seconds"] >= 0
        for name, digest in record["artifacts"].items():
            assert sha256_file(halve_export.folder / name) == digest
    assert manifest["versions"]["torch"] and manifest["versions"]["openvino"]


def test_depthai_reads_the_blob_as_the_camera_needs_it(tmp_path):
    export = convert(ConvertOptions(model="halve", shaves=4, out=tmp_path / "h4"))
    info = read_blob(export.blob)
    assert info.version == "VERSION_2021_4"
    assert (info.shaves, info.slices) == (4, 4)
    assert [(p.dims, p.data_type) for p in info.inputs] == [([256, 256, 3, 1], "U8F")]
    assert [(p.dims, p.data_type) for p in info.outputs] == [([256, 256, 3, 1], "FP16")]
    assert struct.unpack_from("<II", export.blob.read_bytes(), 60) == (2021, 4)


def test_two_cold_compiles_give_identical_blobs(tmp_path):
    first = convert(ConvertOptions(model="halve", out=tmp_path / "a"))
    second = convert(ConvertOptions(model="halve", out=tmp_path / "b", use_cache=False))
    assert first.blob.read_bytes() == second.blob.read_bytes()


def test_second_convert_is_fully_cached(halve_export):
    import io

    stream = io.StringIO()
    again = convert(ConvertOptions(model="halve", out=halve_export.folder), Progress(stream=stream))
    assert "(all cached)" in stream.getvalue()
    assert again.blob == halve_export.blob


def test_ir_on_the_host_halves_the_rgb_frame(halve_export):
    from oakpipe.stages.ir import compile_for_host

    frame = np.random.default_rng(0).integers(0, 256, (1, 3, 256, 256), dtype=np.uint8)  # BGR planar
    result = compile_for_host(halve_export.ir)(frame)[0]
    expected = frame[:, ::-1].astype(np.float32) / 255 / 2  # RGB on [0, 1], halved
    # FP16 weights and constants (1/255 is not exact in FP16): 2^-11 relative, on values <= 0.5.
    assert_allclose(result, expected, atol=5e-4)


def test_small_cnn_with_common_layers_converts(tmp_path):
    export = convert(ConvertOptions(model=f"{MODELS_FILE}:small_cnn", input_shape=(1, 3, 64, 64),
                                    preprocessing=Preprocessing(mean=(127.5,) * 3, scale=(127.5,) * 3),
                                    out=tmp_path / "cnn", verify=False))  # the model was not trained so
    info = read_blob(export.blob)
    assert info.inputs[0].dims == [64, 64, 3, 1] and info.outputs[0].data_type == "FP16"


def test_rejected_op_names_the_op_node_and_module_and_writes_no_blob(tmp_path):
    out = tmp_path / "cumsum"
    with pytest.raises(UnsupportedModelError) as caught:
        convert(ConvertOptions(model=f"{MODELS_FILE}:WithCumSum", input_shape=(1, 3, 32, 32), out=out))
    text = caught.value.one_line()
    assert "CumSum" in text and "accumulate" in text
    assert not list(out.glob("*.blob")) and not list(out.glob("*.tar.xz"))
    assert '"complete": false' in (out / "manifest.json").read_text()


def test_hardsigmoid_is_rewritten_so_mobilenet_v3_blocks_compile(tmp_path):
    import onnx

    export = convert(ConvertOptions(model=f"{MODELS_FILE}:HardswishNet", input_shape=(1, 3, 32, 32),
                                    out=tmp_path / "hs"))
    ops = {node.op_type for node in onnx.load(str(export.device_onnx)).graph.node}
    assert "HardSigmoid" not in ops and "Clip" in ops
    assert export.manifest["stages"]["device"]["info"]["rewrites"] == {"HardSigmoid -> Mul, Add, Clip": 2}
    assert export.manifest["verified"] is True  # the rewrite computes what PyTorch computes
