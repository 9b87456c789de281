"""Parity of the paper (arXiv v1) variant with the official v1 code (fixture READMEs of
``tests/data/catseg_v1_parity_*``; other directories via ``CATSEG_V1_PARITY_FIXTURES``).

Each fixture's model is rebuilt from its ``config.json`` and loads its official checkpoint
strictly. Every case runs twice, recording what each stage computed with forward hooks, as the
fixtures were recorded: through our modules fed the two views the README defines (CLIP's and the
guidance backbone's), and through the segmentor as a user runs it (``predict``, ``loss``). Every
stored tensor is compared at the README's tolerances; the largest differences are printed
(``pytest -s``) and recorded as junit properties.
"""
import copy
import json
import shutil
from pathlib import Path
from typing import Callable, Dict, NamedTuple

import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from cat_seg.weights.convert_release import convert_official_state_dict
from cat_seg.models.head.catseg_head import CATSegHeadInputs
from cat_seg.models.segmentor.patch_inference import patch_inference
from catseg_testing import v1_catseg_config_from_fixture, v1_parity_fixture_dirs

# Fixture README "Suggested tolerances for a re-implementation": (atol, rtol) by kind of tensor.
FEATURES = (1e-5, 0.0)           # float32 CLIP inputs and features, text embeddings, logits
BACKBONE = (1e-5, 1e-5)          # guidance backbone features
PROBS = (1e-6, 0.0)              # probabilities
MEANS = (1e-6, 0.0)              # float64 means over full tensors
LOSS = (0.0, 1e-6)


def tolerance(key: str):
    """(atol, rtol) of an expected tensor, from its name (README tables)."""
    if key == 'loss':
        return LOSS
    if key.endswith('_mean'):
        return MEANS
    if 'probs' in key:
        return PROBS
    if key.startswith('res'):
        return BACKBONE
    return FEATURES


class V1Fixture(NamedTuple):
    """One directory in the format of ``tests/data/catseg_v1_parity_r101`` (its README)."""

    path: Path
    config: dict        # config.json
    state_dict: dict    # official v1 checkpoint, state_dict.pt['model']
    cases: dict         # cases.pt: name -> {'inputs', 'expected', extras}


def load_v1_fixture(path: Path) -> V1Fixture:
    return V1Fixture(path, json.loads((path / 'config.json').read_text()),
                     torch.load(path / 'state_dict.pt', map_location='cpu')['model'],
                     torch.load(path / 'cases.pt', map_location='cpu'))


_FIXTURES: Dict[Path, V1Fixture] = {}


@pytest.fixture(params=v1_parity_fixture_dirs(), ids=lambda p: p.name)
def v1_fixture(request) -> V1Fixture:
    if request.param not in _FIXTURES:
        _FIXTURES[request.param] = load_v1_fixture(request.param)
    return _FIXTURES[request.param]


def build_v1_model(fixture: V1Fixture, execution: str = 'auto'):
    """The fixture's model with its converted official weights (strict load), in eval mode."""
    model = MODELS.build(dict(v1_catseg_config_from_fixture(fixture.config), execution=execution))
    model.load_state_dict(convert_official_state_dict(fixture.state_dict))
    return model.eval()


@pytest.fixture(params=['plain', 'cpu'])
def v1_model(request, v1_fixture):
    """Under each execution plan."""
    return build_v1_model(v1_fixture, request.param)


# ------------------------------------------------------------------ comparison
def compare_case(expected: dict, actual: dict) -> Dict[str, float]:
    """Compare every expected tensor of a case with ours at its tolerance.

    Returns:
        dict: Largest absolute difference per key.

    Raises:
        AssertionError: Naming the first key out of tolerance (or missing from ``actual``).
    """
    diffs = {}
    for key, want in expected.items():
        assert key in actual, f'{key!r} was not computed'
        got = actual[key].to(want.dtype)
        assert got.shape == want.shape, f'{key!r}: shape {tuple(got.shape)} != {tuple(want.shape)}'
        atol, rtol = tolerance(key)
        torch.testing.assert_close(got, want, atol=atol, rtol=rtol,
                                   msg=lambda m, key=key: f'{key!r}: {m}')
        diffs[key] = (got - want).abs().max().item() if want.numel() else 0.0
    return diffs


def report(name: str, diffs: Dict[str, float], record_property) -> None:
    """Print the largest differences of a case (``pytest -s``) and record them (junit XML)."""
    print(f'\n{name}: ' + ', '.join(f'{k} {v:.1e}' for k, v in diffs.items()))
    for key, value in diffs.items():
        record_property(f'{name}.{key}', value)


