"""Measure CAT-Seg inference at real dimensions (random weights are enough for speed).

    python tools/analysis_tools/benchmark_inference.py configs/catseg_vitb.py \
        --mode slide --num-classes 150 --repeats 3 [--precision bf16] [--backend onnxruntime] \
        --json out.json

Prints, per configuration: median seconds per image (and its CLIP-image and head parts), text
encoding time (first and repeated vocabulary), peak RSS, FLOPs counted by torch's
``FlopCounterMode`` and the achieved GFLOP/s against a float32 matmul peak measured in the same
run. With ``--backend onnxruntime`` the same random-weight model is first exported to ONNX
(docs/deployment.md) and its class logits run by onnxruntime: only the seconds, text times and
peak RSS are then reported (torch counts no FLOPs inside onnxruntime). Figures are printed,
never asserted.
"""
import argparse
import copy
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

import cat_seg  # noqa: F401  (first: registers CAT-Seg and applies cat_seg.compat)
from cat_seg.apis.onnx_backend import export_onnx, use_onnx
from cat_seg.configs import model_config
from mmengine.config import DictAction
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import register_all_modules


def matmul_peak_gflops(size: int = 2048, repeats: int = 5,
                       dtype: torch.dtype = torch.float32) -> float:
    """Best GEMM rate of this process (GFLOP/s) in ``dtype``."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    best = float('inf')
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best / 1e9


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def timed(fn, repeats: int):
    """(median seconds, last result) of ``repeats`` calls after one warm-up call."""
    fn()
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def precision_deviation(model, predict) -> dict:
    """Reduced precision against fp32 on the same input: probabilities and labels."""
    test_cfg = model.test_cfg
    outputs = {}
    for name in ('fp32', test_cfg['precision']):
        model.test_cfg = dict(test_cfg, precision=name, return_probs=True)
        outputs[name] = copy.deepcopy(predict()[0])   # predict() fills the same samples
    model.test_cfg = test_cfg
    probs = [outputs[n].seg_logits.data for n in outputs]
    labels = [outputs[n].pred_sem_seg.data for n in outputs]
    return dict(max_abs_prob_deviation=round(float((probs[0] - probs[1]).abs().max()), 5),
                mean_abs_prob_deviation=round(float((probs[0] - probs[1]).abs().mean()), 6),
                label_agreement=round(float((labels[0] == labels[1]).float().mean()), 5))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='model config, e.g. configs/catseg_vitb.py')
    parser.add_argument('--mode', choices=['whole', 'slide'], default='slide')
    parser.add_argument('--num-classes', type=int, default=150)
    parser.add_argument('--image-size', type=int, nargs=2, default=(512, 683),
                        help='H W of the test image (default: a typical ADE20K size)')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--precision', choices=['fp32', 'bf16'], default='fp32',
                        help='bf16: autocast, with its deviation from fp32 on the same image')
    parser.add_argument('--return-probs', action='store_true',
                        help='also keep (T, H, W) probabilities at full size (the benchmarks '
                        'and the inferencer do not)')
    parser.add_argument('--backend', choices=['torch', 'onnxruntime'], default='torch',
                        help='onnxruntime: the class logits from an ONNX export of the same '
                        'model (fp32 only), the rest in torch')
    parser.add_argument('--json', help='also write the results to this file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    register_all_modules()
    model_cfg = model_config(args.config, args.mode, args.cfg_options)
    model_cfg.test_cfg.update(return_probs=args.return_probs, precision=args.precision)
    peak = matmul_peak_gflops()
    peak_bf16 = matmul_peak_gflops(dtype=torch.bfloat16) if args.precision == 'bf16' else None
    torch.manual_seed(0)
    model = MODELS.build(model_cfg).eval().requires_grad_(False)
    with tempfile.TemporaryDirectory() as tmp:
        if args.backend == 'onnxruntime':
            export_onnx(model, Path(tmp) / 'model.onnx')
            use_onnx(model, Path(tmp) / 'model.onnx')
        result = measure(model, args, peak, peak_bf16)
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, 'w') as file:
            json.dump(result, file, indent=2)
    return 0


def measure(model, args: argparse.Namespace, peak: float, peak_bf16) -> dict:
    """The figures of the module docstring for ``model`` under ``args``."""
    names = [f'class number {i}' for i in range(args.num_classes)]
    height, width = args.image_size
    image = torch.randint(0, 256, (3, height, width), dtype=torch.uint8)
    sample = SegDataSample(metainfo=dict(ori_shape=(height, width), img_shape=(height, width)))
    data = model.data_preprocessor(dict(inputs=[image], data_samples=[sample]), training=False)

    with torch.no_grad():
        start = time.perf_counter()
        model.text_encoder(names)
        text_first = time.perf_counter() - start
        start = time.perf_counter()
        model.text_encoder(names)
        text_repeat = time.perf_counter() - start

        def predict():
            return model.predict(data['inputs'], data['data_samples'], vocabulary=names)

        seconds, _ = timed(predict, args.repeats)
        result = dict(
            config=args.config, mode=args.mode, num_classes=args.num_classes,
            image_size=[height, width], threads=torch.get_num_threads(), backend=args.backend,
            seconds_per_image=round(seconds, 3), text_seconds_first=round(text_first, 3),
            text_seconds_repeat=round(text_repeat, 4), precision=args.precision)
        if args.backend == 'torch':
            result.update(torch_figures(model, args, predict, seconds, peak, peak_bf16))
    result.update(peak_rss_gb=round(peak_rss_gb(), 2))
    return result


def torch_figures(model, args: argparse.Namespace, predict, seconds: float, peak: float,
                  peak_bf16) -> dict:
    """The CLIP-image share, FLOPs, share of the matmul peak and precision deviation of the
    torch backend."""
    clip_views = (torch.randn(5 if args.mode == 'slide' else 1, 3, *model.clip_size))
    with model._autocast('cpu'):
        clip_seconds, _ = timed(lambda: model.backbone(clip_views), args.repeats)
    with FlopCounterMode(display=False) as counter:
        predict()
    flops = counter.get_total_flops()
    deviation = precision_deviation(model, predict) if args.precision != 'fp32' else {}
    return dict(
        clip_image_seconds=round(clip_seconds, 3),
        head_and_rest_seconds=round(seconds - clip_seconds, 3),
        gflop=round(flops / 1e9, 1), achieved_gflops=round(flops / 1e9 / seconds, 1),
        matmul_peak_gflops=round(peak, 1), share_of_peak=round(flops / 1e9 / seconds / peak, 3),
        **({'matmul_peak_gflops_bf16': round(peak_bf16, 1)} if peak_bf16 else {}),
        **deviation)


if __name__ == '__main__':
    sys.exit(main())
