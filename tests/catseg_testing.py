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


def catseg_config_from_fixture(config: dict) -> dict:
    """Our model config for the official hyper-parameters in a fixture's ``config.json``."""
    clip, agg = config['clip'], config['aggregator']
    up1, up2 = config['upsample1'], config['upsample2']
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
    return dict(
        type='CATSeg',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=config['clip_pixel_mean'],
                               std=config['clip_pixel_std'], bgr_to_rgb=True, pad_val=0,
                               seg_pad_val=config['ignore_value'],
                               size_divisor=config['size_divisibility']),
        backbone=dict(type='CATSegCLIPImageEncoder', arch=image_arch,
                      img_size=config['clip_resolution'][0],
                      guidance_layers=tuple(config['layer_indexes']), dense_residual='cls'),
        text_encoder=dict(type='CATSegCLIPTextEncoder', arch=text_arch,
                          templates=list(config['prompt_templates']), synonym_rule='first'),
        guidance=dict(type='CATSegCLIPGuidance', in_channels=up1['in_channels'],
                      out_channels=(up1['out_channels'], up2['out_channels']),
                      scale_factors=(up1['stride'], up2['stride'])),
        decode_head=dict(
            type='CATSegHead', num_classes=2, embed_dims=agg['hidden_dim'],
            num_heads=agg['nheads'], num_layers=agg['num_layers'],
            window_size=agg['window_size'], num_prompts=len(config['prompt_templates']),
            text_guidance_channels=agg['text_guidance_dim'],
            spatial_guidance_channels=agg['appearance_guidance_dim'],
            guidance_proj_channels=agg['appearance_guidance_proj_dim'],
            decoder_channels=tuple(agg['decoder_dims']),
            decoder_guidance_channels=tuple(agg['decoder_guidance_dims']),
            decoder_guidance_proj_channels=tuple(agg['decoder_guidance_proj_dims']),
            pad_len=agg['pad_len'],
            train_pool_size=tuple(config['pooling_sizes']['train_forward']),
            test_pool_size=tuple(config['pooling_sizes']['whole_eval']),
            ignore_index=config['ignore_value'],
            loss_decode=dict(type='CATSegBCELoss', ignore_mode='negative')),
        pad_size_divisor=config['size_divisibility'],
        test_cfg=dict(mode='whole'))


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
        out_indices=(0, 1, 2)))
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
