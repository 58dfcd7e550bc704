"""Verdicts users can trust: the minimal cases of false failures seen on real architectures."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from oakpipe import ConvertOptions, convert
from oakpipe.stages.onnx_export import export_torch
from tests.fixtures.verdict_models import DictBatchNorm, DictPooledBatchNorm, Unfold

VERDICT_MODELS = Path(__file__).parents[1] / "fixtures" / "verdict_models.py"
SHAPE = (1, 3, 32, 32)


def options(tmp_path, model, **kwargs):
    return ConvertOptions(model=f"{VERDICT_MODELS}:{model}", input_shape=SHAPE, out=tmp_path / model, **kwargs)


@pytest.mark.parametrize("model", [DictBatchNorm, DictPooledBatchNorm], ids=["bn", "pooled-bn"])
def test_export_leaves_the_users_training_flags_as_they_were(tmp_path, model):
    net = model()
    net.train()
    net.head.eval()  # a mixed state must come back mixed
    before = {name: m.training for name, m in net.named_modules()}
    export_torch(net, ConvertOptions(model="halve", input_shape=SHAPE), tmp_path / "m.onnx")
    assert {name: m.training for name, m in net.named_modules()} == before


@pytest.mark.toolchain
@pytest.mark.parametrize("model", ["DictBatchNorm", "DictPooledBatchNorm"])
def test_dict_models_with_batchnorm_verify(tmp_path, model):
    export = convert(options(tmp_path, model))
    report = json.loads((export.folder / "verify.json").read_text())
    assert report["passed"], report["stages"]


@pytest.mark.toolchain
def test_api_module_keeps_its_mode_after_convert_and_verify(tmp_path):
    net = DictPooledBatchNorm().eval()
    convert(net, name="pooled", input_shape=SHAPE, out=tmp_path / "pooled")
    assert not any(m.training for m in net.modules())
    net.train()
    convert(net, name="pooled", input_shape=SHAPE, out=tmp_path / "pooled2", use_cache=False)
    assert all(m.training for m in net.modules())


def test_unfold_fixture_is_batch_one_with_a_patch_leading_dim():
    y = Unfold()(torch.rand(SHAPE))
    assert tuple(y.shape) == (1, 3, 32, 32)


def test_module_names_read_as_pytorch_prints_them(tmp_path):
    """The exporter writes a container's children with the parent's name in front."""
    import onnx
    from torch import nn

    from oakpipe.stages.blob import pytorch_module_of

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Sequential(nn.Conv2d(3, 3, 1), nn.ReLU())

        def forward(self, x):
            return self.conv(x)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(Block(), Block())

        def forward(self, x):
            return self.features(x)

    net = Net().eval()
    export_torch(net, ConvertOptions(model="halve", input_shape=SHAPE), tmp_path / "m.onnx")
    modules = {pytorch_module_of(n.name) for n in onnx.load(str(tmp_path / "m.onnx")).graph.node}
    assert "features.1.conv.0" in modules  # the Conv (the ReLU is fused into it or named alike)
    assert modules <= {name for name, _ in net.named_modules()}


@pytest.mark.toolchain
def test_underflow_alone_is_a_warning_naming_the_module(tmp_path):
    export = convert(options(tmp_path, "LayerScaled"))
    report = json.loads((export.folder / "verify.json").read_text())
    assert report["passed"]
    assert any("underflow" in flag and "(FP16 overflow" not in flag for flag in report["fp16_flags"])
    table = (export.folder / "verify.md").read_text()
    assert "0 overflow" in table and "warning: " in table and "leave the FP16 range" not in table


def test_a_stage_never_fails_on_what_the_more_approximate_fp16_stage_accepts():
    from oakpipe.verify.core import Tolerances, parse_tolerances
    from oakpipe.verify.metrics import compare

    ref = np.linspace(0, 1, 3 * 32 * 32, dtype=np.float32).reshape(1, 3, 32, 32)
    for tolerances in (Tolerances(), parse_tolerances("fp16=30"), parse_tolerances("ir=60,fp16=0.05")):
        for noise in (1e-4, 1e-3, 5e-3, 1e-2, 3e-2, 0.1):
            for shape in ((1, 3, 32, 32), (1, 10)):
                r = ref.reshape(-1)[: int(np.prod(shape))].reshape(shape)
                result = compare(r, r + noise * np.cos(np.arange(r.size)).reshape(shape))
                if tolerances.passes("fp16", result):
                    assert tolerances.passes("ir", result), (tolerances, noise, shape)


@pytest.mark.toolchain
def test_a_chaotic_model_is_not_blamed_on_the_export(tmp_path):
    from oakpipe.errors import VerificationError

    with pytest.raises(VerificationError) as caught:  # FP16 cannot follow it either, rightly
        convert(options(tmp_path, "Chaotic"))
    report = json.loads((tmp_path / "Chaotic" / "verify.json").read_text())
    onnx_stage = next(s for s in report["stages"] if s["stage"] == "onnx")
    assert onnx_stage["passed"] and "FP64" in onnx_stage["note"]
    assert report["first_failure"] in ("ir", "fp16") and "ONNX export" not in caught.value.message


@pytest.mark.toolchain
def test_an_onnx_model_is_blamed_on_a_node_not_on_a_stage(tmp_path):
    from oakpipe.errors import VerificationError
    from tests.fixtures.verdict_models import Chaotic

    path = tmp_path / "chaotic.onnx"
    torch.onnx.export(Chaotic().eval(), torch.rand(SHAPE), str(path), dynamo=False, opset_version=12)
    with pytest.raises(VerificationError):
        convert(ConvertOptions(model=str(path), input_shape=SHAPE, out=tmp_path / "c"))
    report = json.loads((tmp_path / "c" / "verify.json").read_text())
    assert report["first_failure"] in ("ir", "fp16")
    assert report["blame"].startswith("ONNX node /") and "stage" not in report["blame"]


def test_export_name_comes_from_the_class_or_the_file_not_the_factory(tmp_path):
    from oakpipe.models.source import parse_model_spec

    path = tmp_path / "segmenter.py"
    path.write_text("import torch\n\nclass UNet(torch.nn.Module):\n    pass\n\ndef make():\n    return UNet()\n")
    assert parse_model_spec(f"{path}:make").name == "segmenter"
    assert parse_model_spec(f"{path}:UNet").name == "unet"


@pytest.mark.toolchain
def test_cli_compile_timeout_is_an_unsupported_model_exit_3(tmp_path):
    """A budget no compile can meet: the CLI says the compiler did not finish (exit 3), not
    that the toolchain is broken (exit 5), and writes no blob. (The preflight or, when its
    verdicts are cached, the blob compile runs out: both say so in the same words.)"""
    from tests.test_cli import assert_one_line_error, oakpipe

    proc = oakpipe("convert", "halve", "--input-shape", "1,3,32,32", "--compile-timeout", "0.001",
                   "--no-cache", "--out", str(tmp_path / "h"), cwd=tmp_path)
    assert_one_line_error(proc, 3, "did not finish in 0.001 s", "--compile-timeout")
    assert not list(tmp_path.rglob("*.blob"))

