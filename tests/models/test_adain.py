"""AdaIN: published weight layout, loader errors, shapes, export. Random weights only
(the published files cannot be downloaded here), small sizes."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch

from oakpipe.models.adain import (
    ENCODER_DEPTH,
    build_adain,
    channel_mean_std,
    load_adain_weights,
    make_decoder,
    make_encoder,
)

# Conv indices of naoto0804/pytorch-AdaIN net.py: `vgg` (all 53 modules) and `decoder`.
PUBLISHED_VGG_CONVS = [0, 2, 5, 9, 12, 16, 19, 22, 25, 29, 32, 35, 38, 42, 45, 48, 51]
PUBLISHED_DECODER_CONVS = [1, 5, 8, 11, 14, 18, 21, 25, 28]


def _published_vgg_state() -> dict[str, torch.Tensor]:
    """A random state dict shaped like the published vgg_normalised.pth (all 19 layers)."""
    channels = [3, 64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512]
    state, c_in = {}, 3
    for i, (idx, c_out) in enumerate(zip(PUBLISHED_VGG_CONVS, channels)):
        k = 1 if i == 0 else 3
        state[f"{idx}.weight"] = torch.randn(c_out, c_in, k, k) * (2.0 / (c_in * k * k)) ** 0.5
        state[f"{idx}.bias"] = torch.zeros(c_out)
        c_in = c_out
    return state


def _published_decoder_state() -> dict[str, torch.Tensor]:
    pairs = [(512, 256), (256, 256), (256, 256), (256, 256), (256, 128), (128, 128),
             (128, 64), (64, 64), (64, 3)]
    state = {}
    for idx, (c_in, c_out) in zip(PUBLISHED_DECODER_CONVS, pairs):
        state[f"{idx}.weight"] = torch.randn(c_out, c_in, 3, 3) * (2.0 / (c_in * 9)) ** 0.5
        state[f"{idx}.bias"] = torch.zeros(c_out)
    return state


@pytest.fixture()
def weights_dir(tmp_path: Path) -> Path:
    torch.save(_published_vgg_state(), tmp_path / "vgg_normalised.pth")
    torch.save(_published_decoder_state(), tmp_path / "decoder.pth")
    return tmp_path


def test_layout_matches_published_indices() -> None:
    enc_keys = {k for k in make_encoder().state_dict() if k.endswith("weight")}
    dec_keys = {k for k in make_decoder().state_dict() if k.endswith("weight")}
    assert enc_keys == {f"{i}.weight" for i in PUBLISHED_VGG_CONVS if i < ENCODER_DEPTH}
    assert dec_keys == {f"{i}.weight" for i in PUBLISHED_DECODER_CONVS}


def test_loads_published_layout_and_ignores_vgg_tail(weights_dir: Path) -> None:
    encoder, decoder = make_encoder(), make_decoder()
    load_adain_weights(encoder, decoder, weights_dir)
    published = torch.load(weights_dir / "vgg_normalised.pth", weights_only=True)
    assert torch.equal(encoder[29].weight, published["29.weight"])  # conv4_1
    assert torch.equal(decoder[28].bias, torch.load(weights_dir / "decoder.pth", weights_only=True)["28.bias"])


def test_wrong_format_names_missing_and_unexpected_keys(tmp_path: Path) -> None:
    state = _published_vgg_state()
    state["features.0.weight"] = state.pop("2.weight")   # a torchvision-style name
    state["5.bias"] = torch.zeros(7)                      # wrong shape
    torch.save(state, tmp_path / "vgg_normalised.pth")
    torch.save(_published_decoder_state(), tmp_path / "decoder.pth")
    with pytest.raises(ValueError) as err:
        load_adain_weights(make_encoder(), make_decoder(), tmp_path)
    msg = str(err.value)
    assert "missing keys: 2.weight" in msg
    assert "unexpected keys: features.0.weight" in msg
    assert "5.bias: file (7,) vs model (64,)" in msg
    assert "32.weight" not in msg  # the VGG tail is accepted silently


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="vgg_normalised.pth"):
        load_adain_weights(make_encoder(), make_decoder(), tmp_path)


def test_channel_stats_match_reference_formula() -> None:
    feat = torch.randn(1, 8, 6, 5) * 300.0 + 50.0  # relu4_1-like magnitudes
    mean, std = channel_mean_std(feat)
    flat = feat.view(1, 8, -1)                       # pytorch-AdaIN calc_mean_std
    ref_std = (flat.var(dim=2) + 1e-5).sqrt().view(1, 8, 1, 1)
    torch.testing.assert_close(mean, flat.mean(dim=2).view(1, 8, 1, 1))
    torch.testing.assert_close(std, ref_std, rtol=1e-5, atol=1e-4)


def test_build_shapes_and_export(weights_dir: Path) -> None:
    style = np.random.default_rng(0).random((40, 56, 3), dtype=np.float32)
    model = build_adain(style, alpha=0.6, weights_dir=weights_dir, input_size=(64, 48))
    x = torch.rand(1, 3, 64, 48)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (1, 3, 64, 48) and float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert model.style_mean.shape == (1, 512, 1, 1)
    onnxruntime = pytest.importorskip("onnxruntime")
    buf = io.BytesIO()
    torch.onnx.export(model, (x,), buf, opset_version=12, dynamo=False,
                      input_names=["image"], output_names=["out"])
    sess = onnxruntime.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {"image": x.numpy()})[0], y.numpy(), atol=1e-4)


def test_rejects_sizes_not_multiple_of_8() -> None:
    with pytest.raises(ValueError, match="multiple of 8"):
        build_adain(np.zeros((8, 8, 3), np.float32), 1.0, None, (60, 64))