# ------------------------------------------------------------------ running our model
def preprocess(model, inputs: dict, training: bool = False):
    """A case's uint8 RGB image through the model's data preprocessor, as the mmseg pipeline
    would feed it (BGR in, ``bgr_to_rgb=True``)."""
    shape = (inputs['height'], inputs['width'])
    sample = SegDataSample(metainfo=dict(ori_shape=shape, img_shape=shape))
    if 'label' in inputs:
        sample.gt_sem_seg = PixelData(data=inputs['label'].long()[None])
    data = model.data_preprocessor(
        dict(inputs=[inputs['image'].flip(0)], data_samples=[sample]), training=training)
    return data['inputs'], data['data_samples']


class Recorder:
    """Forward hooks that keep the latest input or output of our modules, by name."""

    def __init__(self, model):
        self.values, self.handles = {}, []
        # Our encoder projects every token and drops CLS after the projection (README §4.5).
        self.output('clip_tokens', model.backbone.ln_post, lambda out: out @ model.backbone.proj)
        self.output('clip', model.backbone, lambda out: out.dense)
        self.output('text', model.text_encoder)
        self.output('stages', model.guidance.backbone)
        self.output('logits', model.decode_head)
        self.input('clip_input', model.backbone)
        self.input('backbone_input', model.guidance.backbone)
        # The dense last block starts with ln_1 of its input (README §4.4).
        self.input('clip_last_block_input', model.backbone.transformer.resblocks[-1].ln_1)

    def output(self, name: str, module, pick: Callable = lambda out: out):
        self.handles.append(module.register_forward_hook(
            lambda _, args, out: self.values.__setitem__(name, pick(out))))

    def input(self, name: str, module):
        self.handles.append(module.register_forward_pre_hook(
            lambda _, args: self.values.__setitem__(name, args[0])))

    def __getitem__(self, name: str):
        value = self.values[name]
        return tuple(v.detach() for v in value) if isinstance(value, tuple) else value.detach()

    def remove(self):
        for handle in self.handles:
            handle.remove()


def clip_tokens(dense: torch.Tensor) -> torch.Tensor:
    """Dense CLIP map (B, C, H, W) -> tokens (B, H*W, C), the official ``clip_features[:, 1:]``."""
    return dense.flatten(2).transpose(1, 2)


def strided(x: torch.Tensor) -> torch.Tensor:
    return x[..., ::4, ::4]


def channel_probe(x: torch.Tensor, expected: torch.Tensor) -> torch.Tensor:
    """The README's probes of feature maps are their first channels."""
    return x[:, :expected.shape[1]]


def v1_logits(model, views: torch.Tensor, text: torch.Tensor,
              guidance_views: torch.Tensor) -> torch.Tensor:
    """Our modules composed as the official v1 code calls its own (README §3, §9): CLIP on the
    views resized to its size, the guidance backbone on views of its own, then the head."""
    clip_views = F.interpolate(views, size=model.clip_size, mode='bilinear', align_corners=False)
    clip = model.backbone(clip_views)
    guidance = model.guidance(guidance_views, clip)
    text = text.expand(views.shape[0], *text.shape)
    return model.decode_head(CATSegHeadInputs(clip.dense, text, guidance))


def v1_guidance_views(model, images: torch.Tensor, metas) -> torch.Tensor:
    """README §3 for the backbone: each image padded with the guidance's pad value (zero once
    renormalised) to the divisor and resized to the backbone's size."""
    views = []
    for image, meta in zip(images, metas):
        height, width = meta['img_shape'][:2]
        padded = model.guidance.pad_value.view(3, 1, 1).repeat(
            1, height + -height % model.pad_size_divisor, width + -width % model.pad_size_divisor)
        padded[:, :height, :width] = image[:, :height, :width]
        views.append(F.interpolate(padded[None], size=model.guidance.img_size, mode='bilinear',
                                   align_corners=False))
    return torch.cat(views)


def to_original(probs: torch.Tensor, inputs: dict) -> torch.Tensor:
    """Probabilities (T, h, w) resized straight to the requested output size (README §8)."""
    return F.interpolate(probs[None], size=(inputs['height'], inputs['width']),
                         mode='bilinear', align_corners=False)[0]


