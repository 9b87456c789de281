"""Activation checkpointing (``with_cp``): recomputed in training only, same gradients."""
import copy

import torch
from mmseg.registry import MODELS

from cat_seg.weights.convert_release import convert_official_state_dict
from catseg_testing import catseg_config_from_fixture, raw_batch, tiny_model_config
from test_parity.test_segmentor_parity import preprocess

GRAD_RTOL = 1e-6


def training_grads(model, data_samples=None):
    """Loss and gradients {name: grad} of one training step on a labelled synthetic batch."""
    model.train()
    model.zero_grad()
    if data_samples is None:
        model.train_vocabulary = ['sky', 'grass', 'road', 'car', 'tree', 'person']
        data = model.data_preprocessor(raw_batch(with_labels=True), training=True)
        inputs, data_samples = data['inputs'], data['data_samples']
    else:
        inputs, data_samples = data_samples
    loss = sum(model.loss(inputs, data_samples).values())
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters()
                           if p.grad is not None}


def count_calls(module):
    """A list that grows by one at every forward of ``module``."""
    calls = []
    module.register_forward_pre_hook(lambda *args: calls.append(1))
    return calls


def assert_same_grads(reference, checkpointed):
    assert reference.keys() == checkpointed.keys() and reference
    for name, grad in reference.items():
        scale = float(grad.abs().max())
        torch.testing.assert_close(checkpointed[name], grad, rtol=GRAD_RTOL,
                                   atol=GRAD_RTOL * scale, msg=name)


def with_backbone_cp(model):
    checkpointed = copy.deepcopy(model)
    checkpointed.backbone.with_cp = True
    return checkpointed


def test_backbone_with_cp_recomputes_blocks_in_training_with_the_same_gradients():
    torch.manual_seed(0)
    model = MODELS.build(dict(tiny_model_config(), execution='plain'))
    checkpointed = with_backbone_cp(model)
    plain_calls = count_calls(model.backbone.transformer.resblocks[0])
    cp_calls = count_calls(checkpointed.backbone.transformer.resblocks[0])
    loss, grads = training_grads(model)
    cp_loss, cp_grads = training_grads(checkpointed)
    # Checkpointed blocks run again in the backward pass: twice per step, not once.
    assert (len(plain_calls), len(cp_calls)) == (1, 2)
    assert float(loss) == float(cp_loss)
    assert_same_grads(grads, cp_grads)
    assert any(name.startswith('backbone.') for name in cp_grads)


def test_backbone_with_cp_config_key_and_no_recompute_in_eval():
    config = tiny_model_config()
    config['backbone']['with_cp'] = True
    model = MODELS.build(config).eval()
    calls = count_calls(model.backbone.transformer.resblocks[0])
    views = torch.randn(1, 3, *model.clip_size, requires_grad=True)
    model.backbone(views).dense.sum().backward()
    assert model.backbone.with_cp and len(calls) == 1


def test_backbone_with_cp_gradients_on_the_parity_fixture(parity_fixture):
    config = catseg_config_from_fixture(parity_fixture.config)
    model = MODELS.build(dict(config, execution='plain'))
    model.load_state_dict(convert_official_state_dict(parity_fixture.state_dict))
    case = next(c for c in parity_fixture.cases.values() if 'loss' in c['expected'])
    model.train_vocabulary = case['inputs']['class_names']
    batch = preprocess(model, case, training=True)
    loss, grads = training_grads(model, batch)
    cp_loss, cp_grads = training_grads(with_backbone_cp(model), batch)
    torch.testing.assert_close(cp_loss, loss, rtol=GRAD_RTOL, atol=0)
    assert_same_grads(grads, cp_grads)
