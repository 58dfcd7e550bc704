"""The MyriadX preflight: ops the 2021.4 compiler refuses are found by compiling one-node
probes, named with the PyTorch module, before any whole-model compile; the estimates come
from shapes alone."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from torch import nn

from oakpipe.errors import UnsupportedModelError
from oakpipe.options import ConvertOptions
from oakpipe.preprocessing import Preprocessing
from oakpipe.verify import preflight as pf
from oakpipe.verify import probe_cache
from tests.fixtures.models import WithCumSum, small_cnn


def device_graph(module: nn.Module, folder: Path, shape=(1, 3, 32, 32)) -> Path:
    from oakpipe.stages.device_graph import build_device_graph
    from oakpipe.stages.onnx_export import export_torch

    model_onnx, device_onnx = folder / "model.onnx", folder / "model_device.onnx"
    export_torch(module.eval(), ConvertOptions(model="halve", input_shape=shape), model_onnx)
    build_device_graph(model_onnx, Preprocessing(), device_onnx)
    return device_onnx


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A private verdict cache, so every test starts cold and leaves the shared one alone."""
    path = tmp_path / "probe_cache.json"
    monkeypatch.setattr(probe_cache, "cache_path", lambda: path)
    return path


class AtanBlock(nn.Module):
    def forward(self, x):
        return torch.atan(x)


class SignBlock(nn.Module):
    def forward(self, x):
        return torch.sign(x - 0.5)


class ZeroCorner(nn.Module):
    def forward(self, x):
        y = x.clone()
        y[:, :, 0:4, 0:4] = 0  # exports as ScatterND
        return y


class Wrapped(nn.Module):
    """conv -> <block under test> -> conv, with the block a named submodule."""

    def __init__(self, name: str, block: nn.Module) -> None:
        super().__init__()
        self.first = nn.Conv2d(3, 4, 3, padding=1)
        self.add_module(name, block)
        self.block_name = name
        self.last = nn.Conv2d(4, 3, 1)

    def forward(self, x):
        return self.last(getattr(self, self.block_name)(self.first(x)))


REJECTED = {
    "CumSum": (WithCumSum, "accumulate"),
    "Atan": (lambda: Wrapped("angle", AtanBlock()), "angle"),
    "Sign": (lambda: Wrapped("polarity", SignBlock()), "polarity"),
    "ScatterND": (lambda: Wrapped("mask_corner", ZeroCorner()), "mask_corner"),
}


@pytest.mark.toolchain
@pytest.mark.parametrize("op_type", sorted(REJECTED))
def test_rejected_op_is_named_with_its_module(op_type, tmp_path, cache):
    make, module = REJECTED[op_type]
    report = pf.preflight(device_graph(make(), tmp_path))
    assert not report.ok
    [problem] = report.problems
    assert (problem.kind, problem.op_type, problem.module) == ("unsupported_op", op_type, module)
    assert problem.node.startswith(f"/{module}/")
    with pytest.raises(UnsupportedModelError) as caught:
        pf.raise_if_rejected(report)
    line = caught.value.one_line()
    assert op_type in line and problem.node in line and f"PyTorch module {module}" in line
    assert "\n" not in line


def stylizer_module() -> nn.Module:
    from oakpipe.models.stylizer import build_stylizer, load_default_style

    return build_stylizer(load_default_style(), 1.0, (128, 128))


ACCEPTED = {
    "halve": (lambda: __import__("oakpipe.models.halve", fromlist=["Halve"]).Halve(), (1, 3, 32, 32)),
    "small_cnn": (small_cnn, (1, 3, 32, 32)),
    "stylizer": (stylizer_module, (1, 3, 128, 128)),
}


@pytest.mark.toolchain
@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_models_the_compiler_takes_pass(name, tmp_path, cache):
    make, shape = ACCEPTED[name]
    report = pf.preflight(device_graph(make(), tmp_path, shape))
    assert report.ok, report.lines()
    assert not report.inconclusive and not report.warnings
    assert report.stats.compiled == report.stats.probes > 0
    pf.raise_if_rejected(report)  # no exception


