"""Sliding-window settings are refused when the model is built from the config: tools/train.py
and tools/test.py stop before their first iteration with an ``error:`` line naming the key."""
import sys

import pytest
import torch
from mmseg.registry import MODELS

from catseg_testing import (REPO_ROOT, TINY_CONFIG, run_tool, tiny_model_config,
                            write_synthetic_dataset)

pytestmark = pytest.mark.slow  # tools/test.py in a subprocess

# The tiny config slides 64-px windows at stride 32 over a 96-px resize.
BAD_SETTINGS = {
    'zero stride': ('stride', '[0,0]',
                    'test_cfg.stride=[0, 0] must be a pair (h, w) of positive integers'),
    'negative stride': ('stride', '[-32,32]',
                        'test_cfg.stride=[-32, 32] must be a pair (h, w) of positive integers'),
    'stride beyond the crop': ('stride', '[32,96]',
                               'test_cfg.stride=(32, 96) is larger than test_cfg.crop_size=(64, '
                               '64); use a stride no larger than the crop in each dimension'),
    'zero crop': ('crop_size', '[0,64]',
                  'test_cfg.crop_size=[0, 64] must be a pair (h, w) of positive integers'),
    'negative resize': ('resize_to', '[96,-96]',
                        'test_cfg.resize_to=[96, -96] must be a pair (h, w) of positive '
                        'integers'),
    'one number': ('stride', '32', 'test_cfg.stride=32 must be a pair (h, w) of positive '
                   'integers'),
}


@pytest.fixture(scope='module')
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp('settings')
    data = write_synthetic_dataset(root / 'data')
    checkpoint = root / 'tiny.pth'
    torch.save(MODELS.build(tiny_model_config()).state_dict(), checkpoint)
    return root, data, checkpoint


@pytest.mark.parametrize('tool, case', [
    *[(tool, case) for tool in ('train', 'test')
      for case in ('zero stride', 'negative stride', 'stride beyond the crop')],
    ('test', 'zero crop'), ('train', 'negative resize'), ('test', 'one number')])
def test_bad_sliding_settings_stop_the_tool_before_any_iteration(inputs, tool, case):
    root, data, checkpoint = inputs
    key, value, message = BAD_SETTINGS[case]
    work_dir = root / f'{tool}_{case.replace(" ", "_")}'
    command = [sys.executable, str(REPO_ROOT / 'tools' / f'{tool}.py'), str(TINY_CONFIG)]
    command += [str(checkpoint)] if tool == 'test' else []
    command += ['--work-dir', str(work_dir), '--cfg-options', f'data_root={data}',
                f'{tool}_dataloader.dataset.data_root={data}', f'model.test_cfg.{key}={value}']
    result, log = run_tool(command, cwd=root)
    assert result.returncode == 2 and 'Traceback' not in log, log[-3000:]
    assert f'\nerror: {message}' in log, log[-3000:]
    assert 'Iter(' not in log and not list(work_dir.glob('*.pth'))
