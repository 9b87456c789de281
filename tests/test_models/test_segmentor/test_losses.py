import math

import pytest
import torch

from cat_seg.models import CATSegBCELoss


def test_hand_computed_bce_with_ignore_pixels_as_negatives_or_masked():
    logits = torch.tensor([[[[0.0, 2.0]], [[1.0, -1.0]]]])     # (B=1, T=2, H=1, W=2)
    label = torch.tensor([[[1, 255]]])                          # pixel 0: class 1; pixel 1: ignore

    def bce(x, y):
        return -(y * math.log(1 / (1 + math.exp(-x))) + (1 - y) * math.log(1 - 1 / (1 + math.exp(-x))))

    pixel0 = bce(0.0, 0) + bce(1.0, 1)
    pixel1 = bce(2.0, 0) + bce(-1.0, 0)
    negative = CATSegBCELoss('negative')(logits, label)
    masked = CATSegBCELoss('mask', loss_weight=2.0)(logits, label)
    assert negative.item() == pytest.approx((pixel0 + pixel1) / 4, rel=1e-6)
    assert masked.item() == pytest.approx(2.0 * pixel0 / 2, rel=1e-6)


def test_labels_outside_the_vocabulary_are_an_error():
    with pytest.raises(ValueError, match='label 5 is outside the 2 classes'):
        CATSegBCELoss()(torch.zeros(1, 2, 1, 1), torch.tensor([[[5]]]))


@pytest.mark.parametrize('kwargs,message', [
    (dict(ignore_mode='drop'), "ignore_mode='drop' is not one of"),
    (dict(loss_name='bce'), "loss_name='bce' must start with 'loss'"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CATSegBCELoss(**kwargs)
