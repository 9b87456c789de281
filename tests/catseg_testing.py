"""Helpers shared by the tests: paths, parity fixture loading, synthetic data, tiny models."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import List, NamedTuple

import cat_seg  # noqa: F401,I001  (first: cat_seg.compat must run before mmseg.utils/models)
from cat_seg.datasets.synthetic import write_synthetic_dataset  # noqa: F401  (re-exported)
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

REPO_ROOT = Path(__file__).resolve().parents[1]
# A copy of the official code's reference outputs travels with the tests (its README says how
# they were made), so a clone proves parity on its own.
DEFAULT_PARITY_DIR = REPO_ROOT / 'tests' / 'data' / 'catseg_parity'
TINY_CONFIG = REPO_ROOT / 'configs' / 'misc' / 'catseg_tiny_synthetic.py'


class ParityFixture(NamedTuple):
    """One fixture directory in the format of ``tests/data/catseg_parity`` (its README)."""

    path: Path
    config: dict        # config.json
    state_dict: dict    # official-layout checkpoint, state_dict.pt['model']
    cases: dict         # cases.pt: name -> {'inputs': ..., 'expected': ..., extras}


def parity_fixture_dirs() -> List[Path]:
    """Directories named by ``CATSEG_PARITY_FIXTURES`` (os.pathsep-separated; they replace the
    repository's copy, so list it too to add to it), else the repository's copy.

    A named directory that does not exist is an error, never a skip: a parity test that silently
    runs on nothing cannot fail.
    """
    raw = os.environ.get('CATSEG_PARITY_FIXTURES', '')
    dirs = [Path(p) for p in raw.split(os.pathsep) if p] or [DEFAULT_PARITY_DIR]
    missing = [str(d) for d in dirs if not (d / 'config.json').is_file()]
    if missing:
        raise FileNotFoundError(
            f'parity fixture directories without config.json: {missing}; set '
            f'CATSEG_PARITY_FIXTURES to directories in the format of {DEFAULT_PARITY_DIR}')
    return dirs


_LOADED = {}


def load_parity_fixture(path: Path) -> ParityFixture:
    """Load (once per process) the config, official checkpoint and cases of a fixture directory."""
    if path not in _LOADED:
        config = json.loads((path / 'config.json').read_text())
        state_dict = torch.load(path / 'state_dict.pt', map_location='cpu')['model']
        cases = torch.load(path / 'cases.pt', map_location='cpu')
        _LOADED[path] = ParityFixture(path, config, state_dict, cases)
    return _LOADED[path]


def clip_archs_from_fixture(clip: dict):
    """Our (image, text) encoder ``arch`` dicts for a fixture's official CLIP hyper-parameters."""
    image_arch = dict(
        embed_dims=clip['vision_width'], num_layers=clip['vision_layers'],
        num_heads=clip['vision_heads'], patch_size=clip['vision_patch_size'],
        output_dims=clip['embed_dim'], pretrain_img_size=clip['image_resolution'],
        mlp_ratio=4.0, act='quick_gelu')
    text_arch = dict(
        embed_dims=clip['transformer_width'], num_layers=clip['transformer_layers'],
        num_heads=clip['transformer_heads'], output_dims=clip['embed_dim'],
        context_length=clip['context_length'], vocab_size=clip['vocab_size'],
        mlp_ratio=4.0, act='quick_gelu')
    return image_arch, text_arch


def head_guidance_dims_from_fixture(agg: dict) -> dict:
    """``CATSegHead``'s guidance and decoder widths for a fixture's official aggregator."""
    return dict(text_guidance_channels=agg['text_guidance_dim'],
                spatial_guidance_channels=agg['appearance_guidance_dim'],
                text_guidance_proj_channels=agg['text_guidance_proj_dim'],
                spatial_guidance_proj_channels=agg['appearance_guidance_proj_dim'],
                attention_type=agg.get('attention_type', 'linear'),
                # The official decoder has two stages and ignores later entries.
                decoder_channels=tuple(agg['decoder_dims'][:2]),
                decoder_guidance_channels=tuple(agg['decoder_guidance_dims'][:2]),
                decoder_guidance_proj_channels=tuple(agg['decoder_guidance_proj_dims'][:2]))


def image_encoder_from_fixture(config: dict, dense_residual: str, guidance_layers) -> dict:
    """Our CLIP image encoder for a fixture: its arch, input size and VPT prompts (official
    PROMPT_LENGTH and PROMPT_DEPTH, optional ``clip.prompt_length`` / ``clip.prompt_depth``)."""
    clip = config['clip']
    prompts = clip.get('prompt_length', 0)
    return dict(type='CATSegCLIPImageEncoder', arch=clip_archs_from_fixture(clip)[0],
                img_size=config['clip_resolution'][0], guidance_layers=tuple(guidance_layers),
                dense_residual=dense_residual, vpt_prompts=prompts,
                # The official loop stops at the last block: deeper prompt rows are never read.
                vpt_depth=min(clip['prompt_depth'], clip['vision_layers']) if prompts else None)


# Official CLIP_FINETUNE (cat_seg_model.py) -> our finetune policy, release and v1; any other
# value freezes CLIP. The release's "full" trains VPT prompts too, v1's "full_image" includes them.
RELEASE_FINETUNE_POLICIES = {'attention': 'attention_qv', 'full': 'full_blocks', 'prompt': 'vpt'}
V1_FINETUNE_POLICIES = {'attention': 'attention', 'full': 'full_image', 'prompt': 'vpt'}


def finetune_policy_from_fixture(config: dict, policies: dict):
    """Our finetune policy for a fixture's ``clip_finetune`` (default: the shipped "attention")."""
    policy = policies.get(config.get('clip_finetune', 'attention'), 'frozen')
    if policy == 'full_blocks' and config['clip'].get('prompt_length', 0):
        from cat_seg.models.clip.finetune_policy import FINETUNE_POLICIES
        return [*FINETUNE_POLICIES[policy], 'backbone.vpt_prompts']
    return policy


def preprocessor_from_fixture(config: dict) -> dict:
    """The data preprocessor of a fixture: CLIP normalisation of BGR-loaded images."""
    return dict(type='SegDataPreProcessor', mean=config['clip_pixel_mean'],
                std=config['clip_pixel_std'], bgr_to_rgb=True, pad_val=0,
                seg_pad_val=config['ignore_value'], size_divisor=config['size_divisibility'])


def head_config_from_fixture(config: dict, num_prompts: int, pad_len: int) -> dict:
    """Our ``CATSegHead`` config for the aggregator of a fixture's ``config.json``."""
    agg = config['aggregator']
    return dict(
        type='CATSegHead', num_classes=2, embed_dims=agg['hidden_dim'],
        num_heads=agg['nheads'], num_layers=agg['num_layers'],
        window_size=agg['window_size'], num_prompts=num_prompts,
        **head_guidance_dims_from_fixture(agg), pad_len=pad_len,
        train_pool_size=tuple(config['pooling_sizes']['train_forward']),
        test_pool_size=tuple(config['pooling_sizes']['whole_eval']),
        ignore_index=config['ignore_value'],
        loss_decode=dict(type='CATSegBCELoss', ignore_mode='negative'))


def catseg_config_from_fixture(config: dict) -> dict:
    """Our model config for the official hyper-parameters in a fixture's ``config.json``."""
    clip, agg = config['clip'], config['aggregator']
    up1, up2 = config['upsample1'], config['upsample2']
    text_arch = clip_archs_from_fixture(clip)[1]
    return dict(
        type='CATSeg',
        data_preprocessor=preprocessor_from_fixture(config),
        backbone=image_encoder_from_fixture(config, 'cls', config['layer_indexes']),
        text_encoder=dict(type='CATSegCLIPTextEncoder', arch=text_arch,
                          templates=list(config['prompt_templates']), synonym_rule='first'),
        guidance=dict(type='CATSegCLIPGuidance', in_channels=up1['in_channels'],
                      out_channels=(up1['out_channels'], up2['out_channels']),
                      scale_factors=(up1['stride'], up2['stride'])),
        decode_head=head_config_from_fixture(config, len(config['prompt_templates']),
                                             agg['pad_len']),
        finetune_policy=finetune_policy_from_fixture(config, RELEASE_FINETUNE_POLICIES),
        pad_size_divisor=config['size_divisibility'],
        test_cfg=dict(mode='whole'))


def clip_normalisation() -> dict:
    """``CATSegBackboneGuidance``'s clip_mean / clip_std: the release data preprocessor's."""
    from mmengine.config import Config
    preprocessor = Config.fromfile(
        str(REPO_ROOT / 'configs' / '_base_' / 'models' / 'catseg_release.py')).data_preprocessor
    return dict(clip_mean=preprocessor.mean, clip_std=preprocessor.std)


def tiny_model_config() -> dict:
    """The model of ``configs/misc/catseg_tiny_synthetic.py`` (real configs, tiny dimensions)."""
    from mmengine.config import Config
    return Config.fromfile(str(TINY_CONFIG)).model.to_dict()


def tiny_paper_config():
    """The tiny model config switched to the paper (v1) variant: three templates, per-token
    dense residual, guidance from a tiny ResNet (stages at 16, 8 and 4 px)."""
    from mmengine.config import Config
    cfg = Config.fromfile(str(TINY_CONFIG)).model
    cfg.backbone.update(dense_residual='token', guidance_layers=())
    cfg.text_encoder.templates = ['a photo of a {}.', 'a {} in the scene', 'itap of a {}.']
    cfg.guidance = dict(type='CATSegBackboneGuidance', img_size=64, backbone=dict(
        type='mmpretrain.ResNet', depth=18, stem_channels=8, base_channels=8,
        out_indices=(0, 1, 2)), clip_mean=cfg.data_preprocessor.mean,
        clip_std=cfg.data_preprocessor.std)
    cfg.decode_head.update(num_prompts=3, spatial_guidance_channels=32,
                           decoder_guidance_channels=(16, 8), embedding_channels=32)
    cfg.finetune_policy = 'attention'
    return cfg


def raw_batch(sizes=((70, 90), (70, 90)), with_labels=False):
    """A dataloader-style batch: uint8 images and SegDataSamples."""
    torch.manual_seed(1)
    samples, images = [], []
    for height, width in sizes:
        images.append(torch.randint(0, 255, (3, height, width), dtype=torch.uint8))
        sample = SegDataSample(metainfo=dict(ori_shape=(height, width),
                                             img_shape=(height, width)))
        if with_labels:
            sample.gt_sem_seg = PixelData(data=torch.randint(0, 3, (1, height, width)))
        samples.append(sample)
    return dict(inputs=images, data_samples=samples)


def assert_labels_score_best(scores, labels, tolerance: float) -> None:
    """Every pixel's label scores within ``tolerance`` of its best class.

    An argmax comparison at every pixel that holds for any weights: where random weights leave
    classes near-tied, float rounding may pick either, and both are right.

    Args:
        scores: (T, H, W) class scores or probabilities (tensor or array).
        labels: (H, W) class indices (tensor or array).
    """
    scores = torch.as_tensor(scores).float()
    labels = torch.as_tensor(labels.astype('int64') if hasattr(labels, 'astype')
                             else labels.long())
    shortfall = scores.amax(0) - scores.gather(0, labels[None])[0]
    worst = shortfall.argmax()
    assert shortfall.max() <= tolerance, (
        f'pixel {divmod(int(worst), labels.shape[1])}: label {int(labels.flatten()[worst])} '
        f'scores {float(shortfall.flatten()[worst]):.3g} below the best class')


def free_port() -> int:
    """A TCP port nothing listens on now, for a rendezvous that must not collide with another
    run on the same machine (torchrun's default 29500 may be taken)."""
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def run_tool(args, cwd, timeout=300, env=None):
    """Run a command-line tool from an unrelated working directory, as a user would.

    Returns:
        tuple: the ``CompletedProcess`` and its stdout + stderr.
    """
    env = dict(os.environ, PYTHON=sys.executable, **(env or {}))
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                            env=env)
    return result, result.stdout + result.stderr


