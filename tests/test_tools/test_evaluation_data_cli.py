"""tools/test.py and tools/benchmark.sh refuse test data that does not pair up or decode, before
evaluating anything: one ``error:`` line, exit status 2, no traceback."""
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmseg.registry import MODELS
from PIL import Image

from catseg_testing import (REPO_ROOT, TINY_CONFIG, run_tool, tiny_model_config,
                            write_synthetic_dataset)

pytestmark = pytest.mark.slow  # tools/test.py and benchmark.sh in subprocesses

TOOLS = REPO_ROOT / 'tools'


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp('ckpt') / 'tiny.pth'
    torch.manual_seed(0)
    torch.save({'state_dict': MODELS.build(tiny_model_config()).state_dict()}, path)
    return path


def run_test_tool(data: Path, checkpoint: Path, cwd: Path, *options):
    return run_tool([sys.executable, str(TOOLS / 'test.py'), str(TINY_CONFIG), str(checkpoint),
                     '--work-dir', str(cwd / 'work'), *options, '--cfg-options',
                     f'test_dataloader.dataset.data_root={data}'], cwd=cwd)


def damage(data: Path, fault: str) -> str:
    """Break the validation split of the synthetic data in one way; the error line expected."""
    image, annotation = data / 'img_dir' / 'val' / '001.jpg', data / 'ann_dir' / 'val' / '001.png'
    if fault == 'missing image':
        image.unlink()
        return (f'error: 1 unpaired test files, so the metric would cover 1 of 2 samples: '
                f'{annotation} (no image); add the missing files, or pass --allow-unpaired to '
                'evaluate the complete pairs only\n')
    if fault == 'missing annotation':
        annotation.unlink()
        return (f'error: 1 unpaired test files, so the metric would cover 1 of 2 samples: '
                f'{image} (no {annotation}); add the missing files, or pass --allow-unpaired to '
                'evaluate the complete pairs only\n')
    if fault == 'corrupt image':
        image.write_bytes(image.read_bytes()[:600])
        return f'error: {image}: cannot be decoded ('
    annotation.write_bytes(annotation.read_bytes()[:-40])     # a torn write
    return f'error: {annotation}: cannot be decoded ('


@pytest.mark.parametrize('fault', ['missing image', 'missing annotation', 'corrupt image',
                                   'corrupt annotation'])
def test_test_tool_refuses_data_that_does_not_pair_up_or_decode(checkpoint, tmp_path, fault):
    data = write_synthetic_dataset(tmp_path / 'data', num_train=0, num_val=2)
    expected = damage(data, fault)
    result, log = run_test_tool(data, checkpoint, tmp_path)
    assert result.returncode == 2 and 'Traceback' not in log, log[-3000:]
    assert expected in result.stderr and result.stderr.count('error:') == 1, log[-3000:]
    assert 'Iter(test)' not in log and not (tmp_path / 'work').exists()


def test_allow_unpaired_evaluates_the_complete_pairs_only(checkpoint, tmp_path):
    data = write_synthetic_dataset(tmp_path / 'data', num_train=0, num_val=3)
    damage(data, 'missing annotation')
    result, log = run_test_tool(data, checkpoint, tmp_path, '--allow-unpaired', '--out',
                                str(tmp_path / 'predictions'))
    assert result.returncode == 0, log[-3000:]
    assert re.search(r'WARNING - --allow-unpaired: 1 unpaired test files, so the metric would '
                     r'cover 2 of 3 samples: .*001\.jpg \(no .*001\.png\)', log)
    assert re.search(r'Iter\(test\) \[2/2\].*mIoU', log)
    assert sorted(p.name for p in (tmp_path / 'predictions').iterdir()) == ['000.png', '002.png']


def test_benchmark_sh_checks_the_data_before_evaluating(checkpoint, tmp_path):
    """A-150's layout (configs/benchmarks/ade150.py) under the working directory, one image
    without its annotation."""
    root = tmp_path / 'data' / 'ade' / 'ADEChallengeData2016'
    for folder in ('images/validation', 'annotations/validation'):
        (root / folder).mkdir(parents=True)
    for name in ('ADE_val_00000001', 'ADE_val_00000002'):
        Image.fromarray(np.full((32, 48, 3), 90, np.uint8)).save(
            root / 'images' / 'validation' / f'{name}.jpg')
    Image.fromarray(np.ones((32, 48), np.uint8)).save(
        root / 'annotations' / 'validation' / 'ADE_val_00000001.png')
    result, log = run_tool(['bash', str(TOOLS / 'benchmark.sh'), str(TINY_CONFIG),
                            str(checkpoint), '--benchmarks', 'ade150', '--work-dir',
                            str(tmp_path / 'work')], cwd=tmp_path)
    assert result.returncode == 2 and 'Traceback' not in log, log[-3000:]
    image = os.path.join('data/ade/ADEChallengeData2016', 'images/validation',
                         'ADE_val_00000002.jpg')
    assert re.search(rf'\nerror: 1 unpaired test files, so the metric would cover 1 of 2 '
                     rf'samples: {re.escape(image)} \(no .*ADE_val_00000002\.png\); ', log), log
    assert 'evaluating' not in log and not (tmp_path / 'work' / 'ade150').exists()