@pytest.mark.toolchain
def test_second_preflight_compiles_nothing(tmp_path, cache, monkeypatch):
    device = device_graph(small_cnn(), tmp_path)
    first = pf.preflight(device)
    assert first.stats.compiled == first.stats.probes and cache.exists()

    def no_compiler(*args, **kwargs):
        raise AssertionError("the compiler was called although every verdict is cached")

    monkeypatch.setattr("oakpipe.toolchain.compile_probe_batch", no_compiler)
    second = pf.preflight(device)
    assert second.ok and second.stats.compiled == 0 and second.stats.cached == first.stats.probes
    assert second.to_dict()["problems"] == first.to_dict()["problems"] == []


@pytest.mark.toolchain
def test_rejections_are_cached_too(tmp_path, cache, monkeypatch):
    device = device_graph(WithCumSum(), tmp_path)
    first = pf.preflight(device)
    monkeypatch.setattr("oakpipe.toolchain.compile_probe_batch", lambda *a, **k: pytest.fail("compiled"))
    second = pf.preflight(device)
    assert [p.line() for p in second.problems] == [p.line() for p in first.problems] != []


@pytest.mark.toolchain
def test_dynamic_dims_are_problems(tmp_path, cache):
    path = tmp_path / "dynamic.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(small_cnn().eval(), (torch.rand(1, 3, 32, 32),), str(path), dynamo=False, opset_version=12,
                          input_names=["input"], dynamic_axes={"input": {2: "height", 3: "width"}})
    report = pf.preflight(path)
    kinds = {p.kind for p in report.problems}
    assert kinds == {"dynamic_shape"}
    assert "height" in report.problems[0].message and "'input'" in report.problems[0].message
    with pytest.raises(UnsupportedModelError, match="dynamic dims"):
        pf.raise_if_rejected(report)


@pytest.mark.toolchain
def test_data_dependent_shape_and_int64_input_are_problems(tmp_path, cache):
    value = helper.make_tensor_value_info
    graph = helper.make_graph(
        [helper.make_node("Cast", ["ids"], ["x"], to=TensorProto.FLOAT, name="/embed/Cast"),
         helper.make_node("NonZero", ["x"], ["where"], name="/select/NonZero")],
        "g", [value("ids", TensorProto.INT64, [1, 3, 8, 8])], [value("where", TensorProto.INT64, None)])
    path = tmp_path / "int64.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)], ir_version=7), str(path))
    report = pf.preflight(path)
    by_kind = {p.kind: p for p in report.problems}
    assert "INT64" in by_kind["input_type"].message
    assert (by_kind["dynamic_shape"].op_type, by_kind["dynamic_shape"].module) == ("NonZero", "select")


@pytest.mark.toolchain
def test_boolean_plumbing_is_not_a_false_rejection(tmp_path, cache):
    class Masks(nn.Module):
        def forward(self, x):
            return (~(x > 0.5)).float() + ((x > 0.2) & (x < 0.7)).float()

    report = pf.preflight(device_graph(Masks(), tmp_path))
    assert report.ok, report.lines()


# --- estimates: shape inference only, no compiler -------------------------------------

class KnownConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, stride=2, padding=1)  # 1x3x32x32 -> 1x16x16x16
        self.grouped = nn.Conv2d(16, 32, 3, padding=1, groups=4)  # -> 1x32x16x16
        self.up = nn.ConvTranspose2d(32, 16, 2, stride=2)  # -> 1x16x32x32

    def forward(self, x):
        return self.up(self.grouped(self.conv(x)))