# ---------------------------------------------------------------------------- arXiv v1 parity
# Copies of the official v1 code's reference outputs (their READMEs say how they were made): the
# ResNet and the Swin guidance paths.
DEFAULT_V1_PARITY_DIRS = (REPO_ROOT / 'tests' / 'data' / 'catseg_v1_parity_r101',
                          REPO_ROOT / 'tests' / 'data' / 'catseg_v1_parity_swinb')


def v1_parity_fixture_dirs() -> List[Path]:
    """Directories named by ``CATSEG_V1_PARITY_FIXTURES`` (os.pathsep-separated; they replace the
    repository's copies), else the repository's copies. A named directory without config.json
    is an error, never a skip."""
    raw = os.environ.get('CATSEG_V1_PARITY_FIXTURES', '')
    dirs = [Path(p) for p in raw.split(os.pathsep) if p] or list(DEFAULT_V1_PARITY_DIRS)
    missing = [str(d) for d in dirs if not (d / 'config.json').is_file()]
    if missing:
        raise FileNotFoundError(
            f'v1 parity fixture directories without config.json: {missing}; set '
            f'CATSEG_V1_PARITY_FIXTURES to directories in the format of '
            f'{DEFAULT_V1_PARITY_DIRS[0]}')
    return dirs


def v1_guidance_backbone_config(backbone: dict) -> dict:
    """mmpretrain config of the official guidance backbone described by ``config.json``."""
    stages = [int(name[len('res'):]) - 2 for name in backbone['out_features']]
    if backbone['name'] == 'build_resnet_backbone':
        width = backbone['num_groups'] * backbone['width_per_group']
        if backbone['num_groups'] != 1 or any(backbone['deform_on_per_stage']) \
                or backbone['norm'] != 'FrozenBN':
            raise ValueError(f'no mmpretrain ResNet for this detectron2 ResNet: {backbone}')
        num_stages = max(stages) + 1
        return dict(
            type='mmpretrain.ResNet', depth=backbone['depth'], num_stages=num_stages,
            stem_channels=backbone['stem_out_channels'], base_channels=width,
            expansion=backbone['res2_out_channels'] // width,
            strides=(1, 2, 2, 2)[:num_stages], dilations=(1, 1, 1, 1)[:num_stages],
            out_indices=tuple(stages), style='caffe' if backbone['stride_in_1x1'] else 'pytorch',
            norm_cfg=dict(type='CATSegFrozenBatchNorm2d', eps=backbone['frozen_bn_eps']))
    if backbone['name'] == 'D2SwinTransformer':
        norm = dict(type='LN', eps=backbone['layernorm_eps'])
        return dict(
            type='mmpretrain.SwinTransformer',
            arch=dict(embed_dims=backbone['embed_dim'], depths=backbone['depths'],
                      num_heads=backbone['num_heads']),
            img_size=backbone['pretrain_img_size'], patch_size=backbone['patch_size'],
            window_size=backbone['window_size'], drop_rate=backbone['drop_rate'],
            drop_path_rate=backbone['drop_path_rate'], out_indices=tuple(stages),
            use_abs_pos_embed=backbone['ape'], pad_small_map=True, norm_cfg=norm,
            patch_cfg=dict(norm_cfg=norm if backbone['patch_norm'] else None),
            stage_cfgs=dict(downsample_cfg=dict(norm_cfg=norm), block_cfgs=dict(
                ffn_ratio=backbone['mlp_ratio'], norm_cfg=norm,
                attn_cfgs=dict(qkv_bias=backbone['qkv_bias'], qk_scale=backbone['qk_scale'],
                               attn_drop=backbone['attn_drop_rate']))))
    raise ValueError(f'unknown guidance backbone {backbone["name"]!r} in a v1 fixture')