@torch.no_grad()
def run_whole_eval(model, case: dict, composed: bool) -> dict:
    """Every expected key of the whole-image case: from ``predict``, or with ``composed`` from
    ``v1_logits`` on the README's two views."""
    inputs, expected, probe = case['inputs'], case['expected'], case['probe_classes']
    model.eval()
    images, samples = preprocess(model, inputs)
    metas = [s.metainfo for s in samples]
    model.test_cfg = dict(mode='whole')
    recorder = Recorder(model)
    try:
        if composed:
            logits = v1_logits(model, model.whole_views(images, metas),
                               model.encode_vocabulary(inputs['class_names']),
                               v1_guidance_views(model, images, metas))
            probs = to_original(logits.sigmoid()[0], inputs)
        else:
            probs = model.predict(images, samples, vocabulary=inputs['class_names'])[0]
            probs = probs.seg_logits.data
    finally:
        recorder.remove()
    res2, res3, res4 = recorder['stages'][-3:]
    clip_input, backbone_input = recorder['clip_input'], recorder['backbone_input']
    return dict(
        clip_input_strided=strided(clip_input),
        clip_input_channel_mean=clip_input.double().mean((0, 2, 3)),
        backbone_input_strided=strided(backbone_input),
        backbone_input_channel_mean=backbone_input.double().mean((0, 2, 3)),
        clip_last_block_input=recorder['clip_last_block_input'].transpose(0, 1),
        clip_features=recorder['clip_tokens'],
        text_embeds=recorder['text'],
        res2_probe=channel_probe(res2, expected['res2_probe']),
        res2_channel_mean=res2.double().mean((0, 2, 3)),
        res3_probe=channel_probe(res3, expected['res3_probe']),
        res3_channel_mean=res3.double().mean((0, 2, 3)),
        res4=res4,
        logits=recorder['logits'],
        final_probs_probe=probs[probe],
        final_probs_class_mean=probs.double().mean((1, 2)))


@torch.no_grad()
def run_slide_eval(model, case: dict, window: dict, composed: bool) -> dict:
    """Every expected key of the sliding-window case: the fused 640x640 map of our patch
    inference (official fold and global view) over ``class_logits`` (or ``v1_logits`` with the
    crops as guidance views), then ``predict`` in slide mode (or the fused map resized)."""
    inputs, expected, probe = case['inputs'], case['expected'], case['probe_classes']
    model.eval()
    images, samples = preprocess(model, inputs)
    slide = dict(crop_size=(window['kernel'],) * 2, stride=(window['stride'],) * 2,
                 resize_to=tuple(window['out_res']))
    text = model.encode_vocabulary(inputs['class_names'])
    logits_fn = ((lambda views: v1_logits(model, views, text, views)) if composed
                 else (lambda views: model.class_logits(views, text)))
    recorder = Recorder(model)
    try:
        fused = patch_inference(images, logits_fn, **slide)[0]
        views = {name: recorder[name] for name in ('clip_tokens', 'stages', 'logits')}
        if composed:
            probs = to_original(fused, inputs)
        else:
            model.test_cfg = dict(mode='slide', with_global_view=True, **slide)
            probs = model.predict(images, samples, vocabulary=inputs['class_names'])[0]
            probs = probs.seg_logits.data
    finally:
        recorder.remove()
    res4, logits = views['stages'][-1], views['logits']
    return dict(
        clip_features=views['clip_tokens'],
        res4_probe=channel_probe(res4, expected['res4_probe']),
        res4_channel_mean=res4.double().mean((2, 3)),
        logits_probe=logits[:, probe],
        logits_class_mean=logits.double().mean((2, 3)),
        fused_probs_probe_strided=strided(fused[probe]),
        fused_probs_class_mean=fused.double().mean((1, 2)),
        final_probs_probe=probs[probe],
        final_probs_class_mean=probs.double().mean((1, 2)))


def run_train_forward(model, case: dict, composed: bool) -> dict:
    """Every expected key of the training case, in training mode with autograd on: from
    ``loss``, or with ``composed`` from ``v1_logits`` and the head's ``loss_by_feat``."""
    inputs = case['inputs']
    model.train()
    model.train_vocabulary = inputs['class_names']
    images, samples = preprocess(model, inputs, training=True)
    metas = [s.metainfo for s in samples]
    recorder = Recorder(model)
    try:
        if composed:
            logits = v1_logits(model, model.whole_views(images, metas),
                               model.encode_vocabulary(None, training=True),
                               v1_guidance_views(model, images, metas))
            loss = model.decode_head.loss_by_feat(logits, samples)['loss_bce']
        else:
            loss = model.loss(images, samples)['decode.loss_bce']
    finally:
        recorder.remove()
    return dict(clip_features=recorder['clip_tokens'],
                res4_channel_mean=recorder['stages'][-1].double().mean((0, 2, 3)),
                logits=recorder['logits'], loss=loss.detach())


