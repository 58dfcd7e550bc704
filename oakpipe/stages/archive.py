"""Stage 5: an NN Archive (``<name>.tar.xz``: config.json + blob), depthai v3's model package.

Compression is the one slow part (a blob is FP16 weights and shrinks by only about 10%): the
tar is cut into 8 MiB pieces, each compressed as its own xz stream by a fast LZMA2 set-up
on its own thread (lzma releases the GIL), and the streams are concatenated. A file of
concatenated streams is a valid .xz (xz-utils, Python's lzma and depthai's NNArchive read it),
and the same blob always gives the same bytes.

The blob already contains the camera preprocessing, so the archive tells depthai to feed
it raw ``BGR888p`` frames (mean 0, scale 1, no channel reversal): recording the model's
own mean/scale there would make a consumer apply them twice. The contract that was baked
in is kept in the manifest.
"""

from __future__ import annotations

import io
import json
import lzma
import os
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from oakpipe.blobfile import BlobInfo

CONFIG_VERSION = "1.0"
NUMPY_TO_ARCHIVE = {"uint8": "uint8", "float16": "float16", "float32": "float32"}
PIECE_BYTES = 8 << 20  # fixed, so that archives are reproducible whatever the machine's core count
# LZMA2's fast mode with a small dictionary and the lightest match finder: a third of preset
# 1's CPU time on a ResNet-50 blob, and as small (FP16 weights barely compress either way).
FAST_LZMA2 = [{"id": lzma.FILTER_LZMA2, "dict_size": 1 << 16, "mf": lzma.MF_HC3, "nice_len": 8, "depth": 1,
               "mode": lzma.MODE_FAST}]


def archive_config(name: str, blob_name: str, blob: BlobInfo) -> dict:
    inputs = [
        {
            "name": port.name,
            "dtype": "uint8",
            "input_type": "image",
            "shape": port.nchw,
            "layout": "NCHW",
            "preprocessing": {
                "mean": [0.0, 0.0, 0.0],
                "scale": [1.0, 1.0, 1.0],
                "reverse_channels": False,
                "interleaved_to_planar": False,
                "dai_type": "BGR888p",
            },
        }
        for port in blob.inputs
    ]
    outputs = [{"name": port.name, "dtype": "float16", "shape": port.nchw, "layout": output_layout(port.nchw)}
               for port in blob.outputs]
    return {
        "config_version": CONFIG_VERSION,
        "model": {
            "metadata": {"name": name, "path": blob_name, "precision": "float16"},
            "inputs": inputs,
            "outputs": outputs,
            "heads": [],
        },
    }


def output_layout(shape: list[int]) -> str:
    """One letter per axis (luxonis-ml rejects a layout longer than the shape): NCHW, NC, ..."""
    return "NCHW" if len(shape) == 4 else "NCDEFGH"[: len(shape)]


def build_archive(name: str, blob_path: Path, blob: BlobInfo, archive_path: Path, task: dict | None = None) -> dict:
    config = archive_config(name, blob_path.name, blob)
    if task:  # a detector/classifier: name the parser that decodes it (luxonis-ml's head schema)
        from oakpipe.tasks.heads import archive_heads

        config["model"]["heads"] = archive_heads(task, config)
    payload = json.dumps(config, indent=2).encode()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("config.json")
        info.size = len(payload)
        info.mtime = 0  # reproducible archives
        tar.addfile(info, io.BytesIO(payload))
        tar.add(blob_path, arcname=blob_path.name, filter=_zero_mtime)
    with open(archive_path, "wb") as handle:
        for stream in compress_xz(raw.getbuffer()):
            handle.write(stream)
    return {"config": config}


def compress_xz(data: memoryview) -> list[bytes]:
    """``data`` as concatenated xz streams, one per piece, compressed on all cores."""
    pieces = [data[i:i + PIECE_BYTES] for i in range(0, len(data), PIECE_BYTES)] or [data]
    with ThreadPoolExecutor(max_workers=min(len(pieces), os.cpu_count() or 1)) as pool:
        return list(pool.map(lambda piece: lzma.compress(piece, format=lzma.FORMAT_XZ, filters=FAST_LZMA2), pieces))


def _zero_mtime(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    return info


def read_archive_config(path: Path) -> dict:
    """config.json of an NN Archive (ours or another tool's)."""
    with tarfile.open(path, "r:*") as tar:
        member = tar.extractfile("config.json")
        if member is None:
            raise KeyError("config.json")
        return json.load(member)
