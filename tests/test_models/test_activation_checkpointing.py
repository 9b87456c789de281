"""Activation checkpointing (``with_cp``): recomputed in training only, same gradients."""
import pytest
import torch
from mmseg.registry import MODELS

from cat_seg.weights.convert_release import convert_official_state_dict
from catseg_testing import catseg_config_from_fixture, raw_batch, tiny_model_config
from test_parity.test_segmentor_parity import preprocess

GRAD_RTOL = 1e-6


def build(config, with_cp, execution='plain', state_dict=None):
    """The model of ``config`` (seeded), its image and text encoders and head checkpointed if
    ``with_cp``."""
    config = dict(config, execution=execution)
    config['backbone'] = dict(config['backbone'], with_cp=with_cp)
    config['text_encoder'] = dict(config['text_encoder'], with_cp=with_cp)
    config['decode_head'] = dict(config['decode_head'], with_cp=with_cp)
    torch.manual_seed(0)
    model = MODELS.build(config)
    if state_dict is not None:
        model.load_state_dict(state_dict)
    return model


def training_grads(model, batch=None):
    """Loss and gradients {name: grad} of one training step (default: a synthetic batch)."""
    model.train()
    if batch is None:
        model.train_vocabulary = ['sky', 'grass', 'road', 'car', 'tree', 'person']
        data = model.data_preprocessor(raw_batch(with_labels=True), training=True)
        batch = data['inputs'], data['data_samples']
    loss = sum(model.loss(*batch).values())
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters()
                           if p.grad is not None}


def count_calls(*modules):
    """A list that grows at every call of each module (forward pre-hooks: a recomputation
    that stops early still counts)."""
    calls = []
    for module in modules:
        module.register_forward_pre_hook(lambda *args: calls.append(1))
    return calls


def checkpointed_units(model):
    """A CLIP image block, a CLIP text block, an aggregation layer and a decoder stage: what
    ``with_cp`` recomputes."""
    return (model.backbone.transformer.resblocks[0], model.text_encoder.transformer.resblocks[0],
            model.decode_head.layers[0], model.decode_head.decoder.stages[0])


def assert_same_grads(reference, checkpointed):
    assert reference.keys() == checkpointed.keys() and reference
    for name, grad in reference.items():
        scale = float(grad.abs().max())
        torch.testing.assert_close(checkpointed[name], grad, rtol=GRAD_RTOL,
                                   atol=GRAD_RTOL * scale, msg=name)


@pytest.mark.parametrize('execution', ['plain', 'cpu'])
def test_with_cp_recomputes_blocks_layers_and_stages_in_training_with_the_same_gradients(
        execution):
    model, checkpointed = (build(tiny_model_config(), cp, execution) for cp in (False, True))
    plain_calls = count_calls(*checkpointed_units(model))
    cp_calls = count_calls(*checkpointed_units(checkpointed))
    loss, grads = training_grads(model)
    cp_loss, cp_grads = training_grads(checkpointed)
    # Checkpointed units run again in the backward pass: twice per step, not once.
    assert (len(plain_calls), len(cp_calls)) == (4, 8)
    assert float(loss) == float(cp_loss)
    assert_same_grads(grads, cp_grads)
    assert {name.split('.')[0] for name in cp_grads} >= {'backbone', 'text_encoder',
                                                        'decode_head'}


def test_with_cp_recomputes_nothing_in_eval():
    model = build(tiny_model_config(), with_cp=True).eval()
    model.vocabulary = ['sky', 'road', 'tree']
    calls = count_calls(*checkpointed_units(model))
    data = model.data_preprocessor(raw_batch(), training=False)
    logits = model(data['inputs'], data['data_samples'], mode='tensor')
    logits.sum().backward()     # a gradient is recorded (views need none), nothing recomputed
    assert model.backbone.with_cp and model.text_encoder.with_cp and model.decode_head.with_cp
    assert len(calls) == 4


def test_with_cp_gradients_on_the_parity_fixture(parity_fixture):
    config = catseg_config_from_fixture(parity_fixture.config)
    state_dict = convert_official_state_dict(parity_fixture.state_dict)
    case = next(c for c in parity_fixture.cases.values() if 'loss' in c['expected'])
    results = []
    for with_cp in (False, True):
        model = build(config, with_cp, state_dict=state_dict)
        model.train_vocabulary = case['inputs']['class_names']
        results.append(training_grads(model, preprocess(model, case, training=True)))
    (loss, grads), (cp_loss, cp_grads) = results
    torch.testing.assert_close(cp_loss, loss, rtol=GRAD_RTOL, atol=0)
    assert_same_grads(grads, cp_grads)
