"""``--results``: masks as COCO run-length encoding a program decodes without oakpipe.

The decoder used here is written in the test from COCO's definition (column-major runs,
zeros first), not oakpipe's, so the format is checked, not just oakpipe against itself.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.tasks.conftest import SIZE


def coco_decode(rle: dict) -> np.ndarray:
    """COCO's uncompressed RLE by its definition: runs alternate 0, 1, 0, ... down the columns."""
    height, width = rle["size"]
    assert sum(rle["counts"]) == height * width
    flat, value, at = np.zeros(height * width, bool), False, 0
    for count in rle["counts"]:
        flat[at : at + count] = value
        at, value = at + count, not value
    return flat.reshape(width, height).T  # column-major


def masks_to_check() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    blob = np.zeros((12, 9), bool)
    blob[3:8, 2:6] = True
    corners = np.zeros((12, 9), bool)
    corners[0, 0] = corners[-1, -1] = True
    return [blob, corners, np.zeros((12, 9), bool), np.ones((12, 9), bool), rng.random((12, 9)) > 0.5]


@pytest.mark.parametrize("index", range(5))
def test_rle_is_coco_and_round_trips(index):
    from oakpipe.tasks import rle

    mask = masks_to_check()[index]
    encoded = json.loads(json.dumps(rle.encode(mask)))  # as a program reads it back
    assert encoded["size"] == [12, 9]
    assert all(c > 0 for c in encoded["counts"][1:])  # only the first run (zeros) may be empty
    np.testing.assert_array_equal(coco_decode(encoded), mask)  # lossless: pixel for pixel
    np.testing.assert_array_equal(rle.decode(encoded), mask)
    assert rle.area(encoded) == mask.sum()


def test_a_window_encodes_as_the_whole_mask():
    from oakpipe.tasks import rle

    mask = np.zeros((30, 40), bool)
    mask[5:20, 12:31] = np.random.default_rng(1).random((15, 19)) > 0.3
    box = (10, 3, 33, 22)  # the mask is False outside it
    window = mask[3:22, 10:33]
    assert rle.encode(window, box, (30, 40)) == rle.encode(mask)


def test_labels_encode_one_mask_per_label():
    from oakpipe.tasks import rle

    labels = np.random.default_rng(2).integers(0, 4, (16, 20)).astype(np.uint8)
    labels[:4] = 255
    found = rle.encode_labels(labels, skip=255)
    assert [label for label, _, _ in found] == [0, 1, 2, 3]
    for label, pixels, encoded in found:
        np.testing.assert_array_equal(coco_decode(encoded), labels == label)
        assert pixels == (labels == label).sum() == rle.area(encoded)


@pytest.mark.toolchain  # the export runs every stage
def test_segment_results_carry_each_mask_in_pixels_of_the_frame_shown(seg_export, tmp_path):
    """Each JSON line's masks decode (by COCO's definition) to the masks oakpipe drew."""
    import cv2

    from oakpipe.live import run_export
    from oakpipe.live.options import RunOptions
    from oakpipe.tasks.decode import TaskDecoder
    from tests.tasks.test_yolo import photo_frame

    image = tmp_path / "astronaut.png"
    cv2.imwrite(str(image), photo_frame()[0])
    results = tmp_path / "out.jsonl"
    seen: list = []
    options = RunOptions(backend="host", source=str(image), frames=2, display="none", results=results, conf=0.01)
    run_export(seg_export.folder, options, on_frame=lambda item, picture: seen.append(item))
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    decoded = TaskDecoder.for_archive(seg_export.archive, conf=0.01).decode(seen[0].outputs)  # the same frame again
    detections = lines[0]["detections"]
    assert len(detections) == len(decoded.detections) >= 5
    assert seen[0].frame.shape[:2] == (SIZE, SIZE)
    for i, det in enumerate(detections):
        assert det["mask"]["size"] == [SIZE, SIZE]  # the frame shown, where the boxes are
        mine = coco_decode(det["mask"])
        np.testing.assert_array_equal(mine, decoded.masks[i])  # lossless: the mask IoU is exactly 1
        assert det["mask_pixels"] == mine.sum()
        if mine.any():  # at its box: the crop keeps whole 4-px prototype cells, bilinear spreads half a cell
            ys, xs = np.nonzero(mine)
            x1, y1, x2, y2 = det["box"]
            assert xs.min() >= x1 - 6 and xs.max() <= x2 + 6 and ys.min() >= y1 - 6 and ys.max() <= y2 + 6
    assert sum(d["mask_pixels"] for d in detections) > 0


def test_a_full_disk_leaves_no_results_file_and_says_so(seg_export, tmp_path):
    """--results on a small tmpfs that the masks fill: one UserError naming --results and the
    full mount, and neither the final name nor a temporary file is left (a cut JSON-lines file
    would read as a complete, shorter run)."""
    from oakpipe.errors import UserError
    from oakpipe.live import run_export
    from oakpipe.live.options import RunOptions
    from tests.test_userpaths import tmpfs

    with tmpfs(tmp_path / "small", 256 * 1024) as mount:
        results = mount / "out.jsonl"
        options = RunOptions(backend="host", source="sample", frames=40, display="none", results=results, conf=0.01)
        with pytest.raises(UserError, match="--results .*out.jsonl: no space left on") as caught:
            run_export(seg_export.folder, options)
        left = sorted(p.name for p in mount.iterdir())
    assert left == [], left
    assert "free" in caught.value.hint or "space" in caught.value.hint
