"""AdaIN style transfer, as published, laid out so the public PyTorch weights load.

Huang and Belongie, "Arbitrary Style Transfer in Real-time with Adaptive Instance
Normalization", ICCV 2017, arXiv:1703.06868.

Layout follows naoto0804/pytorch-AdaIN (`net.py`), whose `vgg_normalised.pth` and
`decoder.pth` are state dicts of two nn.Sequential with integer keys:
- encoder: the "normalised" VGG-19 converted from Lua Torch. Module 0 is a 1x1 conv that
  maps RGB in [0,1] to the Caffe input (BGR, 0..255, mean subtracted), so the network
  takes RGB [0,1] (torchvision ToTensor) directly. AdaIN uses modules 0..30 (up to
  relu4_1); the file holds all 53 (up to relu5_4), and the extra keys are accepted.
- decoder: the mirror of the encoder up to relu4_1, nearest x2 upsampling, reflection
  padding, no normalisation. It outputs RGB in [0,1]-ish (the reference clamps when saving).

About 7.0 M parameters and 31.6 GMAC at 256x256: too big for 25 FPS on a MyriadX, but
it is the reference model; see stylizer.py for the camera-sized network.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ENCODER_FILES = ("vgg_normalised.pth", "vgg_normalized.pth")  # published name first
DECODER_FILE = "decoder.pth"
ENCODER_DEPTH = 31  # modules 0..30 of the published VGG: up to relu4_1
# Conv indices of the published VGG beyond relu4_1 (relu4_2 .. relu5_4): keys we ignore.
_VGG_TAIL_CONVS = frozenset({32, 35, 38, 42, 45, 48, 51})
_STYLE_SIZE = 512  # test.py's default: the style's shorter side is resized to 512
_EPS = 1e-5        # pytorch-AdaIN's calc_mean_std epsilon (added to the variance)
# Statistics are computed on (x - mean) * _STAT_SCALE so that squares stay below
# FP16's 65504 for |x - mean| up to 16000: relu4_1 of the 0..255-scaled VGG reaches
# hundreds to thousands, and a square of 300 already exceeds 65504.
_STAT_SCALE = 1.0 / 64.0


def _conv(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.ReflectionPad2d((1, 1, 1, 1)), nn.Conv2d(c_in, c_out, (3, 3)), nn.ReLU()]


def _pool() -> nn.Module:
    return nn.MaxPool2d((2, 2), (2, 2), (0, 0), ceil_mode=True)


def make_encoder() -> nn.Sequential:
    """`net.vgg[:31]` with the same indices: RGB [N,3,H,W] in [0,1] -> relu4_1
    [N,512,ceil(H/8),ceil(W/8)]."""
    layers: list[nn.Module] = [nn.Conv2d(3, 3, (1, 1))]       # 0: RGB[0,1] -> BGR-mean
    layers += _conv(3, 64)                                     # 1-3: relu1_1
    layers += _conv(64, 64) + [_pool()]                        # 4-7
    layers += _conv(64, 128)                                   # 8-10: relu2_1
    layers += _conv(128, 128) + [_pool()]                      # 11-14
    layers += _conv(128, 256)                                  # 15-17: relu3_1
    layers += _conv(256, 256) + _conv(256, 256) + _conv(256, 256) + [_pool()]  # 18-27
    layers += _conv(256, 512)                                  # 28-30: relu4_1
    assert len(layers) == ENCODER_DEPTH
    return nn.Sequential(*layers)


class NearestUpsample2x(nn.Module):
    """Nearest x2 upsampling. With `size` set, the output size is a constant, so the
    ONNX export is a Resize with constant sizes (no Shape/Floor subgraph that MYRIAD
    rejects); without it (eager use at any size) it doubles the input's size."""

    def __init__(self) -> None:
        super().__init__()
        self.size: tuple[int, int] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = self.size if self.size is not None else (x.shape[-2] * 2, x.shape[-1] * 2)
        return F.interpolate(x, size=size, mode="nearest")


