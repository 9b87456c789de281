"""Does training learn? Train the tiny CAT-Seg on a synthetic dataset and print held-out mIoU
before and after, through the real mmengine runner.

    python tools/analysis_tools/learning_check.py --iters 300 --work-dir /tmp/learning_check

The dataset (cat_seg.datasets.synthetic) has three visually distinct classes; chance level for
the untrained model is roughly 1/3 pixel accuracy. Figures are printed, never asserted.
"""
import argparse
import sys
from pathlib import Path

import cat_seg  # noqa: F401  (first: registers CAT-Seg and applies cat_seg.compat)
from cat_seg.datasets.synthetic import write_synthetic_dataset
from cat_seg.cli import configure_distributed_backend
from mmengine.config import Config
from mmengine.runner import Runner

TINY_CONFIG = Path(__file__).resolve().parents[2] / 'configs' / 'misc' / 'catseg_tiny_synthetic.py'


def build_config(work_dir: Path, data_root: Path, iters: int) -> Config:
    cfg = Config.fromfile(str(TINY_CONFIG))
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.data_root = str(data_root)
    cfg.work_dir = str(work_dir)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=iters)
    cfg.param_scheduler = [dict(type='CosineAnnealingLR', T_max=iters, eta_min=0.0,
                                by_epoch=False)]
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False, interval=iters)
    cfg.default_hooks.logger.interval = 50
    configure_distributed_backend(cfg)
    return cfg


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--iters', type=int, default=300)
    parser.add_argument('--work-dir', default='work_dirs/learning_check')
    parser.add_argument('--num-train', type=int, default=32)
    parser.add_argument('--num-val', type=int, default=8)
    parser.add_argument('--seed', type=int, default=0,
                        help='seeds weights, sampling and crops, so a run can be repeated')
    args = parser.parse_args(argv)
    work_dir = Path(args.work_dir)
    data_root = write_synthetic_dataset(work_dir / 'data', args.num_train, args.num_val, seed=1)
    cfg = build_config(work_dir, data_root, args.iters)
    cfg.randomness = dict(seed=args.seed)
    runner = Runner.from_cfg(cfg)
    before = runner.test()
    runner.train()
    after = runner.test()
    print(f'held-out mIoU before training: {before["mIoU"]:.2f}, after {args.iters} iterations: '
          f'{after["mIoU"]:.2f} (aAcc {before["aAcc"]:.2f} -> {after["aAcc"]:.2f})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
