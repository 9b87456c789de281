"""Export CAT-Seg's image path to ONNX, with the vocabulary as an input (docs/deployment.md).

    python tools/deployment/export_onnx.py configs/catseg_vitb.py catseg_vitb.pth \
        --out catseg_vitb.onnx --mode slide

The graph maps views (B, 3, H, W) and text embeddings (T, P, C) to the views' logits
(B, T, h, w), B and T dynamic; run it with ``CATSegInferencer(..., backend='onnxruntime',
onnx=...)``.
"""
import argparse
import sys
from pathlib import Path

import cat_seg  # noqa: F401,I001  (first: registers CAT-Seg and applies cat_seg.compat)
from mmseg.registry import MODELS
from mmseg.utils import register_all_modules

from cat_seg.apis.onnx_backend import export_onnx
from cat_seg.configs import model_config
from cat_seg.weights.loading import load_checkpoint_into
from cat_seg.cli import main_guard


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint', help='a path or a URL')
    parser.add_argument('--out', required=True, type=Path, help='the .onnx file to write')
    parser.add_argument('--mode', choices=['whole', 'slide'],
                        help="the views the graph takes: 'whole' images at the CLIP "
                        "resolution or 'slide' crops (the official protocol's); default: the "
                        "config's test_cfg. Infer with the same mode.")
    parser.add_argument('--debug', action='store_true', help='show tracebacks')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    with main_guard(args.debug):
        register_all_modules()
        model = MODELS.build(model_config(args.config, args.mode))
        load_checkpoint_into(model, args.checkpoint)
        export_onnx(model.eval().requires_grad_(False), args.out)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    sys.exit(main())
