"""oakpipe's faster decode gives depthai-nodes' own results, exactly.

The NMS (``oakpipe.tasks.yolo_nms``) and the instance masks (``oakpipe.tasks.masks``) redo
depthai-nodes' ``decode_yolo_output`` and ``process_single_mask`` with less work; here both
are run side by side on the exported models' real outputs (the photo and the built-in
moving scene, whose random-weight scores are high everywhere: up to the 300-box cap) and on
random prototypes. Equal means equal: same rows in the same order, same mask pixels.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from tests.tasks.conftest import SIZE
from tests.tasks.test_yolo import photo_frame


def frames() -> list[np.ndarray]:
    """The astronaut and three frames of the built-in scene, at the network size (BGR U8)."""
    from oakpipe.live.host import camera_frame
    from oakpipe.live.sources import sample_frame

    return [photo_frame()[0]] + [camera_frame(sample_frame(i), SIZE, SIZE)[0] for i in (0, 7, 21)]


def extracted_inputs(export, conf: float) -> list:
    """The parser's ``extract`` of the ONNX outputs for each frame (what decode hands the NMS)."""
    import onnxruntime as ort

    from oakpipe.tasks.decode import TaskDecoder, to_nn_data

    decoder = TaskDecoder.for_archive(export.archive, conf=conf)
    session = ort.InferenceSession(str(export.onnx), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    found = []
    for frame in frames():
        x = np.ascontiguousarray((frame[..., ::-1].astype(np.float32) / 255.0).transpose(2, 0, 1)[None])
        found.append(decoder.parser.extract(to_nn_data(dict(zip(names, session.run(None, {"input": x}))))))
    return found


def depthai_nodes_rows(inputs) -> np.ndarray:
    from depthai_nodes.node.parsers.utils.yolo import decode_yolo_output

    kpts = [np.array(k, dtype=np.float32) for k in inputs.kpts_outputs] if inputs.kpts_outputs else None
    return decode_yolo_output(inputs.outputs_values, inputs.strides, inputs.anchors, kpts=kpts,
                              conf_thres=inputs.conf_threshold, iou_thres=inputs.iou_threshold,
                              num_classes=inputs.n_classes, det_mode=kpts is None and not inputs.masks_outputs_values,
                              subtype=inputs.subtype)


@pytest.mark.toolchain  # the exports run every stage
@pytest.mark.parametrize("conf", [0.25, 0.01])
@pytest.mark.parametrize("which", ["yolo_export", "pose_export", "seg_export"])
def test_nms_rows_are_depthai_nodes_rows(which, conf, request):
    from oakpipe.tasks.yolo_nms import yolo_rows

    counts = []
    for inputs in extracted_inputs(request.getfixturevalue(which), conf):
        # each side gets its own copy: parse_yolo_output decodes the head tensors in place
        ours, theirs = yolo_rows(copy.deepcopy(inputs)), depthai_nodes_rows(copy.deepcopy(inputs))
        counts.append(len(theirs))
        if len(theirs):
            np.testing.assert_array_equal(ours, theirs)  # the same rows, taken from the same array, same order
        else:
            assert len(ours) == 0
    assert max(counts) >= 20, counts  # the comparison had boxes to suppress


@pytest.mark.toolchain
def test_instance_masks_are_process_single_masks(seg_export):
    from depthai_nodes.node.parsers.utils.masks_utils import process_single_mask

    from oakpipe.tasks.decode import TaskDecoder
    from oakpipe.tasks.yolo_nms import yolo_rows

    decoder = TaskDecoder.for_archive(seg_export.archive, conf=0.01)
    compared = 0
    for inputs in extracted_inputs(seg_export, 0.01):
        rows = np.asarray(yolo_rows(inputs), dtype=np.float64)
        masks = decoder._masks(rows, decoder._corners(rows), inputs)
        for i, (head, anchor, x, y) in enumerate(rows[:, 6:10].astype(int)):
            coeff = inputs.masks_outputs_values[head][0, anchor * inputs.protos_len : (anchor + 1) * inputs.protos_len, y, x]
            x1, y1, x2, y2 = decoder._corners(rows)[i]
            box = np.array([(x1 + x2) / 2 / SIZE, (y1 + y2) / 2 / SIZE, (x2 - x1) / SIZE, (y2 - y1) / SIZE])
            expected = process_single_mask(inputs.protos_output[0], coeff, inputs.mask_conf, box, (SIZE, SIZE)) > 0
            np.testing.assert_array_equal(masks[i], expected)
            compared += 1
    assert compared >= 50, compared


def test_instance_masks_match_on_random_prototypes_and_boxes_off_the_edge():
    """Boxes partly or wholly outside the frame, tiny and huge; prototypes at 1/4 of the input."""
    from oakpipe.tasks.decode import import_depthai_nodes

    import_depthai_nodes()
    from depthai_nodes.node.parsers.utils.masks_utils import process_single_mask

    from oakpipe.tasks.masks import instance_masks

    rng = np.random.default_rng(3)
    protos = rng.normal(size=(32, 40, 48)).astype(np.float32)
    coefficients = [rng.normal(size=32).astype(np.float32) for _ in range(60)]
    boxes = np.column_stack((rng.uniform(-0.2, 1.2, (60, 2)), rng.uniform(0.0, 0.9, (60, 2))))
    boxes[0] = (0.5, 0.5, 0.0, 0.0)  # empty
    masks = instance_masks(protos, coefficients, boxes, 0.5, (160, 192))
    expected = np.stack([process_single_mask(protos, c, 0.5, b, (160, 192)) > 0 for c, b in zip(coefficients, boxes)])
    np.testing.assert_array_equal(masks.to_array(), expected)
    assert expected.any(axis=(1, 2)).sum() >= 30  # most boxes hold pixels


def test_nn_data_holds_the_outputs_as_float32():
    import depthai as dai

    from oakpipe.tasks.decode import to_nn_data

    array = np.random.default_rng(0).normal(size=(1, 85, 13, 13)).astype(np.float32)
    message = to_nn_data({"output1_yolov8": array, "wide": array.astype(np.float64)})
    for name in ("output1_yolov8", "wide"):
        assert message.getTensorInfo(name).dataType == dai.TensorInfo.DataType.FP32
        np.testing.assert_array_equal(message.getTensor(name), array)  # float32 both ways: nothing rounded
