"""Cost volume, spatial and class aggregation, decoder and head at tiny dimensions."""
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from cat_seg.models.head.catseg_head import CATSegHead, CATSegHeadInputs
from cat_seg.models.head.class_aggregation import ClassAggregation
from cat_seg.models.head.cost_volume import cosine_cost, select_classes
from cat_seg.models.execution import CPU_PLAN, EXECUTION_PLANS, PLAIN_PLAN
from cat_seg.models.fast_paths import elu_plus_one, reorder, token_reorder, window_order
from cat_seg.models.head.guidance import Guidance
from cat_seg.models.head.spatial_aggregation import (SpatialAggregation, shifted_window_mask,
                                                window_merge, window_partition)
from cat_seg.models.head.upsampling_decoder import UpsamplingDecoder, UpsamplingStage

HEAD = dict(num_classes=2, embed_dims=32, num_heads=2, num_layers=2, window_size=4,
            text_guidance_channels=16, spatial_guidance_channels=16, guidance_proj_channels=8,
            decoder_channels=(32, 16), decoder_guidance_channels=(12, 6),
            decoder_guidance_proj_channels=(8, 4), pad_len=5)


def head_inputs(batch=2, classes=3, height=8, width=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return CATSegHeadInputs(
        torch.randn(batch, 16, height, width, generator=g),
        F.normalize(torch.randn(batch, classes, 1, 16, generator=g), dim=-1),
        Guidance(torch.randn(batch, 16, height, width, generator=g),
                 (torch.randn(batch, 12, 2 * height, 2 * width, generator=g),
                  torch.randn(batch, 6, 4 * height, 4 * width, generator=g))))


@pytest.fixture
def head():
    torch.manual_seed(0)
    model = CATSegHead(**HEAD).eval()
    for layer in model.layers:   # non-zero padding so that the padding path matters
        torch.nn.init.normal_(layer.class_agg.padding_tokens)
        torch.nn.init.normal_(layer.class_agg.padding_guidance)
    return model


def test_cost_is_a_cosine_volume():
    inputs = head_inputs()
    cost = cosine_cost(inputs.image_feats, inputs.text_embeds)
    assert cost.shape == (2, 1, 3, 8, 12) and cost.abs().max() <= 1 + 1e-6
    pixel = F.normalize(inputs.image_feats[1, :, 5, 7], dim=0)
    torch.testing.assert_close(cost[1, 0, 2, 5, 7], pixel @ inputs.text_embeds[1, 2, 0])


def test_class_selection_keeps_the_best_scores():
    cost = torch.zeros(1, 2, 6, 2, 2)
    cost[0, 1, [4, 1, 3], 1, 0] = torch.tensor([0.9, 0.8, 0.7])
    assert sorted(select_classes(cost, 3)[0].tolist()) == [1, 3, 4]


@pytest.mark.parametrize('classes', [1, 3, 9])
def test_head_shapes_and_dropped_classes(head, classes):
    with torch.no_grad():
        logits = head(head_inputs(classes=classes))
    assert logits.shape == (2, classes, 32, 48)
    assert ((logits == -100).all(-1).all(-1).sum(1) == max(0, classes - 5)).all()


@pytest.mark.parametrize('execution', ['plain', 'cpu'])
def test_head_is_class_permutation_equivariant(head, execution):
    inputs = head_inputs(classes=4)
    order = torch.tensor([2, 0, 3, 1])
    with torch.no_grad():
        logits = head(inputs, EXECUTION_PLANS[execution])
        permuted = head(inputs._replace(text_embeds=inputs.text_embeds[:, order]),
                        EXECUTION_PLANS[execution])
    torch.testing.assert_close(permuted, logits[:, order], atol=1e-5, rtol=1e-5)


def test_batch_elements_are_independent(head):
    inputs = head_inputs()
    with torch.no_grad():
        both = head(inputs)
        first = head(CATSegHeadInputs(inputs.image_feats[:1], inputs.text_embeds[:1], Guidance(
            inputs.guidance.spatial[:1], tuple(g[:1] for g in inputs.guidance.decoder))))
    torch.testing.assert_close(both[:1], first, atol=1e-5, rtol=1e-5)


def test_training_pools_class_aggregation(head):
    inputs = head_inputs()
    with torch.no_grad():
        evaluation = head(inputs)
        training = head.train()(inputs)
    assert not torch.allclose(training, evaluation)


def explicit_padding_reference(layer, x, guidance):
    """Class aggregation with the padding tokens materialised, as the release runs it."""
    batch, classes, height, width, channels = x.shape
    pad = layer.pad_len - classes
    tokens = torch.cat([x, layer.padding_tokens.expand(batch, pad, height, width, channels)], 1)
    guide = torch.cat([guidance, layer.padding_guidance.expand(batch, pad, -1)], 1)
    tokens = tokens.permute(0, 2, 3, 1, 4)
    y = layer.norm1(tokens)
    text = guide[:, None, None]
    heads = layer.num_heads
    q = F.elu(layer.attn.q(y, text).unflatten(-1, (heads, -1))) + 1
    k = F.elu(layer.attn.k(y, text).unflatten(-1, (heads, -1))) + 1
    v = layer.attn.v(y).unflatten(-1, (heads, -1))
    scores = torch.einsum('...thd,...shd->...hts', q, k)
    norm = scores.sum(-1)[..., None].transpose(-2, -3) + 1e-6
    out = torch.einsum('...hts,...she->...the', scores, v) / norm
    tokens = tokens + out.flatten(-2)
    tokens = tokens + layer.mlp(layer.norm2(tokens))
    return x + tokens.permute(0, 3, 1, 2, 4)[:, :classes]


@pytest.mark.parametrize('execution', ['plain', 'cpu'])
def test_counted_padding_equals_materialised_padding(execution):
    torch.manual_seed(0)
    layer = ClassAggregation(16, 8, num_heads=2, pad_len=7)
    torch.nn.init.normal_(layer.padding_tokens)
    torch.nn.init.normal_(layer.padding_guidance)
    x, guidance = torch.randn(2, 3, 4, 5, 16), torch.randn(2, 3, 8)
    with torch.no_grad():
        torch.testing.assert_close(layer(x, guidance, (1, 1), plan=EXECUTION_PLANS[execution]),
                                   explicit_padding_reference(layer, x, guidance),
                                   atol=1e-5, rtol=1e-5)


def test_cpu_feature_map_is_elu_plus_one():
    x = torch.linspace(-30, 30, 1001)
    torch.testing.assert_close(elu_plus_one(x), F.elu(x) + 1, atol=1e-7, rtol=1e-6)


def test_window_partition_and_merge_invert_each_other():
    x = torch.arange(2 * 4 * 6 * 3.).view(1, 2, 4, 6, 3)
    windows = window_partition(x, 2)                     # (1, 2, 6, 4, 3)
    assert windows.shape == (1, 2, 6, 4, 3)
    assert windows[0, 0, 1, :, 0].tolist() == [6., 9., 24., 27.]   # second window, row-major
    assert torch.equal(window_merge(windows, 2, 4, 6), x)


def test_shift_mask_separates_regions_brought_together_by_the_roll():
    mask = shifted_window_mask(8, 8, 4, 2)
    assert mask.shape == (4, 16, 16)
    assert (mask[0] == 0).all()                  # top-left window lies in one region
    last = mask[3]                               # bottom-right window: four regions
    assert last[0, 0] == 0 and last[0, 3] == -100 and last[0, 15] == -100


def test_window_orders_list_pixels_window_by_window_and_invert_exactly():
    assert window_order(4, 4, 2, 0)[:8].tolist() == [0, 1, 4, 5, 2, 3, 6, 7]
    assert window_order(4, 4, 2, 1)[:4].tolist() == [5, 6, 9, 10]   # rolled by (-1, -1)
    assert token_reorder(4, 6, (2, 1), (2, 1)) is None
    tokens = torch.randn(1, 2, 24, 3)
    shifted = reorder(tokens, token_reorder(4, 6, None, (2, 1)))
    unshifted = reorder(shifted, token_reorder(4, 6, (2, 1), (2, 0)))
    assert torch.equal(unshifted, reorder(tokens, token_reorder(4, 6, None, (2, 0))))
    assert torch.equal(reorder(unshifted, token_reorder(4, 6, (2, 0), None)), tokens)


def test_spatial_aggregation_rejects_grids_the_window_does_not_divide():
    block = SpatialAggregation(16, 8, num_heads=2, window_size=4)
    with pytest.raises(ValueError, match='cost grid 8x10 is not divisible by the window size 4'):
        block(torch.randn(1, 2, 8, 10, 16), torch.randn(1, 8, 10, 8))


@pytest.mark.parametrize('execution', ['plain', 'cpu'])
@pytest.mark.parametrize('height,width', [(4, 4), (3, 5), (1, 2)])
def test_decoder_stage_equals_upsampling_then_concatenation(height, width, execution):
    """The split weight with the broadcast guidance term (plain) and the fused 2x2 kernel (cpu)
    give the official stage's output and parameter gradients (transposed conv, concatenated
    guidance, 3x3 conv)."""
    torch.manual_seed(0)
    stage = UpsamplingStage(16, 16, 4)
    x = torch.randn(2, 3, 16, height, width)
    guidance = torch.randn(2, 4, 2 * height, 2 * width)
    params = [stage.up.weight, stage.up.bias, stage.convs[0].weight]

    concat = torch.cat([stage.up(x.flatten(0, 1)), guidance.repeat_interleave(3, 0)], 1)
    expected = stage.convs(concat)
    expected_grads = torch.autograd.grad(expected.square().sum(), params)
    plan = EXECUTION_PLANS[execution]
    out = stage(x, stage.shared_terms(guidance, plan), plan).flatten(0, 1)
    grads = torch.autograd.grad(out.square().sum(), params)

    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    for grad, expected_grad in zip(grads, expected_grads):
        torch.testing.assert_close(grad, expected_grad, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize('kwargs,message', [
    (dict(num_heads=3), 'num_heads=3 must divide embed_dims=32'),
    (dict(test_pool_size=(0, 1)), r'test_pool_size=\(0, 1\) must be two positive ints'),
    (dict(decoder_channels=(32,)), r'decoder_channels=\(32,\).*need one entry per stage'),
    (dict(decoder_channels=(50, 16)), r'decoder channels 50 give GroupNorm 3 groups \(50 // '
                                      r'channels_per_group=16\), which must be at least 1 and '
                                      'divide 50'),
    (dict(decoder_channels=(32, 8)), 'decoder channels 8 give GroupNorm 0 groups'),
    (dict(class_chunk_size=0), "class_chunk_size=0 must be None, 'auto' or an int"),
    (dict(class_chunk_size='small'), "class_chunk_size='small' must be None, 'auto' or an int"),
])
def test_bad_head_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CATSegHead(**{**HEAD, **kwargs})


def test_prompt_count_mismatch_is_explained(head):
    inputs = head_inputs()
    with pytest.raises(ValueError, match='2 prompt channels but the head was built with '
                                         'num_prompts=1'):
        head(inputs._replace(text_embeds=inputs.text_embeds.repeat(1, 1, 2, 1)))


def test_decoder_checks_the_guidance_count():
    decoder = UpsamplingDecoder(32, (16,), (8,), (4,))
    with pytest.raises(ValueError, match='1 stages but got 2 guidance maps'):
        decoder(torch.randn(1, 1, 2, 2, 32), [torch.randn(1, 8, 4, 4)] * 2)


@pytest.mark.parametrize('execution', ['plain', 'cpu'])
@pytest.mark.parametrize('classes', [3, 5, 9])
def test_chunked_classes_equal_the_unchunked_computation(head, classes, execution):
    inputs = head_inputs(classes=classes)
    head.keep_all_classes = True                   # 9 classes > pad_len: chunked in both plans
    with torch.no_grad():
        head.class_chunk_size = None
        whole = head(inputs, EXECUTION_PLANS[execution])
        head.class_chunk_size = 2
        chunked = head(inputs, EXECUTION_PLANS[execution])
        head.train()
        chunked_train = head(inputs, EXECUTION_PLANS[execution])
        head.class_chunk_size = None
        whole_train = head(inputs, EXECUTION_PLANS[execution])
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(chunked_train, whole_train, atol=1e-5, rtol=1e-5)


def test_in_place_updates_equal_new_buffers(head):
    """Cost embeddings above ``in_place_above_bytes`` are overwritten chunk by chunk and pixel
    step by pixel step: the same logits as building new tensors."""
    inputs = head_inputs(classes=9)
    head.class_chunk_size = 2                      # several chunks and class-aggregation steps
    with torch.no_grad():
        expected = head(inputs, CPU_PLAN)
        in_place = head(inputs, dataclasses.replace(CPU_PLAN, in_place_above_bytes=0))
    torch.testing.assert_close(in_place, expected, atol=1e-5, rtol=1e-5)


def test_class_aggregation_steps_take_every_class_of_a_few_pixels():
    head = CATSegHead(**{**HEAD, 'embed_dims': 128, 'num_heads': 4})
    def step(shape, pool_size):
        chunk = head._class_chunk(CPU_PLAN, (shape[0], 1, *shape[1:4]))
        return head._class_step(CPU_PLAN, shape, pool_size, chunk)

    assert step((5, 150, 24, 24, 128), (1, 1)) == 4096 // 750
    assert step((1, 20, 24, 24, 128), (1, 1)) == 4096 // 20
    assert step((1, 5000, 24, 24, 128), (1, 1)) == 1
    head.class_chunk_size = 2                      # two classes' worth of tokens
    assert step((5, 150, 24, 24, 128), (1, 1)) == 2 * 576 // 150
    assert step((1, 20, 24, 24, 128), (2, 2)) == 2 * 144 // 20
    head.class_chunk_size = None
    assert step((1, 20, 24, 24, 128), (1, 1)) is None


@pytest.mark.parametrize('execution', ['plain', 'cpu'])
def test_keep_all_classes_aggregates_every_class(head, execution):
    inputs = head_inputs(classes=9)                        # pad_len is 5
    head.keep_all_classes = True
    with torch.no_grad():
        logits = head(inputs, EXECUTION_PLANS[execution])
        head.class_chunk_size = 4
        chunked = head(inputs, EXECUTION_PLANS[execution])
    assert (logits != -100).all()
    torch.testing.assert_close(chunked, logits, atol=1e-5, rtol=1e-5)


def test_plain_plan_chunks_only_vocabularies_longer_than_pad_len(head):
    def chunk(classes, batch=1):
        return head._class_chunk(PLAIN_PLAN, (batch, 1, classes, 8, 12))

    assert chunk(5) == 5 and chunk(3) == 3                 # all at once
    assert chunk(9) == 5                                   # pad_len, as the release's top-k
    assert chunk(9, batch=2) == 2 and chunk(9, batch=6) == 1   # pad_len class-views
    head.class_chunk_size = None
    assert chunk(9) == 9
    head.class_chunk_size = 2
    assert chunk(9) == 2 and chunk(2) == 2


def test_auto_chunks_keep_the_largest_temporaries_within_their_budgets():
    """Release dimensions (d_F 128, MLP x4, 24x24 grid): a class costs 1.2 MB per view."""
    head = CATSegHead(**{**HEAD, 'embed_dims': 128, 'num_heads': 4, 'decoder_channels': (64, 32)})
    assert head.class_chunk_size == 'auto'
    def chunk(cost_shape, decoder=False):
        return head._class_chunk(CPU_PLAN, cost_shape, decoder)

    assert chunk((5, 1, 150, 24, 24)) == 5                         # 5 views (slide)
    assert chunk((1, 1, 150, 24, 24)) == 28                        # one view (whole)
    assert chunk((1, 1, 3, 24, 24)) == 3
    assert chunk((64, 1, 3, 96, 96)) == 1
    # The decoder's last stage: 96x96x32 floats (1.2 MB) per class and view, 12 MiB in all.
    assert chunk((5, 1, 150, 24, 24), decoder=True) == 2
    assert chunk((1, 1, 150, 24, 24), decoder=True) == 10
    assert chunk((1, 1, 3, 24, 24), decoder=True) == 3