def make_decoder() -> nn.Sequential:
    """`net.decoder` with the same indices: [N,512,h,w] -> RGB [N,3,8h,8w]."""
    layers: list[nn.Module] = _conv(512, 256) + [NearestUpsample2x()]          # 0-3
    layers += _conv(256, 256) + _conv(256, 256) + _conv(256, 256)            # 4-12
    layers += _conv(256, 128) + [NearestUpsample2x()]                         # 13-16
    layers += _conv(128, 128) + _conv(128, 64) + [NearestUpsample2x()]        # 17-23
    layers += _conv(64, 64)                                                   # 24-26
    layers += [nn.ReflectionPad2d((1, 1, 1, 1)), nn.Conv2d(64, 3, (3, 3))]   # 27-28
    assert len(layers) == 29
    return nn.Sequential(*layers)


def set_static_sizes(decoder: nn.Sequential, input_size: tuple[int, int]) -> None:
    """Fix every upsampling's output size for an (H, W) input (multiples of 8)."""
    h, w = input_size
    ups = [m for m in decoder if isinstance(m, NearestUpsample2x)]
    for i, up in enumerate(ups):   # outputs H/4, H/2, H
        factor = 2 ** (len(ups) - 1 - i)
        up.size = (h // factor, w // factor)


# --------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------

def _is_vgg_tail(key: str) -> bool:
    """True for keys of the published VGG's layers after relu4_1, e.g. '32.weight'."""
    m = re.fullmatch(r"(\d+)\.(weight|bias)", key)
    return m is not None and int(m.group(1)) in _VGG_TAIL_CONVS


def _check_state(module: nn.Module, state: dict[str, torch.Tensor], path: Path,
                 allow_extra=lambda key: False) -> dict[str, torch.Tensor]:
    """Keys and shapes of `state` against `module`; one ValueError that lists everything."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state), key=_natural)
    unexpected = sorted((k for k in set(state) - set(expected) if not allow_extra(k)), key=_natural)
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
              for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or shapes:
        parts = [f"{path} does not match the published AdaIN layout"]
        if missing:
            parts.append(f"missing keys: {', '.join(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {', '.join(unexpected)}")
        if shapes:
            parts.append(f"shape mismatches: {'; '.join(shapes)}")
        raise ValueError("\n  ".join(parts))
    return {k: state[k] for k in expected}


def _natural(key: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", key))


def _load_state(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not a state dict (got {type(state).__name__})")
    return state


def load_adain_weights(encoder: nn.Module, decoder: nn.Module, weights_dir: Path) -> None:
    """Load the published `vgg_normalised.pth` and `decoder.pth` from `weights_dir`.

    Raises FileNotFoundError if a file is absent and ValueError, listing missing and
    unexpected keys and shape mismatches, if a file has another layout. The VGG file's
    layers after relu4_1 are accepted and ignored."""
    weights_dir = Path(weights_dir)
    enc_path = next((weights_dir / n for n in ENCODER_FILES if (weights_dir / n).is_file()), None)
    dec_path = weights_dir / DECODER_FILE
    if enc_path is None:
        raise FileNotFoundError(f"{weights_dir / ENCODER_FILES[0]} not found")
    if not dec_path.is_file():
        raise FileNotFoundError(f"{dec_path} not found")
    enc_state = _check_state(encoder, _load_state(enc_path), enc_path, allow_extra=_is_vgg_tail)
    dec_state = _check_state(decoder, _load_state(dec_path), dec_path)
    encoder.load_state_dict(enc_state, strict=True)
    decoder.load_state_dict(dec_state, strict=True)


# --------------------------------------------------------------------------------------
# AdaIN
# --------------------------------------------------------------------------------------

def channel_mean_std(feat: torch.Tensor, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std over H, W: [N,C,H,W] -> ([N,C,1,1], [N,C,1,1]).

    Same values as pytorch-AdaIN's calc_mean_std (unbiased variance + 1e-5), computed
    FP16-safely: centre first, scale by 1/64, then a mean (global average pool) of
    squares, never a sum. n = H*W for the n/(n-1) correction: pass it as a Python int
    when exporting, so that it is a constant rather than a traced Shape computation."""
    if n is None:
        n = int(feat.shape[-2]) * int(feat.shape[-1])
    mean = F.adaptive_avg_pool2d(feat, 1)
    centred = (feat - mean) * _STAT_SCALE
    var_scaled = F.adaptive_avg_pool2d(centred * centred, 1) * (n / max(n - 1, 1))
    std = torch.sqrt(var_scaled + _EPS * _STAT_SCALE ** 2) / _STAT_SCALE
    return mean, std


def adain(content_feat: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor,
          n: int | None = None) -> torch.Tensor:
    """Eq. 8 of the paper: sigma(s) * (c - mu(c)) / sigma(c) + mu(s)."""
    mean, std = channel_mean_std(content_feat, n)
    return (content_feat - mean) / std * style_std + style_mean


class AdaINStylizer(nn.Module):
    """Content [1,3,H,W] RGB in [0,1] -> stylised [1,3,H,W] RGB, clamped to [0,1].

    The style's relu4_1 mean/std are buffers computed once on the host. alpha blends
    in feature space as the paper (Sec. 7) and pytorch-AdaIN's test.py do:
    t = alpha * AdaIN(f(c), s) + (1 - alpha) * f(c)."""

    def __init__(self, encoder: nn.Sequential, decoder: nn.Sequential,
                 style_mean: torch.Tensor, style_std: torch.Tensor, alpha: float,
                 input_size: tuple[int, int]) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.register_buffer("style_mean", style_mean.detach().clone())  # [1,512,1,1]
        self.register_buffer("style_std", style_std.detach().clone())    # [1,512,1,1]
        self.alpha = float(alpha)
        self.feat_n = -(-input_size[0] // 8) * -(-input_size[1] // 8)  # relu4_1 H*W

    def forward(self, content: torch.Tensor) -> torch.Tensor:
        feat = self.encoder(content)                                      # [1,512,H/8,W/8]
        t = adain(feat, self.style_mean, self.style_std, self.feat_n)  # type: ignore[arg-type]  # buffers
        if self.alpha < 1.0:
            t = feat + self.alpha * (t - feat)
        return self.decoder(t).clamp(0.0, 1.0)                            # [1,3,H,W]


def _style_tensor(style_rgb: np.ndarray) -> torch.Tensor:
    """(H,W,3) in [0,1] -> [1,3,h,w] with the shorter side 512, like test.py."""
    arr = np.asarray(style_rgb, dtype=np.float32)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB style image, got shape {arr.shape}")
    x = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]
    h, w = arr.shape[:2]
    scale = _STYLE_SIZE / min(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)


def build_adain(style_rgb: np.ndarray, alpha: float, weights_dir: Path | None,
                input_size: tuple[int, int]) -> nn.Module:
    """AdaINStylizer for one style at a fixed (H, W), multiples of 8.

    weights_dir None keeps the random initialisation (timing and tests only)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    h, w = input_size
    if h % 8 or w % 8:
        raise ValueError(f"input size {input_size} must be a multiple of 8 (three poolings)")
    encoder, decoder = make_encoder(), make_decoder()
    if weights_dir is not None:
        load_adain_weights(encoder, decoder, Path(weights_dir))
    encoder.eval()
    decoder.eval()
    with torch.no_grad():
        style_mean, style_std = channel_mean_std(encoder(_style_tensor(style_rgb)))
    set_static_sizes(decoder, input_size)
    return AdaINStylizer(encoder, decoder, style_mean, style_std, alpha, input_size).eval()
