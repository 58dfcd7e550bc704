"""The manifest as types: what readers of an export (``run``, ``verify``, the CLI, bench) use.

``manifest.json`` stays the JSON it was (same keys, ``schema`` its version), written by the
stage cache (``oakpipe.manifest``). Reading it goes through ``ExportManifest.from_dict``
once, so no reader digs string paths into a dict, and an NN Archive (which has no
manifest) builds the same type from its ``config.json`` (``oakpipe.live.archive_input``).
Sections a reader does not need may be absent (an archive has no ONNX stage): their
fields are then None or empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from oakpipe.blobfile import BlobPort
from oakpipe.errors import UserError
from oakpipe.manifest import SCHEMA_VERSION
from oakpipe.preprocessing import Preprocessing


@dataclass(frozen=True)
class StageEntry:
    """One stage's record: its cache key, time, artifacts (name -> sha256) and info."""

    key: str = ""
    seconds: float = 0.0
    artifacts: dict[str, str] = field(default_factory=dict)
    info: dict = field(default_factory=dict)


@dataclass(frozen=True)
class BlobRecord:
    """What depthai reads from the blob (``oakpipe.blobfile.BlobInfo``, as recorded)."""

    outputs: list[BlobPort]
    inputs: list[BlobPort] = field(default_factory=list)
    version: str = ""
    shaves: int | None = None

    @property
    def output_names(self) -> list[str]:
        return [p.name for p in self.outputs]


@dataclass(frozen=True)
class ExportManifest:
    """An export (or an NN Archive) as ``run``, ``verify`` and the CLI read it."""

    name: str
    kind: str = ""  # builtin | python | module | onnx | ir | nn-archive
    schema: int = SCHEMA_VERSION
    input_shape: tuple[int, int, int, int] | None = None
    shaves: int | None = None
    preprocessing: Preprocessing | None = None
    stages: dict[str, StageEntry] = field(default_factory=dict)
    blob: BlobRecord | None = None
    estimated_fps: tuple[float, float] | None = None  # the preflight's (low, high)
    onnx_output_names: list[str] = field(default_factory=list)
    onnx_task: dict | None = None  # a task model's TaskInfo as recorded (oakpipe.tasks.info)
    complete: bool = False
    verified: bool | None = None
    blob_skipped: str | None = None
    dai_type: str = "BGR888p"  # the camera frame type the network takes

    @classmethod
    def from_dict(cls, data: dict) -> "ExportManifest":
        """Parse ``manifest.json``'s content; a UserError names a part that is malformed."""
        try:
            return cls._parse(data)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise UserError(f"manifest.json is corrupt ({type(exc).__name__}: {exc})",
                            "run oakpipe convert again to rebuild the export") from None

    @classmethod
    def _parse(cls, data: dict) -> "ExportManifest":
        model = data.get("model") or {}
        options = data.get("options") or {}
        stages = {name: StageEntry(str(s.get("key", "")), float(s.get("seconds", 0.0)), dict(s.get("artifacts") or {}),
                                   dict(s.get("info") or {})) for name, s in (data.get("stages") or {}).items()}
        blob_info = stages["blob"].info if "blob" in stages else {}
        shape = options.get("input_shape")
        onnx_info = stages["onnx"].info if "onnx" in stages else {}
        return cls(
            name=str(model.get("name", "")), kind=str(model.get("kind", "")), schema=int(data.get("schema", SCHEMA_VERSION)),
            input_shape=tuple(int(d) for d in shape) if shape else None,  # type: ignore[arg-type]
            shaves=options.get("shaves"),
            preprocessing=Preprocessing.from_dict(data["preprocessing"]) if data.get("preprocessing") else None,
            stages=stages, blob=_blob(blob_info.get("blob")), estimated_fps=_estimate(blob_info.get("preflight")),
            onnx_output_names=[str(o["name"]) for o in onnx_info.get("outputs") or []],
            onnx_task=onnx_info.get("task"),
            complete=bool(data.get("complete", False)), verified=data.get("verified"),
            blob_skipped=data.get("blob_skipped"), dai_type=str(data.get("dai_type") or "BGR888p"),
        )

    def artifacts(self, stage: str) -> dict[str, str]:
        """A stage's artifacts (file name -> sha256); empty when the stage did not run."""
        entry = self.stages.get(stage)
        return entry.artifacts if entry else {}


def _blob(data: dict | None) -> BlobRecord | None:
    if not data:
        return None
    ports = lambda key: [BlobPort(str(p["name"]), list(p.get("dims") or []), str(p.get("data_type", "")))  # noqa: E731
                         for p in data.get(key) or []]
    return BlobRecord(ports("outputs"), ports("inputs"), str(data.get("version", "")), data.get("shaves"))


def _estimate(preflight: dict | None) -> tuple[float, float] | None:
    band = ((preflight or {}).get("estimates") or {}).get("estimated_fps")
    return (float(band[0]), float(band[1])) if band else None
