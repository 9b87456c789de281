"""Evaluate a checkpoint on the test set of an MMSegmentation config.

CHECKPOINT (ours, or an official CAT-Seg one, converted on the fly) must fit the config's model
exactly: a checkpoint of another architecture is refused with the keys that differ.

Before the runner starts, the test data is checked: every image has its annotation and the
reverse (else the unpaired files are listed and nothing is evaluated, unless --allow-unpaired),
and every file decodes.

    python tools/test.py CONFIG CHECKPOINT [--benchmark FILE] [--work-dir DIR] [--out DIR]
        [--show-dir DIR] [--metrics-json FILE] [--allow-unpaired]
"""
import argparse
import json
import os.path as osp

import cat_seg  # noqa: F401  (first: registers CAT-Seg and applies cat_seg.compat)
from cat_seg.datasets.pairing import check_test_data
from cat_seg.weights.loading import load_checkpoint_into
from cat_seg.cli import add_runner_arguments, exit_tool, load_runner_config, main_guard
from cat_seg.configs import mode_test_cfg
from mmengine.config import Config
from mmengine.dist import get_rank
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and evaluate) a segmentor')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--benchmark', help='a configs/benchmarks/ file: evaluate on that '
                        'benchmark with the official sliding-window protocol')
    parser.add_argument('--keep-test-cfg', action='store_true',
                        help='with --benchmark, keep the config\'s model.test_cfg (an ablation '
                        'of the inference itself) instead of the sliding-window protocol')
    parser.add_argument('--out', help='directory to save the predicted label maps')
    parser.add_argument('--show-dir', help='directory to save painted predictions')
    parser.add_argument('--metrics-json', help='also write the metrics to this JSON file')
    parser.add_argument('--allow-unpaired', action='store_true',
                        help='evaluate the images that have an annotation (and the reverse) '
                        'and leave the others out, with a warning, instead of refusing the data')
    add_runner_arguments(parser)
    return parser.parse_args(argv)


def apply_benchmark(cfg: Config, path: str, keep_test_cfg: bool = False) -> None:
    """Replace the test data, metric and (unless ``keep_test_cfg``) the inference mode of a
    model config by a benchmark's."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'benchmark config {path!r} does not exist')
    benchmark = Config.fromfile(path)
    cfg.test_dataloader = benchmark.test_dataloader
    cfg.test_evaluator = benchmark.test_evaluator
    if not keep_test_cfg:
        cfg.model.test_cfg = mode_test_cfg('slide')


def build_config(args: argparse.Namespace) -> Config:
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint!r} does not exist')

    def with_benchmark(cfg: Config) -> None:
        apply_benchmark(cfg, args.benchmark, args.keep_test_cfg)

    cfg = load_runner_config(args, before_options=with_benchmark if args.benchmark else None)
    # CHECKPOINT is loaded strictly by main(); the runner's own loading is not strict, and a
    # load_from of the config would replace it.
    cfg.load_from = None
    if args.out:
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True
    if args.show_dir:
        cfg.default_hooks.visualization.update(draw=True, show=False)
        cfg.visualizer['save_dir'] = args.show_dir
    return cfg


def check_evaluation_data(cfg: Config, allow_unpaired: bool) -> None:
    """Refuse test data whose images and annotations do not pair up or decode; with
    ``allow_unpaired``, narrow it to the complete pairs (``check_test_data``)."""
    if cfg.get('test_dataloader') is not None:
        cfg.test_dataloader.dataset = check_test_data(cfg.test_dataloader.dataset, allow_unpaired)


def main(argv=None) -> int:
    args = parse_args(argv)
    with main_guard(args.debug):
        cfg = build_config(args)
        check_evaluation_data(cfg, args.allow_unpaired)
        runner = Runner.from_cfg(cfg)
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        load_checkpoint_into(model, args.checkpoint)
        runner.logger.info(f'Loaded checkpoint {args.checkpoint} (strict)')
        metrics = runner.test()
        if args.metrics_json and get_rank() == 0:
            # Metric values are numpy scalars, which json cannot write as they are.
            with open(args.metrics_json, 'w') as f:
                f.write(json.dumps(metrics, indent=2, default=float))
    return 0


if __name__ == '__main__':
    exit_tool(main)
