import math

import numpy as np
import pytest
import torch

from pixelwise.engine.losses import SegmentationLoss, class_weights_from_counts
from pixelwise.engine.schedule import lr_factor


def test_rare_classes_get_larger_weights_and_unseen_the_largest():
    counts = np.array([1000, 100, 10, 0])
    w = class_weights_from_counts(counts)
    assert w[2] > w[1] > w[0]
    assert w[3] == w.max()
    assert math.isclose(float(w[:3].mean()), 1.0, rel_tol=1e-5)


def test_ce_ignores_the_ignore_value():
    logits = torch.randn(1, 3, 4, 4)
    target = torch.randint(0, 3, (1, 4, 4))
    loss = SegmentationLoss(3, ignore_index=9)
    a = loss(logits, target)
    t2 = target.clone()
    t2[0, 0, 0] = 9
    logits2 = logits.clone()
    logits2[0, :, 0, 0] = 100.0  # would dominate the loss if it were counted
    b = loss(logits2, t2)
    assert torch.isfinite(b) and b < a * 2


def test_dice_is_zero_for_a_perfect_prediction_and_positive_otherwise():
    target = torch.randint(0, 3, (2, 8, 8))
    perfect = torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float() * 50
    loss = SegmentationLoss(3, dice_weight=1.0)
    assert float(loss.dice(perfect, target)) < 1e-3
    assert float(loss.dice(torch.zeros_like(perfect), target)) > 0.3


@pytest.mark.parametrize("kind", ["poly", "cosine"])
def test_schedule_warms_up_then_decays_to_zero(kind):
    f = [lr_factor(i, 100, 10, kind) for i in range(101)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[10:], f[11:]))
    assert f[100] == pytest.approx(0.0, abs=1e-9)
