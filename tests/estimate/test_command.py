"""``oakpipe estimate`` and the estimate a convert records."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from oakpipe.cli import main


def test_estimate_of_an_onnx_file_lists_the_ten_costliest_layers(tmp_path, capsys):
    net = nn.Sequential(*[nn.Conv2d(8 if i else 3, 8, 3, padding=1) for i in range(12)])
    path = tmp_path / "net.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net.eval(), (torch.rand(1, 3, 64, 64),), str(path), dynamo=False, opset_version=12)
    assert main(["estimate", str(path), "--shaves", "8"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("RVC2 estimate:") and "8 SHAVEs, 2 threads" in out[1]
    rows = [line for line in out if "/Conv" in line]
    assert len(rows) == 10 and all(" CMX " in r and "Conv" in r for r in rows)
    costs = [float(r.split()[0]) for r in rows]
    assert costs == sorted(costs, reverse=True)
    assert "recommended: 6 SHAVEs" in out[-1]


@pytest.mark.toolchain
def test_convert_records_the_estimate_and_estimate_reads_the_export(halve_export, capsys):
    recorded = halve_export.manifest["estimate"]
    assert recorded["shaves"] == halve_export.manifest["options"]["shaves"] and recorded["threads"] == 2
    assert recorded["rvc2_fps"] > 0 and recorded["rvc2_latency_ms"] > 0
    assert main(["estimate", str(halve_export.folder)]) == 0
    out = capsys.readouterr().out
    assert f"{recorded['rvc2_fps']:.1f} FPS" in out


def test_estimate_of_a_model_spec_exports_it_first(capsys):
    assert main(["estimate", "halve", "--input-shape", "1,3,64,64", "--shaves", "8"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("oakpipe estimate halve 1x3x64x64") and "/Div" in out


def test_bad_threads_are_the_users_to_fix(capsys):
    assert main(["estimate", "halve", "--threads", "0"]) == 2
    assert "--threads" in capsys.readouterr().err


def test_estimate_of_a_style_model_uses_the_default_style_as_convert_does(capsys):
    """`oakpipe estimate stylizer` with no --style takes the built-in style, like convert."""
    assert main(["estimate", "stylizer", "--input-shape", "1,3,64,64"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "oakpipe estimate stylizer 1x3x64x64" and out[1].startswith("RVC2 estimate:")
