"""Recognise a detector that post-processes inside its forward, and name the route out.

torchvision's detection models (SSD, SSDlite, RetinaNet, FCOS, Faster R-CNN) return, in
eval mode, one dict per image with ``boxes``, ``scores`` and ``labels``: anchors decoded,
thresholds and NMS applied, a data-dependent number of rows. That cannot be a MyriadX
graph (static shapes, no NMS there). torchvision's SSD and SSDlite are cut by oakpipe itself
before this is reached (oakpipe.tasks.torchvision_ssd); any other such detector is refused,
and this says what to export instead: the raw head outputs, with the anchors, box coder
and NMS on the host.
"""

from __future__ import annotations

DETECTION_KEYS = {"boxes", "scores", "labels"}

RAW_HEAD_ROUTE = (
    "export the network up to its raw head instead: a wrapper whose forward returns "
    "model.head(list(model.backbone(x).values())) (the class logits and box regressions, "
    "with model.transform's normalisation given as --mean-values/--scale-values), and decode "
    "the anchors (model.anchor_generator), model.box_coder and NMS on the host"
)


def is_postprocessed_detections(result: object) -> bool:
    """True for a list of dicts holding boxes, scores and labels (torchvision's detection output)."""
    return (
        isinstance(result, (list, tuple))
        and bool(result)
        and all(isinstance(r, dict) and DETECTION_KEYS <= set(r) for r in result)
    )


def postprocessed_detector_problem(result: object) -> tuple[str, str] | None:
    """(what is wrong, how to fix it) for post-processed detections, else None."""
    if not is_postprocessed_detections(result):
        return None
    return (
        "the model returns post-processed detections (dicts of boxes, scores, labels; NMS "
        "inside, as torchvision's RetinaNet/FCOS/R-CNN do): no static shape for the MyriadX "
        "(oakpipe cuts only torchvision's SSD and SSDlite itself)",
        RAW_HEAD_ROUTE,
    )
