"""End-to-end parity of the CATSeg segmentor with the official code (shared fixture README)."""
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from cat_seg.models.head.cost_volume import cosine_cost, select_classes
from cat_seg.models.segmentor.patch_inference import patch_inference

LOGITS_ATOL = 1e-5   # fixture README "Suggested tolerances": float32 features and logits
PROBS_ATOL = 1e-6    # probabilities and float64 means
LOSS_RTOL = 1e-6


def preprocess(model, case, training=False):
    """Run a case's image through the model's data preprocessor as the mmseg pipeline would."""
    inputs = case['inputs']
    shape = (inputs['height'], inputs['width'])
    sample = SegDataSample(metainfo=dict(ori_shape=shape, img_shape=shape))
    if 'label' in inputs:
        sample.gt_sem_seg = PixelData(data=inputs['label'][None])
    # mmseg loads BGR; the preprocessor converts back to RGB (bgr_to_rgb=True).
    data = dict(inputs=[inputs['image'].flip(0)], data_samples=[sample])
    data = model.data_preprocessor(data, training=training)
    return data['inputs'], data['data_samples']


def assert_probe_and_mean(actual, expected, key, probe, mean_dims):
    torch.testing.assert_close(actual[..., probe, :, :] if actual.dim() == 4 else actual[probe],
                               expected[f'{key}_probe'], atol=PROBS_ATOL, rtol=0)
    torch.testing.assert_close(actual.double().mean(mean_dims), expected[f'{key}_class_mean'],
                               atol=PROBS_ATOL, rtol=0)


def cases_with(fixture, *keys):
    found = {name: case for name, case in fixture.cases.items()
             if all(k in case['expected'] for k in keys)}
    assert found, f'{fixture.path} has no case with {keys}'
    return found


@torch.no_grad()
def test_whole_image_parity(parity_fixture, parity_model):
    for name, case in cases_with(parity_fixture, 'clip_input', 'final_probs_probe').items():
        expected, names = case['expected'], case['inputs']['class_names']
        inputs, samples = preprocess(parity_model, case)
        views = parity_model.whole_views(inputs, [s.metainfo for s in samples])
        torch.testing.assert_close(views, expected['clip_input'], atol=LOGITS_ATOL, rtol=0)
        logits = parity_model.class_logits(views, parity_model.encode_vocabulary(names))
        torch.testing.assert_close(logits, expected['logits'], atol=LOGITS_ATOL, rtol=0)
        probs = parity_model.predict(inputs, samples, vocabulary=names)[0].seg_logits.data
        assert_probe_and_mean(probs, expected, 'final_probs', case['probe_classes'], (1, 2))


@torch.no_grad()
def test_sliding_window_parity(parity_fixture, parity_model):
    model = parity_model
    for name, case in cases_with(parity_fixture, 'fused_probs_probe').items():
        expected, names = case['expected'], case['inputs']['class_names']
        config = parity_fixture.config['sliding_window']
        inputs, samples = preprocess(model, case)
        text = model.encode_vocabulary(names)
        seen = {}

        def logits_fn(views):
            seen['clip'] = model.backbone(views).dense
            seen['logits'] = model.class_logits(views, text)
            return seen['logits']

        kernel = (config['kernel'], config['kernel'])
        fused = patch_inference(inputs, logits_fn, crop_size=kernel,
                                stride=(config['stride'], config['stride']),
                                resize_to=tuple(config['out_res']))
        clip_tokens = expected['clip_features'][:, 1:]
        torch.testing.assert_close(seen['clip'].flatten(2).transpose(1, 2), clip_tokens,
                                   atol=LOGITS_ATOL, rtol=0)
        torch.testing.assert_close(seen['logits'], expected['logits'], atol=LOGITS_ATOL, rtol=0)
        assert_probe_and_mean(fused[0], expected, 'fused_probs', case['probe_classes'], (1, 2))

        model.test_cfg = dict(mode='slide', crop_size=kernel,
                              stride=(config['stride'], config['stride']),
                              resize_to=tuple(config['out_res']), with_global_view=True)
        probs = model.predict(inputs, samples, vocabulary=names)[0].seg_logits.data
        assert_probe_and_mean(probs, expected, 'final_probs', case['probe_classes'], (1, 2))


