"""Say when a model's BatchNorm statistics were never trained.

A freshly built network keeps every BatchNorm's running mean at 0 and variance at 1. Its
activations then have no trained scale: FP16 ranges, overflow flags and stage-by-stage
differences say little about the trained model the user will deploy, and random-weight
models fail the FP16 check for a reason no trained model has. Verify adds this note to
its verdict, failed or passed, so the user knows to pass real weights.

An ONNX model is read the same way where its BatchNormalization nodes survived the export
(mean and variance initializers all 0 and 1), in the user's file: oakpipe's own import folds
them into the convolution before them. A BatchNorm folded into the convolution before
it, as exporters do in eval mode, leaves no trace: untrained statistics scale the weights by
1/sqrt(1 + eps), which no trained convolution's weights can be told apart from.
"""

from __future__ import annotations

UNTRAINED_SHARE = 0.5  # more than half the BatchNorm layers at their initial values


def untrained_batchnorm(module) -> str | None:
    """A one-line note when most BatchNorm layers hold their initial statistics, else None."""
    import torch
    from torch.nn.modules.batchnorm import _BatchNorm

    norms = [m for m in module.modules() if isinstance(m, _BatchNorm) and m.running_mean is not None]
    fresh = [m for m in norms if torch.all(m.running_mean == 0) and torch.all(m.running_var == 1)]  # type: ignore[arg-type]
    if not norms or len(fresh) <= UNTRAINED_SHARE * len(norms):
        return None
    return note(len(fresh), len(norms), "--weights FILE, or the best.pt training wrote")


def untrained_onnx_batchnorm(path) -> str | None:
    """``untrained_batchnorm`` for an ONNX file: its BatchNormalization nodes whose mean and
    variance are initializers holding 0 and 1 (folded ones cannot be told, see above)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    constants = {t.name: t for t in graph.initializer}
    norms = [n for n in graph.node if n.op_type == "BatchNormalization" and len(n.input) >= 5]
    known = [n for n in norms if n.input[3] in constants and n.input[4] in constants]
    fresh = [n for n in known if not np.any(numpy_helper.to_array(constants[n.input[3]]))
             and np.all(numpy_helper.to_array(constants[n.input[4]]) == 1)]
    if not known or len(fresh) <= UNTRAINED_SHARE * len(known):
        return None
    return note(len(fresh), len(known), "export the ONNX file from the trained model")


def note(fresh: int, total: int, how: str) -> str:
    return (f"{fresh} of {total} BatchNorm layers still hold their initial statistics (mean 0, "
            "variance 1): the weights look untrained, so FP16 ranges and differences are meaningless for them; "
            f"pass trained weights ({how})")
