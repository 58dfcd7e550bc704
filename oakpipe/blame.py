"""Naming what went wrong in the user's words: a PyTorch module for an ONNX node, a
compiler message without the build machine's noise.

A leaf module (it imports nothing of oakpipe), so the blob stage, the preflight and verify
can all name things the same way without importing each other.
"""

from __future__ import annotations

import re


def clean_compiler_message(message: str) -> str:
    lines = [ln.strip() for ln in message.strip().splitlines() if ln.strip()]
    # Drop the build machine's source locations ("/home/jenkins/.../frontend.cpp:441 ").
    lines = [re.sub(r"^\S*/\S+\.(cpp|hpp|h):\d+\s*", "", ln) for ln in lines]
    text = " ".join(ln for ln in lines if ln)
    text = re.sub(r"\[ ?(GENERAL_ERROR|NOT_IMPLEMENTED|PARAMETER_MISMATCH) ?\]\s*", "", text)
    return text[:600]


def pytorch_module_of(node_name: str) -> str | None:
    """The module's name as PyTorch prints it, from a TorchScript export's node name.

    The exporter names a child of a container with its parent's name in front
    ('/features/features.8/conv/conv.1/Conv' is ``features.8.conv.1``): that repeated
    prefix is dropped (attribute names cannot contain dots, so nothing else matches).
    """
    parts = [p for p in node_name.split("/") if p]
    if not node_name.startswith("/") or not parts:
        return None
    if len(parts) == 1:
        return "(the model's own forward)"
    names = parts[:-1]
    path = [names[0]]
    for parent, part in zip(names, names[1:]):
        path.append(part[len(parent) + 1:] if part.startswith(parent + ".") else part)
    return ".".join(path)