def v1_catseg_config_from_fixture(config: dict) -> dict:
    """Our paper-variant model config for the official v1 hyper-parameters in ``config.json``."""
    clip, agg, backbone = config['clip'], config['aggregator'], config['backbone']
    text_arch = clip_archs_from_fixture(clip)[1]
    # The official code freezes the backbone at SOLVER.BACKBONE_MULTIPLIER 0, and a parameter
    # named norm0 always; only the Swin backbone has one.
    frozen = ('*',) if config['solver']['backbone_multiplier'] == 0 else (
        ('norm0.*',) if backbone['name'] == 'D2SwinTransformer' else ())
    return dict(
        type='CATSeg',
        data_preprocessor=preprocessor_from_fixture(config),
        backbone=image_encoder_from_fixture(config, 'token', ()),
        text_encoder=dict(type='CATSegCLIPTextEncoder', arch=text_arch,
                          templates=list(config['prompt_templates']), synonym_rule='average'),
        guidance=dict(type='CATSegBackboneGuidance',
                      backbone=v1_guidance_backbone_config(backbone),
                      img_size=config['backbone_input_size'][0],
                      clip_mean=config['clip_pixel_mean'], clip_std=config['clip_pixel_std'],
                      mean=config['pixel_mean'], std=config['pixel_std'], frozen=frozen),
        # v1 has neither class padding nor top-k selection (README §7.8).
        decode_head=head_config_from_fixture(config, agg['prompt_channel'], pad_len=0),
        finetune_policy=finetune_policy_from_fixture(config, V1_FINETUNE_POLICIES),
        pad_size_divisor=config['size_divisibility'],
        test_cfg=dict(mode='whole'))


