import pytest
import torch
from torch import nn

from cat_seg.models.clip.finetune_policy import FINETUNE_POLICIES, apply_finetune_policy


class Attention(nn.Module):

    def __init__(self):
        super().__init__()
        for name in ('q_proj_weight', 'k_proj_weight', 'v_proj_weight', 'in_proj_bias'):
            self.register_parameter(name, nn.Parameter(torch.zeros(2, 2)))
        self.out_proj = nn.Linear(2, 2)


class Tower(nn.Module):
    """Parameter names of a CLIP tower: positional table, blocks with split attention, norms."""

    def __init__(self, num_blocks=2):
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.zeros(2, 2))
        self.transformer = nn.Module()
        self.transformer.resblocks = nn.ModuleList()
        for _ in range(num_blocks):
            block = nn.Module()
            block.attn, block.ln_1, block.mlp = Attention(), nn.LayerNorm(2), nn.Linear(2, 2)
            self.transformer.resblocks.append(block)


class Segmentor(nn.Module):

    def __init__(self):
        super().__init__()
        self.backbone, self.text_encoder, self.decode_head = Tower(), Tower(), nn.Linear(2, 2)


def trainable(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_release_policy_trains_only_q_and_v_of_both_towers():
    model = Segmentor()
    names = apply_finetune_policy(model, 'attention_qv')
    expected = {f'{tower}.transformer.resblocks.{i}.attn.{m}_proj_weight'
                for tower in ('backbone', 'text_encoder') for i in (0, 1) for m in 'qv'}
    assert set(names) == expected
    assert trainable(model) == expected | {'decode_head.weight', 'decode_head.bias'}


def test_paper_policy_trains_image_attention_and_positional_embedding():
    model = Segmentor()
    names = set(apply_finetune_policy(model, 'attention'))
    attn = {f'backbone.transformer.resblocks.{i}.attn.{p}' for i in (0, 1) for p in (
        'q_proj_weight', 'k_proj_weight', 'v_proj_weight', 'in_proj_bias', 'out_proj.weight',
        'out_proj.bias')}
    assert names == attn | {'backbone.positional_embedding'}


@pytest.mark.parametrize('policy,count', [('frozen', 0), ('full', 2 * (1 + 2 * (6 + 2 + 2)))])
def test_frozen_and_full(policy, count):
    model = Segmentor()
    assert len(apply_finetune_policy(model, policy)) == count


def test_policy_can_be_reapplied_to_freeze_again():
    model = Segmentor()
    apply_finetune_policy(model, 'full')
    apply_finetune_policy(model, 'frozen')
    assert trainable(model) == {'decode_head.weight', 'decode_head.bias'}


def test_unknown_policy_lists_the_choices():
    with pytest.raises(ValueError, match=r"finetune_policy='qv' is not one of \['attention', "):
        apply_finetune_policy(Segmentor(), 'qv')
    assert set(FINETUNE_POLICIES) == {'attention_qv', 'attention', 'frozen', 'full', 'full_image',
                                     'full_blocks', 'vpt'}


def test_pattern_matching_nothing_is_an_error():
    with pytest.raises(ValueError, match=r"\['backbone.visual.\*'\] match no CLIP parameter"):
        apply_finetune_policy(Segmentor(), ['backbone.visual.*'])


def test_non_string_patterns_are_rejected():
    with pytest.raises(TypeError, match='list of str patterns'):
        apply_finetune_policy(Segmentor(), [3])
