"""Facts about a MyriadX ``.blob`` file: the version stamp and what depthai reads from it."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oakpipe import privacy
from oakpipe.errors import UserError

#: depthai reads the OpenVINO version of a blob from two little-endian uint32 at byte 60.
#: The 2021.4 compiler writes (6, 0), which depthai takes for 2022.1; Luxonis' converter
#: stamps (2021, 4), and so do we, so depthai reports VERSION_2021_4.
VERSION_OFFSET = 60
VERSION_2021_4 = (2021, 4)


def stamp_version(path: Path, version: tuple[int, int] = VERSION_2021_4) -> None:
    with open(path, "r+b") as handle:
        handle.seek(VERSION_OFFSET)
        handle.write(struct.pack("<II", *version))


@dataclass(frozen=True)
class BlobPort:
    name: str
    dims: list[int]  # innermost first, as depthai lists them: [W, H, C, N]
    data_type: str  # e.g. "U8F", "FP16"

    @property
    def nchw(self) -> list[int]:
        return list(reversed(self.dims))


@dataclass(frozen=True)
class BlobInfo:
    version: str
    shaves: int
    slices: int
    stages: int
    inputs: list[BlobPort]
    outputs: list[BlobPort]

    def to_dict(self) -> dict:
        port = lambda p: {"name": p.name, "dims": p.dims, "data_type": p.data_type}  # noqa: E731
        return {
            "version": self.version, "shaves": self.shaves, "cmx_slices": self.slices, "stages": self.stages,
            "inputs": [port(p) for p in self.inputs], "outputs": [port(p) for p in self.outputs],
        }


#: The SHAVE variant taken from a superblob: 2 threads x 6 leave the camera's ISP its cores
#: (13 usable in all); oakpipe convert compiles for 6 by default too.
SUPERBLOB_SHAVES = 6


def superblob_variant(dai: Any, path: str, shaves: int | None = None) -> Any:
    """The ``dai.OpenVINO.Blob`` for ``shaves`` (default SUPERBLOB_SHAVES) out of a superblob.

    A superblob is one blob plus a bsdiff patch per SHAVE count; an empty patch means "the
    base blob as it is", so the variant's own SHAVE count is checked, not assumed.
    """
    shaves = shaves or SUPERBLOB_SHAVES
    try:
        blob = dai.OpenVINO.SuperBlob(str(path)).getBlobWithNumShaves(shaves)
    except (RuntimeError, ValueError, IndexError) as exc:
        raise UserError(f"{path} is not a readable superblob: {str(exc).strip().splitlines()[0]}",
                        "convert the model to a blob (oakpipe convert)") from exc
    if blob.numShaves != shaves:
        raise UserError(f"the superblob {Path(path).name} has no {shaves}-SHAVE variant (it gives a "
                        f"{blob.numShaves}-SHAVE blob)", "convert the model to a blob (oakpipe convert)")
    return blob


def read_blob(path: Path) -> BlobInfo:
    """Parse a blob with depthai, offline. Raises UserError for a missing or foreign file."""
    privacy.apply()  # telemetry off even if the environment changed since import
    import depthai as dai

    if str(path).endswith(".superblob"):  # the variant the device backend will run
        blob = superblob_variant(dai, str(path))
    else:
        try:
            blob = dai.OpenVINO.Blob(str(path))  # type: ignore[call-overload]  # the stubs omit str
        except RuntimeError as exc:
            raise UserError(f"{path} is not a readable MyriadX blob: {exc}", "re-run oakpipe convert") from exc

    def ports(mapping) -> list[BlobPort]:
        return [BlobPort(name, list(t.dims), t.dataType.name) for name, t in mapping.items()]

    return BlobInfo(
        version=blob.version.name, shaves=blob.numShaves, slices=blob.numSlices, stages=blob.stageCount,
        inputs=ports(blob.networkInputs), outputs=ports(blob.networkOutputs),
    )