# The CLIP models the official code names (CLIP_PRETRAINED), in a fixture's ``clip`` format:
# OpenAI CLIP (clip/model.py build_model on the released weights) and open_clip's
# ViT-H-14.json / ViT-bigG-14.json at force_image_size=336, as the v1 code loads them.
_TEXT = dict(context_length=77, vocab_size=49408)
OFFICIAL_CLIP = {
    'ViT-B/16': dict(embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768,
                     vision_patch_size=16, transformer_width=512, transformer_layers=12, **_TEXT),
    'ViT-L/14': dict(embed_dim=768, image_resolution=224, vision_layers=24, vision_width=1024,
                     vision_patch_size=14, transformer_width=768, transformer_layers=12, **_TEXT),
    'ViT-L/14@336px': dict(embed_dim=768, image_resolution=336, vision_layers=24,
                           vision_width=1024, vision_patch_size=14, transformer_width=768,
                           transformer_layers=12, **_TEXT),
    'ViT-H': dict(embed_dim=1024, image_resolution=336, vision_layers=32, vision_width=1280,
                  vision_patch_size=14, transformer_width=1024, transformer_layers=24, **_TEXT),
    'ViT-G': dict(embed_dim=1280, image_resolution=336, vision_layers=48, vision_width=1664,
                  vision_patch_size=14, vision_mlp_ratio=4.9231, transformer_width=1280,
                  transformer_layers=32, **_TEXT),
}


