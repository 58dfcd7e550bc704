"""NN Archive ``model.heads`` for task models, built with luxonis-ml's schema.

The heads name the depthai-nodes parser that decodes the outputs (``YOLOExtendedParser``
for the per-stride YOLO cut, ``ClassificationParser`` for class scores, ``SegmentationParser``
for per-pixel class scores, ``MapOutputParser`` for depth maps, and oakpipe's own
``OakpipeSSDParser`` for torchvision SSD exports, where depthai-nodes has none) with the
metadata it reads: class names, thresholds, strides, the YOLO subtype. Building them from
luxonis-ml's own pydantic models means a field Luxonis' tools would reject is refused here.
"""

from __future__ import annotations

from oakpipe.errors import InternalError
from oakpipe.tasks.info import TaskInfo

SSD_SUBTYPE = "ssd"  # oakpipe.tasks.torchvision_ssd.SUBTYPE (not imported: that module imports torch)

CONF_THRESHOLD = 0.25  # Ultralytics' predict default
IOU_THRESHOLD = 0.45
MAX_DET = 300
# End-to-end (NMS-free) heads: Ultralytics' predict takes their max_det best boxes above the
# confidence threshold, with no NMS. depthai-nodes' yolo26 subtype does exactly that; its
# yolov10 subtype runs the v8 NMS, which drops a box only when its IoU with a better box of
# the same class exceeds the threshold: at 1.0 it drops none (IoU never exceeds 1), leaving
# threshold-then-max_det, Ultralytics' semantics. A lower threshold would remove the
# overlapping boxes that Ultralytics keeps.
NMS_FREE_SUBTYPES = ("yolov10", "yolo26")
NMS_FREE_IOU = 1.0


def archive_heads(task: dict, config: dict) -> list[dict]:
    """The ``model.heads`` list for ``task`` (a TaskInfo dict); checks it against luxonis-ml."""
    from luxonis_ml.nn_archive.config_building_blocks import Head

    info = TaskInfo.from_dict(task)
    assert info is not None
    outputs = [o["name"] for o in config["model"]["outputs"]]
    missing = [name for name in info.outputs if name not in outputs]
    if missing:
        raise InternalError(f"the blob lacks the task outputs {missing} (it has {outputs})")
    head = Head(**head_fields(info))
    return [head.model_dump(mode="json", exclude_none=True)]


def head_fields(info: TaskInfo) -> dict:
    if info.task == "classify":
        metadata = {"classes": info.names, "n_classes": len(info.names), "is_softmax": info.is_softmax}
        return {"name": "classification", "parser": "ClassificationParser", "metadata": metadata,
                "outputs": info.outputs}
    if info.task == "segment-semantic":
        metadata = {"classes": info.names, "n_classes": len(info.names), "is_softmax": info.is_softmax,
                    "background_class": False}  # class 0 is a class like any other, drawn in its colour
        return {"name": "segmentation", "parser": "SegmentationParser", "metadata": metadata,
                "outputs": info.outputs}
    if info.task == "depth":  # depthai-nodes' parser for depth and other per-pixel maps
        return {"name": "depth", "parser": "MapOutputParser", "metadata": {"min_max_scaling": False},
                "outputs": info.outputs}
    if info.task == "detect" and info.subtype == SSD_SUBTYPE:
        return ssd_head_fields(info)
    if info.task in ("detect", "pose", "segment"):
        metadata = {
            "classes": info.names, "n_classes": len(info.names),
            "iou_threshold": NMS_FREE_IOU if info.subtype in NMS_FREE_SUBTYPES else IOU_THRESHOLD,
            "conf_threshold": CONF_THRESHOLD, "max_det": MAX_DET,
            "yolo_outputs": [o for o in info.outputs if "_yolo" in o], "subtype": info.subtype,
            "strides": info.strides,
        }
        if info.task == "segment":
            metadata["mask_outputs"] = [o for o in info.outputs if o.endswith("_masks")]
            metadata["protos_outputs"] = "protos_output"
            metadata["n_prototypes"] = info.n_prototypes
        if info.task == "pose":
            metadata["keypoints_outputs"] = [o for o in info.outputs if o.startswith("kpt_output")]
            metadata["n_keypoints"] = info.n_keypoints
        return {"name": "detection", "parser": "YOLOExtendedParser", "metadata": metadata, "outputs": info.outputs}
    raise InternalError(f"no archive head for task {info.task!r}")


def ssd_head_fields(info: TaskInfo) -> dict:
    """luxonis-ml's SSD metadata (boxes and scores outputs, thresholds, classes) with what
    oakpipe's SSD parser also reads: the model's top-k per class, the box format, and that
    class 0 is the background."""
    from oakpipe.tasks.ssd_parser import BOX_FORMAT, NAME

    boxes, scores = info.outputs
    metadata = {"classes": info.names, "n_classes": len(info.names), **info.postprocess,
                "boxes_outputs": boxes, "scores_outputs": scores, "box_format": BOX_FORMAT,
                "background_class": True}
    return {"name": "detection", "parser": NAME, "metadata": metadata, "outputs": info.outputs}
