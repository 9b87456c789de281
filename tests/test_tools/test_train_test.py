"""tools/train.py, tools/test.py and tools/dist_train.sh through the real runner, on real files."""
import re
import sys
from pathlib import Path

import pytest

from catseg_testing import REPO_ROOT, TINY_CONFIG, run_tool as run, write_synthetic_dataset

TOOLS = REPO_ROOT / 'tools'


def data_options(root: Path):
    return ['--cfg-options'] + [f'{split}_dataloader.dataset.data_root={root}'
                                for split in ('train', 'val', 'test')]


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """4 iterations of the tiny CAT-Seg (checkpoints at 2 and 4) on a synthetic dataset."""
    root = tmp_path_factory.mktemp('train')
    data = write_synthetic_dataset(root / 'data')
    work_dir = root / 'work'
    result, log = run([sys.executable, str(TOOLS / 'train.py'), str(TINY_CONFIG),
                       '--work-dir', str(work_dir), *data_options(data)], cwd=root)
    assert result.returncode == 0, log[-3000:]
    return root, data, work_dir, log


def test_train_writes_checkpoints_and_validates(trained):
    _, _, work_dir, log = trained
    assert (work_dir / 'iter_2.pth').is_file() and (work_dir / 'iter_4.pth').is_file()
    assert re.search(r'Iter\(train\) \[4/4\].*decode\.loss_bce', log)
    assert re.search(r'Iter\(val\) \[2/2\].*mIoU', log)


def test_resume_continues_from_the_saved_iteration(trained):
    root, data, work_dir, _ = trained
    result, log = run([sys.executable, str(TOOLS / 'train.py'), str(TINY_CONFIG),
                       '--work-dir', str(work_dir), '--resume', str(work_dir / 'iter_2.pth'),
                       *data_options(data)], cwd=root)
    assert result.returncode == 0, log[-3000:]
    assert 'resumed epoch: 0, iter: 2' in log
    trained_iters = re.findall(r'Iter\(train\) \[(\d)/4\]', log)
    assert trained_iters == ['3', '4']


def test_test_tool_reports_miou(trained):
    root, data, work_dir, _ = trained
    result, log = run([sys.executable, str(TOOLS / 'test.py'), str(TINY_CONFIG),
                       str(work_dir / 'iter_4.pth'), '--work-dir', str(root / 'test'),
                       *data_options(data)], cwd=root)
    assert result.returncode == 0, log[-3000:]
    assert re.search(r'Iter\(test\) \[2/2\].*mIoU: \d+\.\d+', log)


def test_test_tool_names_a_missing_checkpoint(tmp_path):
    result, log = run([sys.executable, str(TOOLS / 'test.py'), str(TINY_CONFIG),
                       str(tmp_path / 'nope.pth')], cwd=tmp_path)
    assert result.returncode == 2
    assert f"error: checkpoint '{tmp_path / 'nope.pth'}' does not exist" in log


def test_dist_train_runs_two_processes(tmp_path):
    data = write_synthetic_dataset(tmp_path / 'data')
    work_dir = tmp_path / 'work'
    result, log = run(['bash', str(TOOLS / 'dist_train.sh'), str(TINY_CONFIG), '2',
                       '--work-dir', str(work_dir), *data_options(data),
                       'train_cfg.max_iters=2', 'train_cfg.val_interval=2'], cwd=tmp_path,
                      timeout=600)
    assert result.returncode == 0, log[-3000:]
    assert re.search(r'Distributed launcher: pytorch\s+Distributed training: True\s+'
                     r'GPU number: 2', log)
    assert re.search(r'Iter\(train\) \[2/2\]', log)
    assert (work_dir / 'iter_2.pth').is_file()
