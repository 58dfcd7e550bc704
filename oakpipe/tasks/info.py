"""What an export's outputs mean (task, class names, head layout): one small record.

It is written into the manifest at convert time (``manifest["task"]``) so the archive stage
can name a parser and ``run`` can decode, without importing the model's library again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

TASKS = ("detect", "segment", "pose", "classify", "segment-semantic", "depth")


@dataclass(frozen=True)
class TaskInfo:
    task: str  # one of TASKS
    names: list[str]  # class names, index = class id
    outputs: list[str] = field(default_factory=list)  # output names, in the blob's order
    strides: list[int] = field(default_factory=list)  # YOLO heads: one per output
    subtype: str = ""  # depthai-nodes' YOLO subtype ("yolov8", ...)
    n_keypoints: int = 0
    n_prototypes: int = 0
    family: str = ""  # where it came from, e.g. "ultralytics 8.4.190 yolo11n"
    is_softmax: bool = True  # classify/segment-semantic: the output is probabilities already
    postprocess: dict = field(default_factory=dict)  # the model's own thresholds (torchvision SSD)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> "TaskInfo | None":
        if not data:
            return None
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
