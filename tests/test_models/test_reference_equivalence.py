"""The optimized CAT-Seg equals a straightforward computation (tests/reference_head.py).

Random tiny models with the release's pad_len of 256, vocabularies shorter than, equal to and
longer than it, whole and sliding inference, and the exact all-classes mode (in class chunks).
"""
import copy

import pytest
import torch

from catseg_testing import raw_batch
from reference_head import reference_head_forward


@pytest.mark.parametrize('mode', ['whole', 'slide'])
@pytest.mark.parametrize('num_classes,keep_all', [(100, False), (256, False), (300, False),
                                                  (300, True)])
def test_optimized_segmentor_equals_the_reference(tiny_catseg, monkeypatch, mode, num_classes,
                                                  keep_all):
    model = tiny_catseg.eval()
    head = model.decode_head
    head.pad_len = 256
    for layer in head.layers:
        layer.class_agg.pad_len = 256
        # Non-zero padding, so that counting the padding slots instead of materialising them
        # is really compared.
        torch.nn.init.normal_(layer.class_agg.padding_tokens)
        torch.nn.init.normal_(layer.class_agg.padding_guidance)
    if keep_all:
        head.keep_all_classes, head.class_chunk_size = True, 64
    if mode == 'whole':
        model.test_cfg = dict(mode='whole')
    data = model.data_preprocessor(raw_batch(sizes=((70, 90),)), False)
    vocabulary = [f'class {i}' for i in range(num_classes)]
    with torch.no_grad():
        optimized = model.predict(data['inputs'], copy.deepcopy(data['data_samples']),
                                  vocabulary=vocabulary)[0]
        monkeypatch.setattr(head, 'forward', lambda inputs: reference_head_forward(head, inputs))
        reference = model.predict(data['inputs'], copy.deepcopy(data['data_samples']),
                                  vocabulary=vocabulary)[0]
    torch.testing.assert_close(optimized.seg_logits.data, reference.seg_logits.data,
                               atol=1e-5, rtol=1e-5)
    # Labels agree wherever the reference's best class leads by more than the tolerance
    # (random weights leave near-ties among hundreds of classes).
    top2 = reference.seg_logits.data.topk(2, dim=0).values
    clear = (top2[0] - top2[1]) > 2e-5
    assert clear.float().mean() > 0.5
    assert torch.equal(optimized.pred_sem_seg.data[0][clear], reference.pred_sem_seg.data[0][clear])