def official_v1_state_dict(config: dict, device: str = 'meta') -> dict:
    """Uninitialised tensors in the key layout and shapes of an official v1 checkpoint (the
    fixture README's "State-dict keys"), for the hyper-parameters of a ``config.json``-style
    dict: no model of ours is consulted. On the meta device by default (ViT-bigG is 7 GB)."""
    tensors = {}
    add, norm = _tensor_adders(tensors, device)
    _official_clip(add, norm, config['clip'], fused=True)
    _official_aggregator(add, norm, 'sem_seg_head.predictor.transformer.', config['aggregator'])
    backbone = config['backbone']
    if backbone['name'] == 'build_resnet_backbone':
        _official_resnet(add, norm, 'backbone.', backbone)
    else:
        _official_swin(add, norm, 'backbone.', backbone)
    return tensors


def official_release_state_dict(config: dict, device: str = 'meta') -> dict:
    """:func:`official_v1_state_dict` for the CVPR release layout (``tests/data/catseg_parity``
    README): split CLIP q/k/v, ``upsample1``/``upsample2`` guidance, padding parameters of class
    aggregation when ``aggregator.pad_len`` > 0, VPT ``prompt_tokens`` when
    ``clip.prompt_length`` > 0 (official third_party/model_vpt.py)."""
    tensors = {}
    add, norm = _tensor_adders(tensors, device)
    _official_clip(add, norm, config['clip'], fused=False)
    # The release builds the cost embedding for its templates (cat_seg_predictor.py).
    aggregator = dict(config['aggregator'], prompt_channel=len(config['prompt_templates']))
    _official_aggregator(add, norm, 'sem_seg_head.predictor.transformer.', aggregator)
    for name in ('upsample1', 'upsample2'):
        up = config[name]
        add(name + '.weight', up['in_channels'], up['out_channels'], up['kernel_size'],
            up['kernel_size'])
        add(name + '.bias', up['out_channels'])
    return tensors


