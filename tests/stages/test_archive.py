"""The NN Archive's stored xz: one valid .tar.xz for every reader, written without compressing."""

from __future__ import annotations

import lzma
import shutil
import subprocess
import tarfile

import numpy as np
import pytest

from oakpipe.stages import archive

# Around the 64 KiB LZMA2 chunk limit, and the 4-byte paddings of the block and the index.
SIZES = (0, 1, 3, 4, 65535, 65536, 65537, 3 * 65536 + 5)


@pytest.mark.parametrize("size", SIZES)
def test_stored_xz_decompresses_to_the_original_and_is_reproducible(size):
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    written = b"".join(archive.stored_xz(memoryview(data)))
    assert lzma.decompress(written, format=lzma.FORMAT_XZ) == data  # liblzma checks CRCs and the index
    assert b"".join(archive.stored_xz(memoryview(data))) == written


@pytest.mark.skipif(shutil.which("xz") is None, reason="xz-utils not installed")
def test_xz_utils_accepts_the_stored_stream(tmp_path):
    path = tmp_path / "data.xz"
    path.write_bytes(b"".join(archive.stored_xz(memoryview(bytes(range(256)) * 1000))))
    proc = subprocess.run(["xz", "--test", "--verbose", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.toolchain
def test_the_archive_is_a_tar_xz_that_tarfile_and_depthai_read(halve_export, tmp_path):
    import depthai as dai

    from oakpipe.blobfile import read_blob

    blob = halve_export.blob
    path = tmp_path / "halve.tar.xz"
    archive.build_archive("halve", blob, read_blob(blob), path)
    with tarfile.open(path, "r:xz") as tar:
        assert tar.getnames() == ["config.json", blob.name]
        assert tar.extractfile(blob.name).read() == blob.read_bytes()
    nn = dai.NNArchive(str(path))
    assert nn.getModelType() == dai.ModelType.BLOB
    assert nn.getConfig().model.metadata.name == "halve"
    assert nn.getInputSize() == (256, 256)  # read from the blob inside
