"""Post-processing: no (T, H, W) map at the original size without full probabilities, and the
classes dropped beyond pad_len never upsampled one by one."""
import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from cat_seg.models import execution
from cat_seg.models.segmentor.patch_inference import patch_inference, window_offsets
from cat_seg.models.segmentor.postprocessing import class_probabilities, to_original
from catseg_testing import raw_batch

SIZE = (70, 90)   # the original size: no other map of the model has it


def assert_labels_of(labels, probs, margin: float = 1e-5):
    """``labels`` (H, W) are ``probs`` (T, H, W)'s argmax wherever its top two differ by more
    than ``margin`` (ten times the probabilities' tolerance); elsewhere a class within it."""
    top2 = probs.topk(2, dim=0).values
    decided = top2[0] - top2[1] > margin
    assert torch.equal(labels[decided], probs.argmax(0)[decided])
    assert (top2[0] - probs.gather(0, labels[None])[0] <= margin).all()


def predict(model, data: dict, vocabulary: list, return_probs: bool):
    """``model.predict`` of the preprocessed ``data``, with or without full probabilities."""
    model.test_cfg = dict(model.test_cfg, return_probs=return_probs)
    with torch.no_grad():
        return model.predict(data['inputs'], copy.deepcopy(data['data_samples']),
                             vocabulary=vocabulary)[0]


@pytest.mark.parametrize('mode', ['whole', 'slide'])
def test_plain_plan_upsamples_a_class_chunk_at_a_time(tiny_catseg, monkeypatch, mode):
    """return_probs=False under the plain plan: every map upsampled to ori_shape holds at most
    the plan's budget of classes, every class is upsampled once, and the labels and class scores
    are those of the full probabilities."""
    model = tiny_catseg.eval()
    model.execution = 'plain'
    model.decode_head.keep_all_classes = True      # every class has a map of its own
    if mode == 'whole':
        model.test_cfg = dict(mode='whole')
    assert model.test_cfg['mode'] == mode
    data = model.data_preprocessor(raw_batch(sizes=(SIZE,)), False)
    vocabulary = [f'class {i}' for i in range(12)]
    budget = 5                                      # classes per upsampled chunk
    monkeypatch.setitem(execution.EXECUTION_PLANS, 'plain', dataclasses.replace(
        execution.PLAIN_PLAN, argmax_chunk_bytes=budget * SIZE[0] * SIZE[1] * 4))

    full = predict(model, data, vocabulary, return_probs=True)
    upsampled = []
    interpolate = F.interpolate

    def spy(*args, **kwargs):
        out = interpolate(*args, **kwargs)
        if tuple(out.shape[-2:]) == SIZE:
            upsampled.append(out[0].shape[0] if out.dim() == 4 else 1)
        return out

    monkeypatch.setattr(F, 'interpolate', spy)
    lean = predict(model, data, vocabulary, return_probs=False)
    assert upsampled and max(upsampled) <= budget and sum(upsampled) == len(vocabulary)
    assert 'seg_logits' not in lean
    assert torch.equal(lean.pred_sem_seg.data, full.pred_sem_seg.data)
    torch.testing.assert_close(lean.pred_class_scores, full.seg_logits.data.flatten(1).mean(1))


@pytest.mark.parametrize('execution', ['plain', 'cpu'])
@pytest.mark.parametrize('mode', ['whole', 'slide'])
def test_dropped_classes_are_never_upsampled(tiny_catseg, monkeypatch, mode, execution):
    """Beyond pad_len the release drops classes per view, at a known constant logit: in slide
    mode they are neither upsampled to the crop nor to the original size one by one (one shared
    map stands for them), and in both modes the output equals that of every class's map merged
    and upsampled."""
    model = tiny_catseg.eval()
    model.execution = execution
    if mode == 'whole':
        model.test_cfg = dict(mode='whole')
    cfg = model.test_settings
    num_views = 1 if mode == 'whole' else len(window_offsets(
        cfg.resize_to, cfg.crop_size, cfg.stride)) + cfg.with_global_view
    kept_at_most = num_views * model.decode_head.pad_len            # classes some view kept
    vocabulary = [f'class {i}' for i in range(kept_at_most + 10)]
    data = model.data_preprocessor(raw_batch(sizes=(SIZE,)), False)
    meta = data['data_samples'][0].metainfo
    text = model.encode_vocabulary(vocabulary)
    with torch.no_grad():   # before: every class's logits (dropped: the constant) merged
        if mode == 'whole':
            dense = class_probabilities(model.whole_logits(data['inputs'], [meta], text))[0]
        else:
            dense = patch_inference(data['inputs'], lambda views: model.class_logits(views, text),
                                    cfg.crop_size, cfg.stride, cfg.resize_to)[0]
    expected = to_original(dense, meta)

    full = predict(model, data, vocabulary, return_probs=True)
    upsampled = {SIZE: 0, tuple(cfg.crop_size or ()): 0}
    interpolate = F.interpolate

    def spy(*args, **kwargs):
        out = interpolate(*args, **kwargs)
        if tuple(out.shape[-2:]) in upsampled and out.shape[-3] != 3:   # class maps, not images
            upsampled[tuple(out.shape[-2:])] += out.shape[:-2].numel()
        return out

    monkeypatch.setattr(F, 'interpolate', spy)
    lean = predict(model, data, vocabulary, return_probs=False)
    if mode == 'slide':   # at most one map per kept class and one shared map, per view
        assert upsampled[SIZE] <= kept_at_most + 1 < len(vocabulary)
        assert 0 < upsampled[tuple(cfg.crop_size)] <= num_views * (kept_at_most + 1)
    torch.testing.assert_close(full.seg_logits.data, expected, atol=1e-6, rtol=0)
    assert_labels_of(full.pred_sem_seg.data[0], expected)
    assert torch.equal(lean.pred_sem_seg.data, full.pred_sem_seg.data)
    torch.testing.assert_close(lean.pred_class_scores, expected.flatten(1).mean(1))