def _tensor_adders(tensors: dict, device: str):
    """``add(key, *shape)`` and ``norm(key, channels)`` writing empty tensors into ``tensors``."""
    def add(key, *shape, dtype=torch.float32):
        tensors[key] = torch.empty(shape, dtype=dtype, device=device)

    def norm(key, channels, names=('weight', 'bias')):
        for name in names:
            add(f'{key}.{name}', channels)
    return add, norm


def _official_clip(add, norm, clip, fused):
    """Both CLIP towers; attention fused (v1, OpenAI's layout) or split into q/k/v (release)."""
    prefix = 'sem_seg_head.predictor.clip_model.'
    width, patch = clip['vision_width'], clip['vision_patch_size']
    _official_clip_blocks(add, norm, prefix + 'visual.', width, clip['vision_layers'],
                          clip.get('vision_mlp_ratio', 4.0), fused)
    if clip.get('prompt_length', 0) > 0:
        add(prefix + 'visual.transformer.prompt_tokens', clip['prompt_depth'],
            clip['prompt_length'], width)
    add(prefix + 'visual.conv1.weight', width, 3, patch, patch)
    add(prefix + 'visual.class_embedding', width)
    add(prefix + 'visual.positional_embedding', (clip['image_resolution'] // patch) ** 2 + 1, width)
    norm(prefix + 'visual.ln_pre', width)
    norm(prefix + 'visual.ln_post', width)
    add(prefix + 'visual.proj', width, clip['embed_dim'])
    text = clip['transformer_width']
    _official_clip_blocks(add, norm, prefix, text, clip['transformer_layers'],
                          clip.get('transformer_mlp_ratio', 4.0), fused)
    add(prefix + 'token_embedding.weight', clip['vocab_size'], text)
    add(prefix + 'positional_embedding', clip['context_length'], text)
    norm(prefix + 'ln_final', text)
    add(prefix + 'text_projection', text, clip['embed_dim'])
    add(prefix + 'logit_scale')


def _official_clip_blocks(add, norm, prefix, width, layers, mlp_ratio, fused):
    hidden = int(width * mlp_ratio)
    for i in range(layers):
        block = f'{prefix}transformer.resblocks.{i}.'
        if fused:
            add(block + 'attn.in_proj_weight', 3 * width, width)
        else:
            for name in ('q', 'k', 'v'):
                add(f'{block}attn.{name}_proj_weight', width, width)
        add(block + 'attn.in_proj_bias', 3 * width)
        add(block + 'attn.out_proj.weight', width, width)
        add(block + 'attn.out_proj.bias', width)
        norm(block + 'ln_1', width)
        norm(block + 'ln_2', width)
        add(block + 'mlp.c_fc.weight', hidden, width)
        add(block + 'mlp.c_fc.bias', hidden)
        add(block + 'mlp.c_proj.weight', width, hidden)
        add(block + 'mlp.c_proj.bias', width)


def _official_aggregator(add, norm, prefix, agg):
    """official model.py ``Aggregator``: a projection only for a guidance width above 0, the
    shift mask only where the window is smaller than the grid, padding parameters only for
    ``pad_len`` > 0 (release; v1 has none), two decoder stages."""
    hidden = agg['hidden_dim']
    spatial, text = agg['appearance_guidance_proj_dim'], agg['text_guidance_proj_dim']
    pad_len = agg.get('pad_len', 0)

    def linear(key, out_channels, in_channels):
        add(key + '.weight', out_channels, in_channels)
        add(key + '.bias', out_channels)

    def conv(key, out_channels, in_channels, size):
        add(key + '.weight', out_channels, in_channels, size, size)
        add(key + '.bias', out_channels)

    conv(prefix + 'conv1', hidden, agg['prompt_channel'], 7)
    if agg['appearance_guidance_dim'] > 0:
        conv(prefix + 'guidance_projection.0', spatial, agg['appearance_guidance_dim'], 3)
    if agg['text_guidance_dim'] > 0:
        linear(prefix + 'text_guidance_projection.0', text, agg['text_guidance_dim'])
    if agg['decoder_guidance_dims'][0] > 0:
        for i, (channels, proj) in enumerate(zip(agg['decoder_guidance_dims'],
                                                 agg['decoder_guidance_proj_dims'])):
            conv(f'{prefix}decoder_guidance_projection.{i}.0', proj, channels, 3)
    # SwinTransformerBlock: a grid no larger than the window is one unshifted window.
    grid = agg['feature_resolution']
    window = min(agg['window_size'], *grid)
    shifted = min(grid) > agg['window_size'] and agg['window_size'] // 2 > 0
    windows = (grid[0] // window) * (grid[1] // window)
    for layer in range(agg['num_layers']):
        swin = f'{prefix}layers.{layer}.swin_block.'
        for block in ('block_1', 'block_2'):
            key = swin + block
            norm(key + '.norm1', hidden)
            norm(key + '.norm2', hidden)
            for name in ('q', 'k'):
                linear(f'{key}.attn.{name}', hidden, hidden + spatial)
            linear(key + '.attn.v', hidden, hidden)
            linear(key + '.attn.proj', hidden, hidden)
            linear(key + '.mlp.fc1', 4 * hidden, hidden)
            linear(key + '.mlp.fc2', hidden, 4 * hidden)
        if shifted:
            add(swin + 'block_2.attn_mask', windows, window ** 2, window ** 2)
        if spatial > 0:
            norm(swin + 'guidance_norm', spatial)
        attention = f'{prefix}layers.{layer}.attention.'
        if pad_len > 0:
            add(attention + 'padding_tokens', 1, 1, hidden)
            if text > 0:
                add(attention + 'padding_guidance', 1, 1, text)
        for name in ('q', 'k'):
            linear(f'{attention}attention.{name}', hidden, hidden + text)
        linear(attention + 'attention.v', hidden, hidden)
        linear(attention + 'MLP.0', 4 * hidden, hidden)
        linear(attention + 'MLP.2', hidden, 4 * hidden)
        norm(attention + 'norm1', hidden)
        norm(attention + 'norm2', hidden)
    channels = hidden
    for i in range(2):   # decoder1, decoder2: the official decoder has two stages
        out, proj = agg['decoder_dims'][i], agg['decoder_guidance_proj_dims'][i]
        up = f'{prefix}decoder{i + 1}.'
        add(up + 'up.weight', channels, channels - proj, 2, 2)   # ConvTranspose2d: (in, out)
        add(up + 'up.bias', channels - proj)
        add(up + 'conv.double_conv.0.weight', out, channels, 3, 3)
        norm(up + 'conv.double_conv.1', out)
        add(up + 'conv.double_conv.3.weight', out, out, 3, 3)
        norm(up + 'conv.double_conv.4', out)
        channels = out
    conv(prefix + 'head', 1, channels, 3)


def _official_resnet(add, norm, prefix, backbone):
    frozen_bn = ('weight', 'bias', 'running_mean', 'running_var')

    def conv(key, out_channels, in_channels, size):
        add(key + '.weight', out_channels, in_channels, size, size)
        norm(key + '.norm', out_channels, frozen_bn)

    channels = backbone['stem_out_channels']
    conv(prefix + 'stem.conv1', channels, 3, 7)
    width = backbone['num_groups'] * backbone['width_per_group']
    out = backbone['res2_out_channels']
    for stage, blocks in backbone['blocks_per_stage'].items():
        for i in range(blocks):
            key = f'{prefix}{stage}.{i}.'
            if channels != out:
                conv(key + 'shortcut', out, channels, 1)
            conv(key + 'conv1', width, channels, 1)
            conv(key + 'conv2', width, width // backbone['num_groups'], 3)
            conv(key + 'conv3', out, width, 1)
            channels = out
        width, out = 2 * width, 2 * out


def _official_swin(add, norm, prefix, backbone):
    dims, window, patch = backbone['embed_dim'], backbone['window_size'], backbone['patch_size']
    add(prefix + 'patch_embed.proj.weight', dims, 3, patch, patch)
    add(prefix + 'patch_embed.proj.bias', dims)
    if backbone.get('patch_norm', True):   # MODEL.SWIN defaults (add_cat_seg_config)
        norm(prefix + 'patch_embed.norm', dims)
    if backbone.get('ape', False):
        side = backbone['pretrain_img_size'] // patch
        add(prefix + 'absolute_pos_embed', 1, dims, side, side)
    hidden_ratio, stages = backbone['mlp_ratio'], len(backbone['depths'])
    for i, (depth, heads) in enumerate(zip(backbone['depths'], backbone['num_heads'])):
        for j in range(depth):
            block = f'{prefix}layers.{i}.blocks.{j}.'
            norm(block + 'norm1', dims)
            norm(block + 'norm2', dims)
            add(block + 'attn.relative_position_bias_table', (2 * window - 1) ** 2, heads)
            add(block + 'attn.relative_position_index', window ** 2, window ** 2,
                dtype=torch.int64)
            add(block + 'attn.qkv.weight', 3 * dims, dims)
            if backbone.get('qkv_bias', True):
                add(block + 'attn.qkv.bias', 3 * dims)
            add(block + 'attn.proj.weight', dims, dims)
            add(block + 'attn.proj.bias', dims)
            add(block + 'mlp.fc1.weight', int(dims * hidden_ratio), dims)
            add(block + 'mlp.fc1.bias', int(dims * hidden_ratio))
            add(block + 'mlp.fc2.weight', dims, int(dims * hidden_ratio))
            add(block + 'mlp.fc2.bias', dims)
        if i < stages - 1:
            add(f'{prefix}layers.{i}.downsample.reduction.weight', 2 * dims, 4 * dims)
            norm(f'{prefix}layers.{i}.downsample.norm', 4 * dims)
        if i in backbone['out_indices']:
            norm(f'{prefix}norm{i}', dims)
        dims *= 2
