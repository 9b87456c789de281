"""Train a model from an MMSegmentation config (CAT-Seg registered through ``cat_seg``).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--cfg-options k=v]
"""
import argparse

import cat_seg  # noqa: F401  (first: registers CAT-Seg and applies cat_seg.compat)
from cat_seg.cli import add_runner_arguments, exit_tool, load_runner_config, main_guard
from cat_seg.weights.resume import auto_resume_checkpoint, check_resume_checkpoint
from mmengine.config import Config
from mmengine.runner import Runner


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--resume', nargs='?', const='auto', default=None,
                        help='resume from CKPT, or from the latest checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision: bf16 on CPUs, on GPUs bf16 where '
                        'supported, else fp16 with loss scaling (CATSegAmpOptimWrapper)')
    add_runner_arguments(parser)
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace) -> Config:
    cfg = load_runner_config(args)
    if args.amp:
        cfg.optim_wrapper.type = 'CATSegAmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        # Resolved here, in this work dir only; without a checkpoint the config's load_from stays.
        resume_from = auto_resume_checkpoint(cfg.work_dir, cfg.model)
        cfg.resume = resume_from is not None
        cfg.load_from = resume_from or cfg.get('load_from')
    elif args.resume:
        check_resume_checkpoint(args.resume, cfg.model)
        cfg.resume, cfg.load_from = True, args.resume
    return cfg


def main(argv=None) -> int:
    args = parse_args(argv)
    with main_guard(args.debug):
        Runner.from_cfg(build_config(args)).train()
    return 0


if __name__ == '__main__':
    exit_tool(main)
