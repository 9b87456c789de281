"""Post-processing without full probabilities: no (T, H, W) map at the original size."""
import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from cat_seg.models import execution
from catseg_testing import raw_batch

SIZE = (70, 90)   # the original size: no other map of the model has it


@pytest.mark.parametrize('mode', ['whole', 'slide'])
def test_plain_plan_upsamples_a_class_chunk_at_a_time(tiny_catseg, monkeypatch, mode):
    """return_probs=False under the plain plan: every map upsampled to ori_shape holds at most
    the plan's budget of classes, every class is upsampled once, and the labels and class scores
    are those of the full probabilities."""
    model = tiny_catseg.eval()
    model.execution = 'plain'
    if mode == 'whole':
        model.test_cfg = dict(mode='whole')
    assert model.test_cfg['mode'] == mode
    data = model.data_preprocessor(raw_batch(sizes=(SIZE,)), False)
    vocabulary = [f'class {i}' for i in range(12)]
    budget = 5                                      # classes per upsampled chunk
    monkeypatch.setitem(execution.EXECUTION_PLANS, 'plain', dataclasses.replace(
        execution.PLAIN_PLAN, argmax_chunk_bytes=budget * SIZE[0] * SIZE[1] * 4))

    def predict(return_probs):
        model.test_cfg = dict(model.test_cfg, return_probs=return_probs)
        with torch.no_grad():
            return model.predict(data['inputs'], copy.deepcopy(data['data_samples']),
                                 vocabulary=vocabulary)[0]

    full = predict(True)
    upsampled = []
    interpolate = F.interpolate

    def spy(*args, **kwargs):
        out = interpolate(*args, **kwargs)
        if tuple(out.shape[-2:]) == SIZE:
            upsampled.append(out[0].shape[0] if out.dim() == 4 else 1)
        return out

    monkeypatch.setattr(F, 'interpolate', spy)
    lean = predict(False)
    assert upsampled and max(upsampled) <= budget and sum(upsampled) == len(vocabulary)
    assert 'seg_logits' not in lean
    assert torch.equal(lean.pred_sem_seg.data, full.pred_sem_seg.data)
    torch.testing.assert_close(lean.pred_class_scores, full.seg_logits.data.flatten(1).mean(1))
