"""The CATSeg segmentor: modes, vocabulary handling, fine-tuning through a real optimizer."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmseg.registry import MODELS

from cat_seg.models.segmentor import precision
from cat_seg.models.segmentor.postprocessing import ClassMaps, argmax_at_original, to_original
from catseg_testing import REPO_ROOT, raw_batch

NAMES = ['sky', 'grass', 'road']


def batch(model, sizes=((70, 90), (70, 90)), with_labels=False, training=False):
    """The same batch after the model's data preprocessor."""
    data = model.data_preprocessor(raw_batch(sizes, with_labels), training=training)
    return data['inputs'], data['data_samples']


@pytest.mark.parametrize('arch,params', [
    # (trainable, total) with the release q/v policy; figures from the official release.
    ('vit-b16', (25.12, 154.29)),
    ('vit-l14-336', (70.27, 433.73)),
])
def test_trainable_parameters_at_real_dimensions(arch, params):
    cfg = Config.fromfile(str(REPO_ROOT / 'configs' / (
        'catseg_vitb.py' if arch == 'vit-b16' else 'catseg_vitl.py')), lazy_import=False)
    with torch.device('meta'):     # counts only: no memory, no initialisation
        model = MODELS.build(cfg.model)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert (round(trainable / 1e6, 2), round(total / 1e6, 2)) == params
    clip_trainable = set(model.trainable_clip_parameters)
    assert all(n.endswith(('attn.q_proj_weight', 'attn.v_proj_weight')) for n in clip_trainable)


def test_three_modes_share_one_feature_path(tiny_catseg):
    model = tiny_catseg.eval()
    model.vocabulary = NAMES
    inputs, samples = batch(model)
    with torch.no_grad():
        logits = model(inputs, samples, mode='tensor')
        model.test_cfg = dict(mode='whole')
        predictions = model(inputs, samples, mode='predict')
    assert logits.shape == (2, 3, 16, 16)
    probs = torch.nn.functional.interpolate(logits.sigmoid(), size=(70, 90), mode='bilinear',
                                            align_corners=False)
    torch.testing.assert_close(predictions[0].seg_logits.data, probs[0])
    assert predictions[1].pred_sem_seg.data.shape == (1, 70, 90)

    model.train()
    model.train_vocabulary = NAMES
    inputs, samples = batch(model, with_labels=True, training=True)
    losses = model(inputs, samples, mode='loss')
    assert set(losses) == {'decode.loss_bce', 'decode.acc_seg'}
    assert losses['decode.loss_bce'].requires_grad


def test_vocabulary_changes_per_call_without_rebuilding(tiny_catseg):
    model = tiny_catseg.eval()
    inputs, samples = batch(model, sizes=((64, 96),))
    with torch.no_grad():
        three = model.predict(inputs, samples, vocabulary=NAMES)[0].seg_logits.data
        one = model.predict(inputs, None, vocabulary=['grass'])[0].seg_logits.data
        reordered = model.predict(inputs, None, vocabulary=['road', 'sky', 'grass'])
    assert three.shape == (3, 64, 96) and one.shape == (1, 64, 96)
    # T = 1 pads differently from T = 3, so only the shape is comparable; a permutation is exact
    # up to float rounding (no positional encoding over classes).
    torch.testing.assert_close(reordered[0].seg_logits.data, three[[2, 0, 1]], atol=1e-5, rtol=0)


@pytest.mark.parametrize('num_classes', [1, 171, 300])
def test_vocabulary_sizes_run(tiny_catseg, num_classes):
    model = tiny_catseg.eval()
    inputs, _ = batch(model, sizes=((64, 64),))
    names = [f'class {i}' for i in range(num_classes)]
    with torch.no_grad():
        logits = model.class_logits(model.whole_views(inputs, [dict(img_shape=(64, 64))]),
                                    model.encode_vocabulary(names))
    assert logits.shape == (1, num_classes, 16, 16)
    kept = (logits[0, :, 0, 0] != -100).sum()
    assert kept == min(num_classes, model.decode_head.pad_len)


def test_batch_of_two_equals_two_single_images(tiny_catseg):
    model = tiny_catseg.eval()
    model.vocabulary = NAMES
    inputs, samples = batch(model, sizes=((64, 80), (64, 80)))
    with torch.no_grad():
        both = model.predict(inputs, samples)
        first = model.predict(inputs[:1], samples[:1])
    torch.testing.assert_close(both[0].seg_logits.data, first[0].seg_logits.data)


def test_train_step_updates_only_policy_parameters(tiny_catseg):
    model = tiny_catseg.train()
    model.train_vocabulary = NAMES
    optim_wrapper = build_optim_wrapper(model, dict(
        type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-2, weight_decay=0.1)))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    data = raw_batch(sizes=((64, 64), (64, 64)), with_labels=True)
    for _ in range(2):
        model.train_step(data, optim_wrapper)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    clip_changed = {n for n in changed if n.startswith(('backbone.', 'text_encoder.'))}
    # The dense last image block computes no attention, so its query gets no gradient.
    last = len(model.backbone.transformer.resblocks) - 1
    unused = {f'backbone.transformer.resblocks.{last}.attn.q_proj_weight'}
    assert clip_changed == set(model.trainable_clip_parameters) - unused
    assert any(n.startswith('decode_head.') for n in changed)
    # k projections share nothing with q/v, so weight decay cannot have moved them.
    assert not any('k_proj_weight' in n for n in changed)


