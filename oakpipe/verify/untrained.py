"""Say when a model's BatchNorm statistics were never trained.

A freshly built network keeps every BatchNorm's running mean at 0 and variance at 1. Its
activations then have no trained scale: FP16 ranges, overflow flags and stage-by-stage
differences say little about the trained model the user will deploy, and random-weight
models fail the FP16 check for a reason no trained model has. Verify adds this note to
its verdict so the user knows to pass real weights.
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
    return (f"{len(fresh)} of {len(norms)} BatchNorm layers still hold their initial statistics (mean 0, "
            "variance 1): the weights look untrained, so FP16 ranges and differences are meaningless for them; "
            "pass trained weights (--weights FILE, or the best.pt training wrote)")
