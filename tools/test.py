"""Evaluate a checkpoint on the test set of an MMSegmentation config.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out DIR] [--show-dir DIR]
"""
import argparse
import os
import os.path as osp
import sys

import cat_seg  # noqa: F401  (first: registers CAT-Seg and applies cat_seg.compat)
from cat_seg.runtime import configure_distributed_backend, main_guard
from mmengine.config import Config, DictAction
from mmengine.runner import Runner


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and evaluate) a segmentor')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='directory for logs and metrics')
    parser.add_argument('--benchmark', help='a configs/benchmarks/ file: evaluate on that '
                        'benchmark with the official sliding-window protocol')
    parser.add_argument('--out', help='directory to save the predicted label maps')
    parser.add_argument('--show-dir', help='directory to save painted predictions')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config values, e.g. model.test_cfg.mode=whole')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    parser.add_argument('--debug', action='store_true', help='show tracebacks')
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def apply_benchmark(cfg: Config, path: str) -> None:
    """Replace the test data, metric and inference mode of a model config by a benchmark's."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'benchmark config {path!r} does not exist')
    benchmark = Config.fromfile(path)
    cfg.test_dataloader = benchmark.test_dataloader
    cfg.test_evaluator = benchmark.test_evaluator
    cfg.model.test_cfg = benchmark.model_test_cfg


def build_config(args: argparse.Namespace) -> Config:
    for path, what in ((args.config, 'config file'), (args.checkpoint, 'checkpoint')):
        if not osp.isfile(path):
            raise FileNotFoundError(f'{what} {path!r} does not exist')
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.benchmark:
        apply_benchmark(cfg, args.benchmark)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        './work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    if args.out:
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True
    if args.show_dir:
        visualization = cfg.default_hooks.visualization
        visualization.update(draw=True, show=False)
        cfg.visualizer['save_dir'] = args.show_dir
    configure_distributed_backend(cfg)
    return cfg


def main(argv=None) -> int:
    args = parse_args(argv)
    with main_guard(args.debug):
        Runner.from_cfg(build_config(args)).test()
    return 0


if __name__ == '__main__':
    sys.exit(main())
