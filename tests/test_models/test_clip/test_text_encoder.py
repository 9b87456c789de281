import pytest
import torch
import torch.nn.functional as F

from cat_seg.models import CATSegCLIPTextEncoder
from cat_seg.models.clip.attention import SplitQKVAttention
from cat_seg.models.clip.prompt_templates import PROMPT_TEMPLATES, build_prompts
from cat_seg.vocabulary import class_synonyms

TINY = dict(embed_dims=64, num_layers=2, num_heads=2, output_dims=32, context_length=77,
            vocab_size=49408, mlp_ratio=4.0, act='quick_gelu')


@pytest.fixture
def encoder():
    torch.manual_seed(0)
    return CATSegCLIPTextEncoder(TINY, templates=['a photo of a {}.', 'a {} in the scene'])


def test_embeddings_are_normalised_per_class_and_template(encoder):
    embeds = encoder(['sky', 'building, edifice', 'bed '])
    assert embeds.shape == (3, 2, 32)
    torch.testing.assert_close(embeds.norm(dim=-1), torch.ones(3, 2))


def test_prompts_follow_the_official_synonym_rule():
    assert build_prompts(['building, edifice', 'bed '], ['A {} here'], 'first') == [
        'A building here', 'A bed  here']
    assert build_prompts(['building, edifice'], ['{}'], 'full') == ['building, edifice']


def test_stopping_at_the_longest_end_token_equals_the_full_context(encoder):
    tokens = encoder.tokenize(['sky', 'a much longer class name'])
    with torch.no_grad():
        short = encoder.encode_tokens(tokens)
        x = encoder.token_embedding(tokens) + encoder.positional_embedding
        x = encoder.ln_final(encoder.transformer(x, attn_mask=encoder.attn_mask))
        full = F.normalize(x[torch.arange(4), tokens.argmax(-1)] @ encoder.text_projection,
                           dim=-1)
    torch.testing.assert_close(short, full, atol=1e-6, rtol=0)


def test_cache_is_keyed_by_vocabulary_and_invalidated_by_weight_updates(encoder):
    encoder.requires_grad_(False)
    first = encoder(['sky', 'tree'])
    count = encoder.num_prompts_encoded
    assert encoder(['sky', 'tree']) is first and encoder.num_prompts_encoded == count
    encoder(['tree', 'sky'])
    assert encoder.num_prompts_encoded == count + 4
    with torch.no_grad():
        encoder.text_projection.mul_(2)     # what an optimizer step does: an in-place update
    torch.testing.assert_close(encoder(['sky', 'tree']), first)  # direction unchanged by x2
    assert encoder.num_prompts_encoded == count + 8              # but recomputed


def test_cached_embeddings_ignore_a_callers_autocast(encoder):
    """What is cached serves calls of every precision, so it is computed at the weights'."""
    encoder.requires_grad_(False)
    reference = encoder._encode(encoder._entries(['sky', 'tree']))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        under_autocast = encoder(['sky', 'tree'])
    assert under_autocast.dtype == torch.float32
    torch.testing.assert_close(under_autocast, reference, atol=1e-6, rtol=0)
    assert encoder(['sky', 'tree']) is under_autocast      # the fp32 call reuses it


def test_cache_is_bypassed_while_the_text_tower_trains(encoder):
    encoder.transformer.resblocks[0].attn.q_proj_weight.requires_grad_(True)
    embeds = encoder(['sky'])
    assert embeds.requires_grad
    embeds.sum().backward()
    assert encoder.transformer.resblocks[0].attn.q_proj_weight.grad is not None
    count = encoder.num_prompts_encoded
    encoder(['sky'])
    assert encoder.num_prompts_encoded == count + 2


def test_imagenet_templates_are_the_80_clip_prompts():
    templates = PROMPT_TEMPLATES['imagenet80']
    assert len(templates) == 80 and all(t.count('{}') == 1 for t in templates)
    assert templates[0] == 'a bad photo of a {}.'


@pytest.mark.parametrize('kwargs,error,message', [
    (dict(templates='imagenet'), ValueError, r"templates='imagenet' is not one of \['release'"),
    (dict(templates=['no slot']), ValueError, "needs exactly one '{}'"),
    (dict(synonym_rule='all'), ValueError, "synonym_rule='all' is not one of"),
    (dict(encode_chunk_size=0), ValueError, 'encode_chunk_size=0 must be at least 1'),
])
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        CATSegCLIPTextEncoder(TINY, **kwargs)


def test_bad_vocabularies(encoder):
    with pytest.raises(ValueError, match='class_names is empty'):
        encoder([])
    with pytest.raises(TypeError, match="class_names must be a list, got the string 'sky'"):
        encoder('sky')
    with pytest.raises(TypeError, match='every class must be a str or a non-empty list of str'):
        encoder(['sky', []])


def test_a_class_of_synonyms_is_the_mean_of_its_names(encoder):
    single = encoder(['sky', 'heaven', 'tree'])
    grouped = encoder([['sky', 'heaven'], 'tree'])
    assert grouped.shape == (2, 2, 32)
    torch.testing.assert_close(grouped[0], F.normalize(single[0] + single[1], dim=-1))
    torch.testing.assert_close(grouped[1], single[2])


def test_remembered_embeddings_are_served_without_encoding(encoder):
    encoder.requires_grad_(False)
    stored = F.normalize(torch.randn(2, 2, 32), dim=-1)
    encoder.remember(['sky', 'tree'], stored)
    count = encoder.num_prompts_encoded
    assert encoder(['sky', 'tree']) is stored and encoder.num_prompts_encoded == count


def test_split_attention_rejects_what_it_cannot_do():
    with pytest.raises(ValueError, match='num_heads=3 must divide the CLIP width 64'):
        SplitQKVAttention(64, 3)
    attn = SplitQKVAttention(64, 2)
    x = torch.randn(1, 3, 64)
    with pytest.raises(ValueError, match='self-attention only'):
        attn(x, torch.randn(1, 3, 64))
    with pytest.raises(ValueError, match='need_weights=False'):
        attn(x, need_weights=True)


def test_the_v1_synonym_rule_averages_every_part_of_a_name():
    torch.manual_seed(0)
    encoder = CATSegCLIPTextEncoder(TINY, templates=['a photo of a {}.', 'a {} in the scene'],
                                    synonym_rule='average')
    embeds = encoder(['building, edifice', 'sky', 'bed '])
    torch.testing.assert_close(embeds, encoder([['building', 'edifice'], ['sky'], ['bed ']]))
    parts = encoder(['building', 'edifice'])
    torch.testing.assert_close(embeds[0], F.normalize(parts[0] + parts[1], dim=-1))
    tokens = encoder.tokenize(['building, edifice', 'sky'])
    assert tokens.tolist() == encoder.tokenize(['building', 'edifice', 'sky']).tolist()
    assert class_synonyms('road, route', 'average') == ('road', 'route')
    assert class_synonyms('road, route', 'first') == ('road, route', )
