"""Execution plans: 'plain' (the paper's operations, batched) and 'cpu' compute the same model.

Tiny random models with the release's pad_len of 256: vocabularies shorter than, equal to and
longer than it, and the exact all-classes mode, in whole and sliding inference and in training.
"""
import copy

import pytest
import torch

from cat_seg.models.head.class_aggregation import ClassAggregation
from cat_seg.models.execution import EXECUTION_PLANS, resolve_execution
from catseg_testing import assert_labels_score_best, raw_batch


def test_auto_resolves_to_cpu_on_cpus_and_plain_elsewhere():
    assert resolve_execution('auto', 'cpu') == 'cpu'
    assert resolve_execution('auto', 'cuda') == 'plain'
    assert resolve_execution('auto', 'mps') == 'plain'
    assert resolve_execution('plain', 'cpu') == 'plain'
    assert resolve_execution('cpu', 'cuda') == 'cpu'


def test_unknown_plans_are_refused_with_the_choices(tiny_catseg):
    with pytest.raises(ValueError, match=r"execution='fast' is not one of \['plain', 'cpu', "
                                         r"'auto'\]"):
        resolve_execution('fast', 'cpu')
    from mmseg.registry import MODELS
    from catseg_testing import tiny_model_config
    with pytest.raises(ValueError, match="execution='gpu' is not one of"):
        MODELS.build(dict(tiny_model_config(), execution='gpu'))


def release_padding(model, keep_all=False):
    """The release's pad_len of 256 with non-zero padding tokens, so that the padding matters."""
    head = model.decode_head
    head.pad_len, head.keep_all_classes = 256, keep_all
    for layer in head.layers:
        layer.class_agg.pad_len = 256
        torch.nn.init.normal_(layer.class_agg.padding_tokens)
        torch.nn.init.normal_(layer.class_agg.padding_guidance)
    return model


def predict_under(model, plan, data, vocabulary):
    model.execution = plan
    with torch.no_grad():
        return model.predict(data['inputs'], copy.deepcopy(data['data_samples']),
                             vocabulary=vocabulary)[0]


@pytest.mark.parametrize('mode', ['whole', 'slide'])
@pytest.mark.parametrize('num_classes,keep_all', [(100, False), (256, False), (300, False),
                                                  (300, True)])
def test_plain_and_cpu_plans_give_the_same_predictions(tiny_catseg, mode, num_classes,
                                                       keep_all):
    model = release_padding(tiny_catseg.eval(), keep_all)
    if mode == 'whole':
        model.test_cfg = dict(mode='whole')
    assert model.test_cfg['mode'] == mode
    data = model.data_preprocessor(raw_batch(sizes=((70, 90),)), False)
    vocabulary = [f'class {i}' for i in range(num_classes)]
    text = model.encode_vocabulary(vocabulary)
    views = model.whole_views(data['inputs'], [s.metainfo for s in data['data_samples']])
    logits = {}
    for plan in ('plain', 'cpu'):
        model.execution = plan
        with torch.no_grad():
            logits[plan] = model.class_logits(views, text)
    torch.testing.assert_close(logits['cpu'], logits['plain'], atol=1e-5, rtol=1e-5)
    if keep_all:
        assert (logits['plain'] != -100).all()
    plain = predict_under(model, 'plain', data, vocabulary)
    cpu = predict_under(model, 'cpu', data, vocabulary)
    torch.testing.assert_close(cpu.seg_logits.data, plain.seg_logits.data, atol=1e-5, rtol=1e-5)
    # Both plans' scores differ by at most the tolerance above, so the cpu label is within
    # twice that of the plain plan's best class at every pixel.
    scores = plain.seg_logits.data
    assert_labels_score_best(scores, cpu.pred_sem_seg.data[0],
                             2 * (1e-5 + 1e-5 * float(scores.abs().max())))


def test_plans_agree_without_full_probabilities(tiny_catseg):
    """return_probs=False: the cpu plan's class-by-class argmax and mean scores equal the plain
    plan's batched ones."""
    model = tiny_catseg.eval()
    data = model.data_preprocessor(raw_batch(sizes=((70, 90),)), False)
    probs = predict_under(model, 'plain', data, ['sky', 'tree', 'road']).seg_logits.data
    model.test_cfg = dict(model.test_cfg, return_probs=False)
    plain = predict_under(model, 'plain', data, ['sky', 'tree', 'road'])
    cpu = predict_under(model, 'cpu', data, ['sky', 'tree', 'road'])
    assert 'seg_logits' not in plain and 'seg_logits' not in cpu
    torch.testing.assert_close(cpu.pred_class_scores, plain.pred_class_scores, atol=1e-6,
                               rtol=1e-6)
    for labels in (plain.pred_sem_seg.data[0], cpu.pred_sem_seg.data[0]):
        assert_labels_score_best(probs, labels, 1e-5)


@pytest.mark.parametrize('num_classes', [5, 300])
def test_plans_give_the_same_loss_and_gradients(tiny_catseg, num_classes):
    model = release_padding(tiny_catseg.train(), keep_all=num_classes > 256)
    model.train_vocabulary = [f'class {i}' for i in range(num_classes)]
    data = model.data_preprocessor(raw_batch(with_labels=True), True)
    results = {}
    for plan in ('plain', 'cpu'):
        model.execution = plan
        model.zero_grad()
        loss = sum(model.loss(data['inputs'], data['data_samples']).values())
        loss.backward()
        results[plan] = loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()
                                        if p.grad is not None}
    (plain_loss, plain_grads), (cpu_loss, cpu_grads) = results['plain'], results['cpu']
    torch.testing.assert_close(cpu_loss, plain_loss, atol=1e-6, rtol=1e-5)
    assert plain_grads.keys() == cpu_grads.keys() and len(plain_grads) > 20
    for name, grad in plain_grads.items():
        torch.testing.assert_close(cpu_grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize('num_classes', [256, 847])
@pytest.mark.parametrize('execution', ['plain', 'cpu'])
def test_class_aggregation_in_float16_stays_finite_and_close(num_classes, execution):
    """Large activations summed over hundreds of classes would overflow float16 (max 65504);
    the attention's sums are means, so half precision stays close to float32."""
    plan = EXECUTION_PLANS[execution]
    torch.manual_seed(0)
    layer = ClassAggregation(32, 16, num_heads=2, pad_len=256)
    torch.nn.init.normal_(layer.padding_tokens)
    torch.nn.init.normal_(layer.padding_guidance)
    with torch.no_grad():   # q, k, v of about +-40 per channel
        for linear in (layer.attn.q, layer.attn.k, layer.attn.v):
            linear.weight.mul_(40)
    x = 30 * torch.randn(1, num_classes, 2, 3, 32)
    guidance = 5 * torch.randn(1, num_classes, 16)
    with torch.no_grad():
        expected = layer(x, guidance, (1, 1), plan=plan)
        y, text = layer.norm1(x.flatten(2, 3)), guidance[:, :, None]
        k = layer._heads(layer.attn.k(y, text)).half()
        v = layer._heads(layer.attn.v(y)).half()
        half = layer.half()(x.half(), guidance.half(), (1, 1), plan=plan).float()
    # The plain sum of key-value products over the classes would overflow in float16.
    assert not torch.isfinite(torch.einsum('btpnd,btpne->bpnde', k, v)).all()
    assert torch.isfinite(half).all()
    torch.testing.assert_close(half, expected, atol=0.02 * expected.abs().max().item(),
                               rtol=0.01)