def test_missing_vocabulary_is_a_clear_error(tiny_catseg):
    inputs, samples = batch(tiny_catseg.eval())
    with pytest.raises(ValueError, match='CATSeg has no vocabulary: pass vocabulary'):
        tiny_catseg.predict(inputs, samples)


@pytest.mark.parametrize('test_cfg,message', [
    (dict(mode='sliding'), "test_cfg.mode='sliding' is not one of"),
    (dict(mode='slide', crop_size=(64, 64)), r"needs \['stride', 'resize_to'\]"),
    (dict(mode='whole', whole_output='crop'), "whole_output='crop' is not one of"),
    (dict(mode='whole', precision='int8'), "precision='int8' is not one of"),
    (dict(mode='whole', return_prob=False), r"unknown keys \['return_prob'\]"),
])
def test_bad_test_cfg(test_cfg, message):
    from catseg_testing import tiny_model_config
    cfg = tiny_model_config()
    cfg['test_cfg'] = test_cfg
    with pytest.raises(ValueError, match=message):
        MODELS.build(cfg)
    model = MODELS.build(tiny_model_config())
    with pytest.raises(ValueError, match=message):   # validated on every assignment too
        model.test_cfg = test_cfg


def test_whole_output_crop_padding_differs_only_for_padded_images(tiny_catseg):
    model = tiny_catseg.eval()
    outputs = {}
    for whole_output in ('stretch_padded', 'crop_padding'):
        model.test_cfg = dict(mode='whole', whole_output=whole_output)
        for size in ((64, 64), (50, 70)):
            inputs, samples = batch(model, sizes=(size,))
            with torch.no_grad():
                outputs[whole_output, size] = model.predict(inputs, samples, NAMES)[0]
    same = outputs['stretch_padded', (64, 64)].seg_logits.data
    torch.testing.assert_close(outputs['crop_padding', (64, 64)].seg_logits.data, same)
    assert not torch.allclose(outputs['stretch_padded', (50, 70)].seg_logits.data,
                              outputs['crop_padding', (50, 70)].seg_logits.data)
    assert outputs['crop_padding', (50, 70)].seg_logits.data.shape == (3, 50, 70)


@pytest.mark.parametrize('mode', ['whole', 'slide'])
def test_argmax_without_full_resolution_probabilities_is_the_same(tiny_catseg, mode):
    """return_probs=False upsamples one class at a time into the argmax; labels and class means
    equal those of the full (T, H, W) probabilities."""
    model = tiny_catseg.eval()
    if mode == 'whole':
        model.test_cfg = dict(mode='whole')
    batch = raw_batch(sizes=((70, 90),))
    data = model.data_preprocessor(batch, False)
    vocabulary = ['sky', 'grass', 'road', 'car', 'tree']
    with torch.no_grad():
        full = model.predict(data['inputs'], copy.deepcopy(data['data_samples']),
                             vocabulary=vocabulary)[0]
        model.test_cfg = dict(model.test_cfg, return_probs=False)
        lean = model.predict(data['inputs'], copy.deepcopy(data['data_samples']),
                             vocabulary=vocabulary)[0]
    assert 'seg_logits' not in lean
    assert lean.pred_sem_seg.data.shape == (1, 70, 90)
    assert torch.equal(lean.pred_sem_seg.data, full.pred_sem_seg.data)
    torch.testing.assert_close(lean.pred_class_scores, full.seg_logits.data.flatten(1).mean(1))


@pytest.mark.parametrize('classes_at_a_time', [1, 2, 6])
def test_class_by_class_argmax_breaks_ties_like_one_argmax(classes_at_a_time):
    """Classes 1 and 4 are equal everywhere: class 1 must win, whether they are upsampled in
    one group or in two."""
    prob = torch.rand(6, 6, 8) * 0.5
    prob[4] = prob[1] = 0.9
    meta = dict(ori_shape=(12, 16))
    groups = [ClassMaps(torch.arange(0, 3), prob[:3]), ClassMaps(torch.arange(3, 6), prob[3:])]
    label, means = argmax_at_original(groups, meta, 6, max_bytes=classes_at_a_time * 12 * 16 * 4)
    full = to_original(prob, meta)
    assert torch.equal(label, full.argmax(0, keepdim=True)) and (label == 1).all()
    torch.testing.assert_close(means, full.flatten(1).mean(1))


def test_bf16_autocast_stays_close_to_fp32(tiny_catseg, monkeypatch):
    """The reduced-precision switch changes the arithmetic, not the result's form: float32
    probabilities at ori_shape, close to fp32 (tiny random model; real-dimension figures are in
    the README). bf16 runs even on a CPU without bf16 units (emulated)."""
    monkeypatch.setattr(precision, 'cpu_has_bf16', lambda: True)
    model = tiny_catseg.eval()
    model.test_cfg = dict(mode='whole')
    inputs, samples = batch(model, sizes=((64, 80),))
    with torch.no_grad():
        fp32 = model.predict(inputs, copy.deepcopy(samples), vocabulary=NAMES)[0].seg_logits.data
        model.test_cfg = dict(model.test_cfg, precision='bf16')
        bf16 = model.predict(inputs, copy.deepcopy(samples), vocabulary=NAMES)[0].seg_logits.data
    assert bf16.dtype == torch.float32 and bf16.shape == fp32.shape
    assert not torch.equal(bf16, fp32)                # autocast really ran in bf16
    torch.testing.assert_close(bf16, fp32, atol=0.05, rtol=0)
