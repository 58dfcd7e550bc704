"""The NN Archive's fast, multi-stream xz: still one valid .tar.xz for every reader."""

from __future__ import annotations

import lzma
import tarfile

import numpy as np
import pytest

from oakpipe.stages import archive


def test_pieces_decompress_to_the_original_and_are_reproducible(monkeypatch):
    monkeypatch.setattr(archive, "PIECE_BYTES", 1000)  # many streams from a small input
    data = np.random.default_rng(0).integers(0, 255, 4321, dtype=np.uint8).tobytes()
    streams = archive.compress_xz(memoryview(data))
    assert len(streams) == 5
    assert lzma.decompress(b"".join(streams)) == data  # Python's reader takes concatenated streams
    assert archive.compress_xz(memoryview(data)) == streams


@pytest.mark.toolchain
def test_a_multi_stream_archive_is_a_tar_xz_that_tarfile_and_depthai_read(halve_export, tmp_path, monkeypatch):
    import depthai as dai

    from oakpipe.blobfile import read_blob

    monkeypatch.setattr(archive, "PIECE_BYTES", 4096)  # the small halve blob in several streams
    blob = halve_export.blob
    path = tmp_path / "halve.tar.xz"
    archive.build_archive("halve", blob, read_blob(blob), path)
    with tarfile.open(path, "r:xz") as tar:
        assert tar.getnames() == ["config.json", blob.name]
        assert tar.extractfile(blob.name).read() == blob.read_bytes()
    assert path.read_bytes().count(b"\xfd7zXZ\x00") > 1  # more than one xz stream header
    nn = dai.NNArchive(str(path))
    assert nn.getModelType() == dai.ModelType.BLOB
