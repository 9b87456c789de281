"""Count the ATen operations one CAT-Seg call dispatches: our proxy for GPU launch overhead.

    python tools/analysis_tools/count_ops.py configs/catseg_vitb.py --what slide \
        --num-classes 150 [--cfg-options model.execution=plain]

The model is built at real dimensions with random weights. ``whole`` and ``slide`` count
``data_preprocessor`` + ``predict`` on a 640x854 input whose original size is 512x683 (the
benchmark protocol for ``slide``), after one warm-up call so the text embeddings are cached;
``train`` counts ``loss`` + ``backward`` of one 384x384 image. Every operation that reaches
the dispatcher counts once, whatever its size.
"""
import argparse
import sys
from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode

import cat_seg  # noqa: F401  (first: registers CAT-Seg and applies cat_seg.compat)
from cat_seg.configs import model_config
from mmengine.config import DictAction
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import register_all_modules

ORIGINAL_SIZE, INPUT_SIZE, TRAIN_SIZE = (512, 683), (640, 854), (384, 384)


class OpCounter(TorchDispatchMode):
    """Counts the ATen operations dispatched inside it, by name."""

    def __init__(self):
        super().__init__()
        self.counts = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='model config, e.g. configs/catseg_vitb.py')
    parser.add_argument('--what', choices=['whole', 'slide', 'train'], default='slide')
    parser.add_argument('--num-classes', type=int, default=150)
    parser.add_argument('--top', type=int, default=0,
                        help='also list the N most frequent operations')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def build_model(args):
    register_all_modules()
    mode = None if args.what == 'train' else args.what
    model_cfg = model_config(args.config, mode, args.cfg_options)
    torch.manual_seed(0)
    return MODELS.build(model_cfg)


def inference_call(model, names):
    """``data_preprocessor`` + ``predict`` of one resized image, as a closure."""
    model.eval().requires_grad_(False)
    image = torch.randint(0, 256, (3, *INPUT_SIZE), dtype=torch.uint8)
    meta = dict(ori_shape=ORIGINAL_SIZE, img_shape=INPUT_SIZE)

    def call():
        batch = dict(inputs=[image], data_samples=[SegDataSample(metainfo=meta)])
        data = model.data_preprocessor(batch, training=False)
        with torch.no_grad():
            return model.predict(data['inputs'], data['data_samples'], vocabulary=names)
    return call


def train_call(model, names):
    """``loss`` + ``backward`` of one labelled image, as a closure returning the loss."""
    model.train()
    model.train_vocabulary = names
    image = torch.randint(0, 256, (3, *TRAIN_SIZE), dtype=torch.uint8)
    sample = SegDataSample(metainfo=dict(ori_shape=TRAIN_SIZE, img_shape=TRAIN_SIZE))
    sample.gt_sem_seg = PixelData(data=torch.randint(0, len(names), (1, *TRAIN_SIZE)))
    data = model.data_preprocessor(dict(inputs=[image], data_samples=[sample]), training=True)

    def call():
        loss = sum(model.loss(data['inputs'], data['data_samples']).values())
        loss.backward()
        return loss.detach()
    return call


def main(argv=None) -> int:
    args = parse_args(argv)
    model = build_model(args)
    names = [f'class number {i}' for i in range(args.num_classes)]
    call = (train_call if args.what == 'train' else inference_call)(model, names)
    call()   # warm-up: caches the text embeddings at inference, allocator state in training
    counter = OpCounter()
    with counter:
        call()
    execution = getattr(model, 'execution', 'n/a')
    print(f'{args.what}, {args.num_classes} classes, execution={execution}: '
          f'{sum(counter.counts.values())} ATen operations')
    for name, count in counter.counts.most_common(args.top):
        print(f'{count:8d}  {name}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
