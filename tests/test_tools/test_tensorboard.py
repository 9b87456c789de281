"""configs/_base_/runtime_tensorboard.py: a config using it in place of mmseg's default runtime
writes TensorBoard event files with the training and validation scalars."""
from pathlib import Path

import pytest
from mmengine.config import Config
from mmengine.runner import Runner
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from cat_seg.cli import configure_distributed_backend
from catseg_testing import REPO_ROOT, TINY_CONFIG, write_synthetic_dataset

pytestmark = pytest.mark.slow  # trains through mmengine's runner

RUNTIME = REPO_ROOT / 'configs' / '_base_' / 'runtime_tensorboard.py'


def tensorboard_config(tmp_path) -> Path:
    """The tiny config with runtime_tensorboard.py in its _base_ list instead of mmseg's."""
    source = TINY_CONFIG.read_text()
    assert "'mmseg::_base_/default_runtime.py'" in source, 'the tiny config changed its bases'
    config = tmp_path / 'tiny_tensorboard.py'
    config.write_text(source.replace("'mmseg::_base_/default_runtime.py'", repr(str(RUNTIME)))
                      .replace("'../_base_/", f"'{REPO_ROOT / 'configs' / '_base_'}/"))
    return config


def test_short_run_writes_event_files(tmp_path):
    data = write_synthetic_dataset(tmp_path / 'data')
    cfg = Config.fromfile(str(tensorboard_config(tmp_path)))
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.data_root = str(data)
    cfg.work_dir = str(tmp_path / 'work')
    # mmengine keeps one visualizer per name and process: a runner built earlier in this process
    # would hand back its own, without TensorBoard.
    cfg.visualizer.name = f'visualizer_{tmp_path.name}'
    cfg.train_cfg.update(max_iters=2, val_interval=2)
    configure_distributed_backend(cfg)
    Runner.from_cfg(cfg).train()
    events = list((tmp_path / 'work').rglob('events.out.tfevents.*'))
    assert len(events) == 1 and events[0].parent.name == 'vis_data'
    accumulator = EventAccumulator(str(events[0].parent))
    accumulator.Reload()
    assert {'loss', 'decode.loss_bce', 'lr', 'mIoU'} <= set(accumulator.Tags()['scalars'])
    assert [event.step for event in accumulator.Scalars('loss')] == [1, 2]
    assert [event.step for event in accumulator.Scalars('mIoU')] == [2]


def test_runtime_is_mmsegs_default_plus_tensorboard(tmp_path):
    default = tmp_path / 'default_runtime.py'
    default.write_text("_base_ = ['mmseg::_base_/default_runtime.py']\n")
    ours = Config.fromfile(str(RUNTIME)).to_dict()
    mmsegs = Config.fromfile(str(default)).to_dict()
    backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
    assert ours.pop('vis_backends') == ours['visualizer'].pop('vis_backends') == backends
    del mmsegs['vis_backends'], mmsegs['visualizer']['vis_backends']
    assert ours == mmsegs
