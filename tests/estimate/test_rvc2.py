"""The RVC2 estimate's behaviour: SHAVEs, threads, the link floor, unknown ops."""

from __future__ import annotations

import pytest

from oakpipe.estimate import calibrate, rvc2
from oakpipe.estimate.layers import Layer, LayerTable


def resnet50() -> LayerTable:
    return next(r.table for r in calibrate.load_rows() if r.key == "resnet50_224")


def test_fps_is_the_inverse_of_the_period_and_latency_counts_threads():
    e = rvc2.estimate(resnet50(), shaves=8, threads=2)
    assert e.fps == pytest.approx(1000 / e.period_ms) and e.latency_ms == pytest.approx(2 * e.period_ms)
    low, high = e.fps_range
    assert low == pytest.approx(e.fps / (1 + rvc2.KNOWN_ERROR)) and high == pytest.approx(e.fps * (1 + rvc2.KNOWN_ERROR))


def test_fewer_shaves_are_slower_more_are_faster():
    fps = [rvc2.estimate(resnet50(), shaves=s).fps for s in (4, 6, 8, 12)]
    assert fps == sorted(fps) and fps[0] < fps[-1]
    assert "extrapolated" in rvc2.estimate(resnet50(), shaves=6).basis
    with pytest.raises(ValueError):
        rvc2.estimate(resnet50(), shaves=0)


def test_a_one_layer_model_is_held_to_the_link_floor():
    frame = 3 * 512 * 512  # a big frame through a cheap layer: the transfer outweighs the compute
    layer = Layer("/Div", "Div", "memory", 0, 2 * frame, 2 * frame, 0)
    table = LayerTable([layer], frame, 2 * frame)
    e = rvc2.estimate(table)
    assert e.link_bound and e.period_ms == pytest.approx(rvc2.io_floor_ms(table))
    assert e.fps < 1000 / rvc2.FLOOR_FIXED_MS


def test_an_unknown_op_widens_the_range_and_says_so():
    table = resnet50()
    odd = LayerTable(table.layers + [Layer("/x/Hardmax", "Hardmax", "unknown", 0, 4000, 4000, 0)],
                     table.input_bytes, table.output_bytes)
    e = rvc2.estimate(odd)
    assert e.unknown_ops == ("Hardmax",) and "Hardmax" in e.line() and "Hardmax" in e.basis
    low, high = e.fps_range
    assert high / low == pytest.approx((1 + rvc2.UNKNOWN_ERROR) ** 2)
    assert high / low > (1 + rvc2.KNOWN_ERROR) ** 2


def test_recommended_shaves_leave_room_for_the_camera():
    assert rvc2.recommended_shaves(2) == 6 and rvc2.recommended_shaves(1) == 13
