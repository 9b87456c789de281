"""Check ``torch.compile`` of CAT-Seg's parts: graphs and breaks, deviation from eager, speed.

    python tools/analysis_tools/compile_check.py configs/catseg_vitb.py --what slide \
        --num-classes 150 [--repeats 3] [--device cuda] [--precision fp16] [--cfg-options ...]

The model runs the plain plan at real dimensions with random weights, on the calls of
``count_ops.py`` (``whole`` / ``slide``: ``predict`` of a 640x854 image, probabilities kept;
``train``: ``loss`` + ``backward`` of a 384x384 image). ``torch._dynamo.explain`` counts the
graphs and graph breaks of every part that ``model.compile`` compiles (``cat_seg.models.compile``),
on the inputs that part receives in the call. Then the parts are compiled (the config's
``model.compile`` options, default ones otherwise) and the call is compared with eager: largest
difference of the probabilities, or of the loss (relative) and every gradient. Seconds are the
median of ``--repeats`` calls after a warm-up, timed with CUDA events on a GPU (with the peak
allocated memory). ``--precision bf16/fp16`` runs both under autocast and also reports the
deviation of eager at that precision from eager fp32. The last line is one JSON object.
"""
import argparse
import contextlib
import json
import statistics
import sys
import time

import torch

from count_ops import inference_call, train_call

from cat_seg.configs import model_config
from cat_seg.models import CATSegBCELoss
from cat_seg.models.compile import compile_options, compile_parts, compiled_parts
from cat_seg.models.segmentor.inference_settings import PRECISIONS
from mmengine.config import DictAction
from mmseg.registry import MODELS
from mmseg.utils import register_all_modules


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='model config, e.g. configs/catseg_vitb.py')
    parser.add_argument('--what', choices=['whole', 'slide', 'train'], default='whole')
    parser.add_argument('--num-classes', type=int, default=20)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--device', default='cpu', help="e.g. 'cpu' (default) or 'cuda'")
    parser.add_argument('--precision', choices=['fp32', 'bf16', 'fp16'], default='fp32')
    parser.add_argument('--eager-only', action='store_true',
                        help='only time eager (and the --precision deviation): no compilation')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def build_model(args):
    """The config's model, eager, on the plain plan, and the config's ``model.compile``
    options (default options when it sets none)."""
    register_all_modules()
    model_cfg = model_config(args.config, None if args.what == 'train' else args.what,
                             args.cfg_options)
    options = compile_options(model_cfg.pop('compile', False)) or {}
    model_cfg.execution = 'plain'
    torch.manual_seed(0)
    return MODELS.build(model_cfg).to(args.device), options


def autocast_to(device: torch.device, precision: str):
    """Autocast to ``precision`` on ``device`` ('fp32': no autocast)."""
    dtype = PRECISIONS[precision]
    return torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()


def with_precision(call, device: torch.device, precision: str):
    """``call`` under autocast to ``precision``."""
    def run():
        with autocast_to(device, precision):
            return call()
    return run


def record_part_inputs(model, call) -> dict:
    """{part: (args, kwargs)} of the first call of each compiled part during ``call()``."""
    seen, handles = {}, []
    for part in compiled_parts(model):
        def hook(module, args, kwargs, part=part):
            seen.setdefault(part, (args, kwargs))
        handles.append(part.register_forward_pre_hook(hook, with_kwargs=True))
    call()
    for handle in handles:
        handle.remove()
    return seen


def explain_parts(model, call, device: torch.device, precision: str) -> dict:
    """Graphs, graph breaks and their reasons of each compiled part, by module name. Each part
    is traced on the inputs it received during ``call()``, under the call's autocast to
    ``precision`` (a part given reduced-precision features runs under autocast)."""
    names = {module: name for name, module in model.named_modules()}
    report = {}
    grad = model.training
    for part, (args, kwargs) in record_part_inputs(model, call).items():
        # A loss compiles its computation, not its label check (CATSegBCELoss.compile).
        target = part.mean_loss if isinstance(part, CATSegBCELoss) else part
        with torch.set_grad_enabled(grad), autocast_to(device, precision):
            explained = torch._dynamo.explain(target)(*args, **kwargs)
        report[names[part]] = dict(
            graphs=explained.graph_count, graph_breaks=explained.graph_break_count,
            break_reasons=[str(b.reason).splitlines()[0] for b in explained.break_reasons])
    torch._dynamo.reset()
    return report


def outputs_of(model, call, training: bool) -> dict:
    """Probabilities of the call, or its loss and every gradient."""
    if not training:
        return dict(probs=torch.stack([s.seg_logits.data.float() for s in call()]))
    model.zero_grad()
    loss = call().float()
    grads = {n: p.grad.float().clone() for n, p in model.named_parameters() if p.grad is not None}
    return dict(loss=loss, **grads)


def deviation(reference: dict, other: dict) -> dict:
    """Largest absolute difference of the probabilities or gradients, and the loss's relative
    difference in training."""
    result = dict(max_abs_diff=max(float((reference[key] - other[key]).abs().max())
                                   for key in reference if key != 'loss'))
    if 'loss' in reference:
        loss = reference['loss']
        result['loss_rel_diff'] = float((other['loss'] - loss).abs() / loss.abs())
    return result


def timed(call, device: torch.device, repeats: int) -> dict:
    """Median seconds ('s') of ``repeats`` calls (CUDA events on a GPU) after one warm-up call,
    and on a GPU the peak allocated memory of these calls ('peak_cuda_gb')."""
    call()
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(repeats):
        if device.type == 'cuda':
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            call()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1000)
        else:
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
    result = dict(s=statistics.median(times))
    if device.type == 'cuda':
        result['peak_cuda_gb'] = torch.cuda.max_memory_allocated(device) / 1024 ** 3
    return result


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    model, options = build_model(args)
    training = args.what == 'train'
    names = [f'class number {i}' for i in range(args.num_classes)]
    if not training:
        model.test_cfg = dict(model.test_cfg, return_probs=True)
    fp32_call = (train_call if training else inference_call)(model, names)
    call = with_precision(fp32_call, device, args.precision)
    result = dict(config=args.config, what=args.what, num_classes=args.num_classes,
                  device=args.device, precision=args.precision, options=options)
    if not args.eager_only:
        parts = explain_parts(model, call, device, args.precision)
        result.update(graphs=sum(p['graphs'] for p in parts.values()),
                      graph_breaks=sum(p['graph_breaks'] for p in parts.values()), parts=parts)
    eager = outputs_of(model, call, training)
    if args.precision != 'fp32':
        result['fp32_max_abs_diff'] = deviation(outputs_of(model, fp32_call, training),
                                                eager)['max_abs_diff']
    result.update({f'eager_{k}': v for k, v in timed(call, device, args.repeats).items()})
    if not args.eager_only:
        compile_parts(model, options)
        start = time.perf_counter()
        compiled = outputs_of(model, call, training)   # the first call compiles
        result['compile_s'] = time.perf_counter() - start
        result.update(deviation(eager, compiled))
        result.update({f'compiled_{k}': v for k, v in timed(call, device, args.repeats).items()})
    for name, part in result.get('parts', {}).items():
        reasons = '; '.join(part['break_reasons']) or 'none'
        print(f"{name}: {part['graphs']} graph(s), {part['graph_breaks']} break(s): {reasons}")
    print(json.dumps(result))
    return 0


if __name__ == '__main__':
    sys.exit(main())