def run_case(model, fixture: V1Fixture, name: str, composed: bool) -> dict:
    case = fixture.cases[name]
    if name == 'train_forward':
        return run_train_forward(model, case, composed)
    if case['inputs']['sliding_window']:
        return run_slide_eval(model, case, fixture.config['sliding_window'], composed)
    return run_whole_eval(model, case, composed)


def cases_named(fixture: V1Fixture, kind: str) -> Dict[str, dict]:
    found = {name: case for name, case in fixture.cases.items()
             if (name == 'train_forward') == (kind == 'train')
             and (kind == 'train' or case['inputs']['sliding_window'] == (kind == 'slide'))}
    assert found, f'{fixture.path} has no {kind} case'
    return found


# ------------------------------------------------------------------ parity
KINDS = ('whole', 'slide', 'train')


@pytest.mark.parametrize('kind', KINDS)
def test_v1_parity_of_our_modules(v1_fixture, v1_model, kind, record_property):
    """Every stored tensor of each case, from our modules fed the README's views."""
    for name, case in cases_named(v1_fixture, kind).items():
        actual = run_case(v1_model, v1_fixture, name, composed=True)
        report(f'{v1_fixture.path.name}/{name} (modules)',
               compare_case(case['expected'], actual), record_property)


@pytest.mark.parametrize('kind', KINDS)
def test_v1_parity_of_the_segmentor(v1_fixture, v1_model, kind, record_property):
    """Every stored tensor of each case, from ``predict`` / ``loss`` as a user runs them."""
    for name, case in cases_named(v1_fixture, kind).items():
        actual = run_case(v1_model, v1_fixture, name, composed=False)
        report(f'{v1_fixture.path.name}/{name} (segmentor)',
               compare_case(case['expected'], actual), record_property)


def test_v1_parity_trainable_parameters(v1_fixture, v1_model):
    """The trainable set equals the official one, official names converted to ours."""
    official = v1_fixture.cases['train_forward']['trainable_parameters']
    expected = convert_official_state_dict({k: v1_fixture.state_dict[k] for k in official})
    ours = [name for name, param in v1_model.named_parameters() if param.requires_grad]
    assert sorted(ours) == sorted(expected)


def test_v1_parity_prompt_tokens(v1_fixture, v1_model):
    """The same prompts are tokenised as the official code's, a class's synonyms in turn
    (the official order is template by template, all synonyms in each)."""
    templates = len(v1_fixture.config['prompt_templates'])
    for case in v1_fixture.cases.values():
        inputs = case['inputs']
        if 'token_ids' not in inputs:
            continue
        ours = v1_model.text_encoder.tokenize(inputs['class_names'])
        rows, start = [], 0
        for count in inputs['prompts_per_class']:
            block = inputs['token_ids'][start:start + count].long()
            rows.append(block.view(templates, count // templates, -1).transpose(0, 1).flatten(0, 1))
            start += count
        assert ours.tolist() == torch.cat(rows).tolist()


# Every case again on a perturbed copy: the slow tier (over 10 s)
@pytest.mark.slow
# ------------------------------------------------------------------ the tests can fail
def test_v1_parity_comparison_fails_on_a_perturbed_fixture_copy(v1_fixture, v1_model, tmp_path):
    """Each expected tensor of every case, moved by 1e-2 (relative beyond 1) at one element in
    a copy of the fixture, makes the comparison of that case fail."""
    copied = Path(shutil.copytree(v1_fixture.path, tmp_path / v1_fixture.path.name))
    actual = {name: run_case(v1_model, v1_fixture, name, composed=True)
              for name in v1_fixture.cases}
    pristine = torch.load(copied / 'cases.pt')
    generator = torch.Generator().manual_seed(0)
    for name, case in v1_fixture.cases.items():
        for key in case['expected']:
            cases = copy.deepcopy(pristine)
            target = cases[name]['expected'][key]
            index = torch.randint(target.numel(), (), generator=generator)
            bump = torch.zeros(target.numel(), dtype=target.dtype)
            # Beyond every tolerance above (at most 1e-5 + 1e-5 x |value|) at any magnitude.
            bump[index] = 1e-2 * max(1.0, abs(float(target.flatten()[index])))
            cases[name]['expected'][key] = target + bump.view(target.shape)
            torch.save(cases, copied / 'cases.pt')
            perturbed = load_v1_fixture(copied).cases[name]['expected']
            with pytest.raises(AssertionError, match=repr(key)):
                compare_case(perturbed, actual[name])


def test_v1_parity_fixture_directories_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv('CATSEG_V1_PARITY_FIXTURES', str(tmp_path / 'absent'))
    with pytest.raises(FileNotFoundError, match='v1 parity fixture directories without '
                                                'config.json'):
        v1_parity_fixture_dirs()
