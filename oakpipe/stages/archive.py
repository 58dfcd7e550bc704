"""Stage 5: an NN Archive (``<name>.tar.xz``: config.json + blob), depthai v3's model package.

The blob is FP16 weights, which LZMA shrinks by only 10-15%, yet compressing it cost a
fifth to a third of a cold convert (ResNet-50: 10-12 s of about 50 s on a loaded 2-core
machine, even with the fastest LZMA2 set-up on every core). So the archive is an xz file
whose LZMA2 data is *stored*: uncompressed LZMA2 chunks, which the format defines for
incompressible data. It is a valid ``.tar.xz`` (xz-utils, Python's lzma, depthai's
NNArchive read it; a test checks the last two), costs one CRC32 pass to write, is the
fastest kind for a reader to unpack, and the same blob always gives the same bytes.

The blob already contains the camera preprocessing, so the archive tells depthai to feed
it raw ``BGR888p`` frames (mean 0, scale 1, no channel reversal): recording the model's
own mean/scale there would make a consumer apply them twice. The contract that was baked
in is kept in the manifest.
"""

from __future__ import annotations

import io
import json
import struct
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from oakpipe.blobfile import BlobInfo

CONFIG_VERSION = "1.0"
NUMPY_TO_ARCHIVE = {"uint8": "uint8", "float16": "float16", "float32": "float32"}
XZ_MAGIC = b"\xfd7zXZ\x00"
CHECK_CRC32 = b"\x00\x01"  # stream flags: the block's check is a CRC32 of its data
LZMA2_CHUNK = 1 << 16  # the largest uncompressed LZMA2 chunk


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
        for part in stored_xz(raw.getbuffer()):
            handle.write(part)
    return {"config": config}


def stored_xz(data: memoryview) -> Iterator[bytes | memoryview]:
    """``data`` as one xz stream (xz-file-format 1.2.0) of one block whose LZMA2 data is
    uncompressed chunks: stream header, block header, chunks, check, index, stream footer."""
    yield XZ_MAGIC + CHECK_CRC32 + _crc(CHECK_CRC32)
    # Block header: size/4 - 1, flags (one filter, no sizes), LZMA2 (id 0x21, one property
    # byte: dictionary 4 KiB, unused by stored chunks), padding to 4 bytes, CRC32.
    header = bytes([2, 0x00, 0x21, 0x01, 0x00, 0, 0, 0])
    header += _crc(header)
    yield header
    size = len(data)
    for offset in range(0, size, LZMA2_CHUNK):  # 0x01: stored, dictionary reset; 0x02: stored
        piece = data[offset:offset + LZMA2_CHUNK]
        yield struct.pack(">BH", 0x01 if offset == 0 else 0x02, len(piece) - 1)
        yield piece
    chunks = -(-size // LZMA2_CHUNK)
    packed = 3 * chunks + size + 1  # chunk headers, data, the end-of-data byte
    yield b"\x00" + bytes(-packed % 4) + struct.pack("<I", zlib.crc32(data))
    index = b"\x00" + _varint(1) + _varint(len(header) + packed + 4) + _varint(size)
    index += bytes(-len(index) % 4)
    index += _crc(index)
    footer = struct.pack("<I", len(index) // 4 - 1) + CHECK_CRC32
    yield index + _crc(footer) + footer + b"YZ"


def _crc(data: bytes) -> bytes:
    return struct.pack("<I", zlib.crc32(data))


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _zero_mtime(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    return info
