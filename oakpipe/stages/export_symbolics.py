"""Attention at the opsets the 2021.4 MYRIAD compiler reads (11-13).

torch exports ``scaled_dot_product_attention`` (nn.MultiheadAttention without weights,
TransformerEncoderLayer, timm's fused attention) only from opset 14, and ``aten::unflatten``
(used inside MultiheadAttention and ViT heads) only from opset 13. While oakpipe exports,
both get a symbolic at the opset asked for, in their math form:

- attention: softmax(Q K^T * scale + mask) V, with torch's own opset-14 symbolic, whose ops
  (Transpose, Mul, Sqrt, MatMul, Softmax on the last axis, Add, Where) all exist at opset
  11; only ``is_causal`` needs Trilu (opset 14) and still fails to export;
- unflatten: a Reshape to its input's shape with the split dim replaced (torch's opset-13
  symbolic, made of Shape, Slice, Concat and Reshape, which opset 11 has; onnxslim then
  folds the shape to a constant).

The registrations are removed after the export, so torch is left as it was.
"""

from __future__ import annotations

import contextlib

ATTENTION = "aten::scaled_dot_product_attention"
UNFLATTEN = "aten::unflatten"


def _unflatten_symbolic():
    """torch's opset-13 unflatten (Shape, Slice with inputs, Concat, Reshape: opset 10 ops)."""
    from torch.onnx._internal.torchscript_exporter import symbolic_opset13

    return symbolic_opset13.unflatten


def _attention_symbolic():
    from torch.onnx._internal.torchscript_exporter import symbolic_opset14

    return symbolic_opset14.scaled_dot_product_attention


@contextlib.contextmanager
def attention_symbolics(opset: int):
    """Register the math-form symbolics for ``opset`` (below 14) for the duration of an export."""
    import torch

    registered = []
    try:
        if opset < 14:
            torch.onnx.register_custom_op_symbolic(ATTENTION, _attention_symbolic(), opset)
            registered.append(ATTENTION)
        if opset < 13:
            torch.onnx.register_custom_op_symbolic(UNFLATTEN, _unflatten_symbolic(), opset)
            registered.append(UNFLATTEN)
        yield
    finally:
        for name in registered:
            torch.onnx.unregister_custom_op_symbolic(name, opset)
