"""Measure CAT-Seg inference at real dimensions (random weights are enough for speed).

    python tools/analysis_tools/benchmark_inference.py configs/catseg_vitb.py \
        --mode slide --num-classes 150 --repeats 3 [--precision bf16] [--backend onnxruntime] \
        --json out.json

Prints, per configuration: median seconds per image (and its CLIP-image and head parts), text
encoding time (first and repeated vocabulary), peak RSS, FLOPs counted by torch's
``FlopCounterMode`` and the achieved GFLOP/s against the matmul peak of the run's precision
(float32 or bfloat16) measured in the same run. ``--op-bound`` also replays each matrix product,
convolution and attention call of one prediction alone, at its recorded shapes, dtypes and
strides: their summed seconds are what the call would take if everything else were free, so
FLOPs over those seconds bound the share of the peak any scheduling of these kernels can reach.
With ``--backend onnxruntime`` the same random-weight model is first exported to ONNX
(docs/deployment.md) and its class logits run by onnxruntime: only the seconds, text times and
peak RSS are then reported (torch counts no FLOPs inside onnxruntime). Figures are printed,
never asserted.
"""
import argparse
import collections
import copy
import dataclasses
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

import cat_seg  # noqa: F401  (first: registers CAT-Seg and applies cat_seg.compat)
from cat_seg.apis.onnx_backend import export_onnx, use_onnx
from cat_seg.configs import model_config
from mmengine.config import DictAction
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import register_all_modules


PEAK_DTYPES = dict(fp32=torch.float32, bf16=torch.bfloat16)


def matmul_peak_gflops(size: int = 2048, repeats: int = 5,
                       dtype: torch.dtype = torch.float32) -> float:
    """Best GEMM rate of this process (GFLOP/s) in ``dtype``."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    return 2 * size ** 3 / best_seconds(lambda: a @ b, repeats) / 1e9


def best_seconds(fn, repeats: int) -> float:
    """The fastest of ``repeats`` calls of ``fn`` after one warm-up call."""
    fn()
    best = float('inf')
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


aten = torch.ops.aten
# torch's counter knows the CUDA attention kernels only; the CPU ones do the same FLOPs.
CPU_ATTENTION_FLOPS = {
    aten._scaled_dot_product_flash_attention_for_cpu:
        lambda query, key, value, *_, **__: sdpa_flop_count(query, key, value),
    aten._scaled_dot_product_flash_attention_for_cpu_backward:
        lambda grad, query, key, value, *_, **__: sdpa_backward_flop_count(
            grad, query, key, value),
}
HEAVY_OPS = {aten.mm.default, aten.addmm.default, aten.bmm.default, aten.baddbmm.default,
             aten.convolution.default,
             aten._scaled_dot_product_flash_attention_for_cpu.default}


def flop_counter() -> FlopCounterMode:
    """torch's FLOP counter, counting the CPU attention kernels too."""
    return FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION_FLOPS)


@dataclasses.dataclass(frozen=True)
class TensorLayout:
    shape: tuple
    stride: tuple
    dtype: torch.dtype


def layout_of(value):
    """``value`` with tensors as their layouts and lists as tuples (hashable)."""
    if isinstance(value, torch.Tensor):
        return TensorLayout(tuple(value.shape), value.stride(), value.dtype)
    if isinstance(value, (list, tuple)):
        return tuple(layout_of(item) for item in value)
    return value


def random_like(layout):
    """Random tensors of the layouts in ``layout`` (the inverse of ``layout_of``)."""
    if isinstance(layout, TensorLayout):
        return torch.empty_strided(layout.shape, layout.stride, dtype=layout.dtype).normal_()
    if isinstance(layout, tuple):
        return [random_like(item) for item in layout]
    return layout


class HeavyOpRecorder(TorchDispatchMode):
    """Counts the matrix product, convolution and attention calls dispatched inside it, by op
    and argument layouts."""

    def __init__(self):
        super().__init__()
        self.calls = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in HEAVY_OPS:
            self.calls[func, layout_of(args), layout_of(tuple(sorted(kwargs.items())))] += 1
        return func(*args, **kwargs)


def heavy_ops_alone_seconds(run, repeats: int = 3) -> float:
    """Seconds the heavy calls of ``run()`` take when each is replayed alone (best of
    ``repeats``, times how often it was made) on random inputs of the recorded layouts."""
    recorder = HeavyOpRecorder()
    with recorder:
        run()
    total = 0.0
    for (func, args, kwargs), count in recorder.calls.items():
        args, kwargs = random_like(args), dict(random_like(kwargs))
        total += best_seconds(lambda: func(*args, **kwargs), repeats) * count
    return total


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
    parser.add_argument('--op-bound', action='store_true',
                        help='also replay the heavy calls alone: the seconds and the share of '
                        'the peak they bound (torch backend)')
    parser.add_argument('--json', help='also write the results to this file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)
    if args.op_bound and args.backend != 'torch':
        parser.error('--op-bound replays torch kernels; it needs --backend torch')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    register_all_modules()
    model_cfg = model_config(args.config, args.mode, args.cfg_options)
    model_cfg.test_cfg.update(return_probs=args.return_probs, precision=args.precision)
    peak = matmul_peak_gflops(dtype=PEAK_DTYPES[args.precision])
    torch.manual_seed(0)
    model = MODELS.build(model_cfg).eval().requires_grad_(False)
    with tempfile.TemporaryDirectory() as tmp:
        if args.backend == 'onnxruntime':
            export_onnx(model, Path(tmp) / 'model.onnx')
            use_onnx(model, Path(tmp) / 'model.onnx')
        result = measure(model, args, peak)
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, 'w') as file:
            json.dump(result, file, indent=2)
    return 0


def measure(model, args: argparse.Namespace, peak: float) -> dict:
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
            result.update(torch_figures(model, args, predict, seconds, peak))
    result.update(peak_rss_gb=round(peak_rss_gb(), 2))
    return result


def torch_figures(model, args: argparse.Namespace, predict, seconds: float,
                  peak: float) -> dict:
    """The CLIP-image share, FLOPs, share of the matmul peak (and its bound) and precision
    deviation of the torch backend."""
    clip_views = (torch.randn(5 if args.mode == 'slide' else 1, 3, *model.clip_size))
    with model._autocast('cpu'):
        clip_seconds, _ = timed(lambda: model.backbone(clip_views), args.repeats)
    with flop_counter() as counter:
        predict()
    gflop = counter.get_total_flops() / 1e9
    bound = {}
    if args.op_bound:
        alone = heavy_ops_alone_seconds(predict)
        bound = dict(heavy_ops_alone_seconds=round(alone, 3),
                     share_of_peak_bound=round(gflop / alone / peak, 3))
    deviation = precision_deviation(model, predict) if args.precision != 'fp32' else {}
    return dict(
        clip_image_seconds=round(clip_seconds, 3),
        head_and_rest_seconds=round(seconds - clip_seconds, 3),
        gflop=round(gflop, 1), achieved_gflops=round(gflop / seconds, 1),
        matmul_peak_gflops=round(peak, 1), share_of_peak=round(gflop / seconds / peak, 3),
        **bound, **deviation)


if __name__ == '__main__':
    sys.exit(main())