def test_training_forward_and_loss_parity(parity_fixture, parity_model):
    model = parity_model.train()
    for name, case in cases_with(parity_fixture, 'loss').items():
        expected = case['expected']
        model.train_vocabulary = case['inputs']['class_names']
        inputs, samples = preprocess(model, case, training=True)
        views = model.whole_views(inputs, [s.metainfo for s in samples])
        text = model.encode_vocabulary(None, training=True)
        torch.testing.assert_close(text, expected['text_embeds'], atol=LOGITS_ATOL, rtol=0)
        torch.testing.assert_close(model.class_logits(views, text), expected['logits'],
                                   atol=LOGITS_ATOL, rtol=0)
        loss = model.loss(inputs, samples)['decode.loss_bce']
        torch.testing.assert_close(loss, expected['loss'], rtol=LOSS_RTOL, atol=0)


# 300 classes at the fixture's dimensions: the slow tier (over 10 s)
@pytest.mark.slow
@torch.no_grad()
def test_more_classes_than_pad_len_parity(parity_fixture, parity_model):
    for name, case in cases_with(parity_fixture, 'logits_strided').items():
        expected, names = case['expected'], case['inputs']['class_names']
        inputs, samples = preprocess(parity_model, case)
        parity_model.vocabulary = names
        logits = parity_model(inputs, samples, mode='tensor')
        stride = case['logits_stride']
        torch.testing.assert_close(logits[..., ::stride, ::stride], expected['logits_strided'],
                                   atol=LOGITS_ATOL, rtol=0)
        torch.testing.assert_close(logits[:, case['probe_classes']], expected['logits_probe'],
                                   atol=LOGITS_ATOL, rtol=0)
        torch.testing.assert_close(logits.double().mean((0, 2, 3)), expected['logits_class_mean'],
                                   atol=PROBS_ATOL, rtol=0)
        dropped = expected['dropped_classes'][0]
        assert (logits[0, dropped] == -100.0).all()


@torch.no_grad()
def test_stage_parity_text_guidance_and_class_selection(parity_fixture, parity_model):
    """Text embeddings of every case; guidance maps and the top-k selection where recorded."""
    model = parity_model
    for name, case in parity_fixture.cases.items():
        expected, names = case['expected'], case['inputs']['class_names']
        assert model.text_encoder.tokenize(names).tolist() == case['inputs']['token_ids'].tolist()
        text = model.encode_vocabulary(names)
        torch.testing.assert_close(text, expected['text_embeds'], atol=LOGITS_ATOL, rtol=0)
        if 'res4_probe' in expected:
            inputs, samples = preprocess(model, case)
            views = model.whole_views(inputs, [s.metainfo for s in samples])
            feats = model.backbone(views)
            guidance = model.guidance(views, feats)
            torch.testing.assert_close(guidance.spatial, expected['res3'], atol=LOGITS_ATOL, rtol=0)
            for level, key in zip(guidance.decoder, ('res4', 'res5')):
                probe = expected[f'{key}_probe']
                torch.testing.assert_close(level[:, :probe.shape[1]], probe, atol=LOGITS_ATOL,
                                           rtol=0)
                torch.testing.assert_close(level.double().mean((0, 2, 3)),
                                           expected[f'{key}_channel_mean'], atol=PROBS_ATOL, rtol=0)
        if 'kept_classes' in expected:
            inputs, samples = preprocess(model, case)
            views = model.whole_views(inputs, [s.metainfo for s in samples])
            cost = cosine_cost(model.backbone(views).dense, text[None])
            scores = cost.transpose(1, 2).flatten(2).amax(-1)
            torch.testing.assert_close(scores, expected['class_scores'], atol=LOGITS_ATOL, rtol=0)
            kept = select_classes(cost, parity_fixture.config['aggregator']['pad_len'])
            assert kept.tolist() == expected['kept_classes'].tolist()
