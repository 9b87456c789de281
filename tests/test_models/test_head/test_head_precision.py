"""The whole head under fp16 / bf16 autocast with large activations at T = 847: finite logits
and loss (the class-aggregation sums alone: tests/test_models/test_execution.py)."""
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from catseg_testing import tiny_model_config

NUM_CLASSES = 847


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
@pytest.mark.parametrize('execution', ['plain', 'cpu'])
def test_head_logits_and_loss_stay_finite_in_half_precision(dtype, execution):
    torch.manual_seed(0)
    model = MODELS.build(dict(tiny_model_config(), execution=execution)).train()
    model.decode_head.keep_all_classes = True     # every one of the 847 classes aggregated
    with torch.no_grad():   # attention inputs of about +-40 per channel, as in training
        for layer in model.decode_head.layers:
            for linear in (layer.class_agg.attn.q, layer.class_agg.attn.k,
                           layer.class_agg.attn.v):
                linear.weight.mul_(40)
    views = 3 * torch.randn(1, 3, *model.clip_size)
    text = torch.randn(NUM_CLASSES, 1, 32)
    sample = SegDataSample(metainfo=dict(img_shape=(64, 64)))
    sample.gt_sem_seg = PixelData(data=torch.randint(0, NUM_CLASSES, (1, 64, 64)))
    with torch.no_grad(), torch.autocast('cpu', dtype=dtype):
        logits = model.class_logits(views, text)
        loss = model.decode_head.loss_by_feat(logits, [sample])['loss_bce']
    assert logits.shape == (1, NUM_CLASSES, 16, 16) and logits.dtype != torch.float32
    assert torch.isfinite(logits).all() and torch.isfinite(loss)
