"""Convert an official CAT-Seg checkpoint (detectron2 ``{'model': state_dict}``) to this plugin.

    python tools/model_converters/catseg_official_to_mmseg.py model_base.pth catseg_vitb.pth
    python tools/model_converters/catseg_official_to_mmseg.py model_final_base.pth \
        catseg_vitb_r101.pth --config configs/paper/catseg_vitb_r101.py

Both layouts are recognised by their keys: the CVPR 2024 release (``model_base.pth``, ...) and
the arXiv v1 code (``model_final_{base,large,huge,giant}.pth``: a ResNet or Swin guidance
backbone, fused CLIP attention; see docs/variants.md). Every official key is mapped or explicitly
dropped; anything else is an error naming the key. The output is an mmengine-style checkpoint
``{'state_dict': ..., 'meta': ...}`` for ``tools/test.py``.
"""
import argparse
import sys
import warnings
from pathlib import Path

import torch

from cat_seg.weights.convert_release import convert_official_state_dict
from cat_seg.weights.files import load_weights_file
from cat_seg.weights.loading import load_checkpoint_into
from cat_seg.cli import main_guard


def check_against_config(state_dict: dict, config: str) -> None:
    """Raise ValueError naming the keys the model of ``config`` lacks, has extra or reshapes."""
    from mmengine.config import Config

    from cat_seg.weights.meta_device import build_model_on_meta
    model = build_model_on_meta(Config.fromfile(config).model)
    with warnings.catch_warnings():  # copying into meta parameters is a no-op, as intended here
        warnings.simplefilter('ignore', UserWarning)
        load_checkpoint_into(model, state_dict)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='official checkpoint (.pth), loaded with weights_only=True')
    parser.add_argument('dst', help='output checkpoint path')
    parser.add_argument('--config', help='also check that the result loads strictly into the '
                        'model of this config (every key present, no extra, same shapes)')
    parser.add_argument('--debug', action='store_true', help='show tracebacks')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    with main_guard(args.debug):
        state_dict = convert_official_state_dict(load_weights_file(args.src))
        if args.config:
            check_against_config(state_dict, args.config)
        Path(args.dst).parent.mkdir(parents=True, exist_ok=True)
        torch.save(dict(state_dict=state_dict, meta=dict(converted_from=str(args.src))), args.dst)
    print(f'converted {len(state_dict)} tensors: {args.src} -> {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