def test_estimates_of_known_convs(tmp_path):
    path = tmp_path / "known.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(KnownConv().eval(), (torch.rand(1, 3, 32, 32),), str(path), dynamo=False, opset_version=12)
    e = pf.estimate(path)
    conv = (16 * 16 * 16) * 3 * 3 * 3  # output elements * Cin * kH * kW
    grouped = (32 * 16 * 16) * (16 // 4) * 3 * 3
    transposed = (32 * 16 * 16) * 16 * 2 * 2  # input elements * Cout * kH * kW
    assert e.macs == conv + grouped + transposed == 110592 + 294912 + 524288
    params = (16 * 3 * 9 + 16) + (32 * 4 * 9 + 32) + (32 * 16 * 4 + 16)
    assert e.params == params and e.fp16_weight_bytes == 2 * params
    assert e.largest_activation_bytes == 16 * 32 * 32 * 2  # the ConvTranspose output, FP16
    assert e.largest_activation_shape == (1, 16, 32, 32)
    assert e.fits_cmx and e.fits_ddr
    low, high = e.estimated_fps  # the RVC2 model's band around its estimate, at the convert's 6 SHAVEs
    assert low < e.rvc2["rvc2_fps"] < high and e.rvc2["shaves"] == 6 and not e.rvc2["unknown_ops"]
    assert not pf.estimate_warnings(e)


def test_big_model_warns_below_10_fps_and_spills_cmx(tmp_path):
    path = tmp_path / "big.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(nn.Conv2d(3, 128, 3, padding=1).eval(), (torch.rand(1, 3, 256, 256),), str(path),
                          dynamo=False, opset_version=12)
    big = onnx.load(str(path))
    # chain the same 128->128 conv four times: 4 * 128*128*9 * 256*256 MACs = 38.7 GMAC
    weight = onnx.numpy_helper.from_array(np.zeros((128, 128, 3, 3), np.float32), "w128")
    previous = big.graph.output[0].name
    for i in range(4):
        big.graph.node.append(helper.make_node("Conv", [previous, "w128"], [f"c{i}"], pads=[1, 1, 1, 1],
                                               kernel_shape=[3, 3]))
        previous = f"c{i}"
    big.graph.initializer.append(weight)
    big.graph.output[0].name = previous
    onnx.save(big, str(path))
    e = pf.estimate(path)
    assert e.macs == 128 * 256 * 256 * 3 * 9 + 4 * 128 * 256 * 256 * 128 * 9
    warning = pf.estimate_warnings(e)
    assert any("likely below 10 FPS" in w and "published" in w for w in warning)
    assert not e.fits_cmx and any("exceeds the 2.50 MiB CMX" in w for w in warning)


FAKE_WORKER = '''
import json, os, signal, sys
request = json.load(open(sys.argv[1]))
for i, probe in enumerate(request["probes"]):
    name = os.path.basename(probe["onnx"])
    if name.startswith("crash"):
        os.kill(os.getpid(), signal.SIGSEGV)
    print("OAKPIPE_PROBE " + json.dumps({"index": i, "ok": not name.startswith("bad"), "message": "no"}), flush=True)
print("OAKPIPE_RESULT " + json.dumps({"ok": True}))
'''


def test_a_compiler_crash_on_one_probe_spares_the_others(tmp_path, monkeypatch):
    """A probe that kills the worker is reported as a crash; the rest go to a fresh worker."""
    import sys

    from oakpipe import toolchain

    worker = tmp_path / "fake_worker.py"
    worker.write_text(FAKE_WORKER)
    monkeypatch.setattr(toolchain, "WORKER", worker)
    monkeypatch.setattr(toolchain, "toolchain_python", lambda: Path(sys.executable))
    names = ["a.onnx", "crash.onnx", "bad.onnx", "b.onnx"]
    verdicts = toolchain.compile_probe_batch([tmp_path / n for n in names])
    assert [v["ok"] for v in verdicts] == [True, False, False, True]
    assert verdicts[1]["crashed"] and "crashed" in verdicts[1]["message"]
    assert not verdicts[2].get("crashed")


