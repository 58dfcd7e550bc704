"""Verify tells an untrained model (BatchNorm statistics at their initial values) apart."""

from __future__ import annotations

import torch
from torch import nn

from oakpipe.verify.untrained import untrained_batchnorm


def small_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.BatchNorm2d(8))


def test_fresh_batchnorm_is_reported_as_untrained():
    note = untrained_batchnorm(small_net().eval())
    assert note is not None and note.startswith("2 of 2 BatchNorm layers") and "--weights" in note


def test_batchnorm_with_statistics_is_not_reported():
    net = small_net()
    net.train()
    with torch.no_grad():
        net(torch.rand(4, 3, 16, 16))  # one pass in train mode moves the running statistics
    assert untrained_batchnorm(net.eval()) is None
    assert untrained_batchnorm(nn.Sequential(nn.Conv2d(3, 3, 1))) is None  # no BatchNorm at all
