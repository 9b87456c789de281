"""Measure one CAT-Seg training step (forward, loss, backward) at real dimensions.

    python tools/analysis_tools/benchmark_training.py configs/catseg_vitl.py --num-classes 171 \
        [--repeats 1] [--device cuda] [--cfg-options model.execution=plain \
        model.backbone.with_cp=True model.text_encoder.with_cp=True model.decode_head.with_cp=True]

Random weights, one 384x384 image with random labels over T classes (the call of
``count_ops.py --what train``), the config's fine-tuning policy. Prints the median seconds of
``--repeats`` steps after a warm-up step, the process's peak RSS (run one configuration per
process to compare peaks), the resident memory before the first step (model and weights) and,
on CUDA, the allocator's peak. The last line is one JSON object.
"""
import argparse
import json
import resource
import statistics
import sys
import time

import torch

from count_ops import train_call

from cat_seg.configs import model_config
from cat_seg.models.execution import resolve_execution
from mmengine.config import DictAction
from mmseg.registry import MODELS
from mmseg.utils import register_all_modules


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='model config, e.g. configs/catseg_vitl.py')
    parser.add_argument('--num-classes', type=int, default=171)
    parser.add_argument('--repeats', type=int, default=1)
    parser.add_argument('--device', default='cpu', help="e.g. 'cpu' (default) or 'cuda'")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def current_rss_gb() -> float:
    """Resident memory of this process now (Linux /proc)."""
    with open('/proc/self/statm') as file:
        return int(file.read().split()[1]) * resource.getpagesize() / 1024 ** 3


def step_seconds(step, device: torch.device) -> float:
    """Seconds of one step, after the device finished its queued work."""
    start = time.perf_counter()
    step()
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    register_all_modules()
    model_cfg = model_config(args.config, None, args.cfg_options)
    torch.manual_seed(0)
    model = MODELS.build(model_cfg).to(device)
    names = [f'class number {i}' for i in range(args.num_classes)]
    call = train_call(model, names)

    def step():
        model.zero_grad(set_to_none=True)
        call()

    before_step = current_rss_gb()
    step()    # warm-up: text embeddings cached, allocator state settled
    seconds = statistics.median(step_seconds(step, device) for _ in range(args.repeats))
    result = dict(config=args.config, num_classes=args.num_classes, device=args.device,
                  execution=resolve_execution(model.execution, device.type),
                  backbone_with_cp=model.backbone.with_cp,
                  text_with_cp=model.text_encoder.with_cp,
                  head_with_cp=model.decode_head.with_cp,
                  threads=torch.get_num_threads(), seconds=round(seconds, 3),
                  peak_rss_gb=round(peak_rss_gb(), 3), rss_before_step_gb=round(before_step, 3))
    if device.type == 'cuda':
        result['peak_cuda_gb'] = round(torch.cuda.max_memory_allocated(device) / 1024 ** 3, 3)
    print(f"one training step: {result['seconds']} s, peak RSS {result['peak_rss_gb']} GB"
          + (f", CUDA peak {result['peak_cuda_gb']} GB" if 'peak_cuda_gb' in result else ''))
    print(json.dumps(result))
    return 0


if __name__ == '__main__':
    sys.exit(main())