AGREES_WITH_WHOLE_COMPILE = {  # model -> does the whole device graph compile (measured)
    "Unfold": True,  # (128, 8, 2, 2) patches: a leading dim that is not the batch
    "TokenLayerNorm": True,  # LayerNorm (MVN) on a 3D tensor
    "LayerNormHead": False,  # LayerNorm (MVN) on a rank-2 tensor: "only 3D and 4D supported"
    "TinyViT": True,  # TransformerEncoderLayer: attention in its math form at opset 12
    "UnflattenHeads": True,  # F.scaled_dot_product_attention with unflatten, as timm writes it
    "ChannelsLastMLP": True,  # Linear over 256 rows, rewritten as 1x1 Convs
}


@pytest.mark.toolchain
@pytest.mark.parametrize("name", sorted(AGREES_WITH_WHOLE_COMPILE))
def test_preflight_agrees_with_the_whole_compile(name, tmp_path, cache):
    from oakpipe import toolchain
    from tests.fixtures import verdict_models

    device = device_graph(getattr(verdict_models, name)(), tmp_path)
    report = pf.preflight(device)
    whole = toolchain.compile_onnx_to_blob(device, tmp_path / "whole.blob", 6)
    assert whole["ok"] is AGREES_WITH_WHOLE_COMPILE[name], whole.get("message")
    assert report.ok is whole["ok"], report.lines()
    if not report.ok:
        [problem] = report.problems
        assert problem.module == "norm" and "MVN" in problem.message


def test_probe_inputs_are_batch_one_images():
    assert pf.adapter_shape([1, 8, 4, 4]) is None  # fed as it is
    assert pf.adapter_shape([128, 8, 2, 2]) == [1, 1024, 2, 2]
    assert pf.adapter_shape([1, 1280]) == [1, 1, 1, 1280]
    assert pf.adapter_shape([1, 197, 192]) == [1, 1, 197, 192]
    assert pf.adapter_shape([2, 3, 4, 5, 6]) == [1, 24, 5, 6]


def test_a_probe_whose_adapter_fails_is_inconclusive_not_a_rejection(tmp_path, cache, monkeypatch):
    """When the compiler refuses the Reshape that feeds a probe its real shape, the node's
    own verdict is unknown: a note, never a rejection. (The compiler is replaced by one that
    refuses exactly those adapters; the real one takes them.)"""
    from tests.fixtures.verdict_models import Unfold

    def refuse_adapters(paths, shaves=6, timeout=600):
        verdicts = []
        for path in paths:
            names = [n.name for n in onnx.load(str(path)).graph.node]
            adapted = any(n.startswith("probe_adapter") for n in names)
            verdicts.append({"ok": not adapted, "message": "Reshape: Requested output shape is incompatible"})
        return verdicts

    monkeypatch.setattr("oakpipe.toolchain.compile_probe_batch", refuse_adapters)
    report = pf.preflight(device_graph(Unfold(), tmp_path))
    assert report.ok, report.lines()
    assert any("Sigmoid" in note and "left to the whole-model compile" in note for note in report.inconclusive)


@pytest.mark.toolchain
def test_a_compile_past_its_budget_is_the_models_limit_not_a_toolchain_fault(tmp_path, cache):
    """A budget no compile can meet (the worker's Python alone takes longer to start)."""
    from oakpipe.stages.blob import build_blob

    device = device_graph(small_cnn(), tmp_path)
    with pytest.raises(UnsupportedModelError) as caught:
        pf.preflight(device, timeout=0.001)
    assert caught.value.exit_code == 3
    assert "did not finish in 0.001 s" in caught.value.message and "Conv head" in caught.value.message
    with pytest.raises(UnsupportedModelError, match=r"did not finish in 0.001 s on this model \(its largest layers: "
                                                    r"Conv (mid|head|stem)"):
        build_blob(device, tmp_path / "m.blob", 6, timeout=0.001)
    assert not (tmp_path / "m.blob").exists()
