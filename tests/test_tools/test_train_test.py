"""tools/train.py, tools/test.py and tools/dist_train.sh through the real runner, on real files."""
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from catseg_testing import (REPO_ROOT, TINY_CONFIG, free_port, run_tool as run,
                            write_synthetic_dataset)

pytestmark = pytest.mark.slow  # tools/train.py, tools/test.py and dist_train.sh in subprocesses

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


@pytest.mark.parametrize('kind', ['truncated', 'text', 'weights only'])
def test_resume_refuses_a_file_that_is_not_a_training_checkpoint(trained, kind):
    root, data, work_dir, _ = trained
    path = root / f'{kind.replace(" ", "_")}.pth'
    if kind == 'truncated':
        path.write_bytes((work_dir / 'iter_2.pth').read_bytes()[:5000])
    elif kind == 'text':
        path.write_text('not a checkpoint')
    else:
        torch.save({'decode_head.conv.weight': torch.zeros(1)}, path)
    result, log = run([sys.executable, str(TOOLS / 'train.py'), str(TINY_CONFIG), '--work-dir',
                       str(root / 'resumed'), '--resume', str(path), *data_options(data)],
                      cwd=root)
    assert result.returncode == 2 and 'Traceback' not in log, log[-3000:]
    reason = ("it has no training state ['meta', 'state_dict', 'optimizer'], so it is not a "
              'checkpoint of tools/train.py; to start training from its weights use '
              f'--cfg-options load_from={path}' if kind == 'weights only'
              else 'it is not a readable checkpoint of tools/train.py (truncated, or another '
              'kind of file: ')
    assert f"error: cannot resume from '{path}': {reason}" in log


def test_test_tool_refuses_a_checkpoint_of_another_architecture(trained):
    root, data, work_dir, _ = trained
    result, log = run([sys.executable, str(TOOLS / 'test.py'), str(TINY_CONFIG),
                       str(work_dir / 'iter_4.pth'), '--work-dir', str(root / 'test_other'),
                       *data_options(data), 'model.decode_head.num_layers=2'], cwd=root)
    assert result.returncode == 2 and 'Traceback' not in log, log[-3000:]
    assert re.search(rf"error: checkpoint '{work_dir / 'iter_4.pth'}' does not match the "
                     r"config: \d+ missing keys \['decode_head\.layers\.1\.", log)


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
                      timeout=600, env=dict(PORT=str(free_port())))
    assert result.returncode == 0, log[-3000:]
    assert re.search(r'Distributed launcher: pytorch\s+Distributed training: True\s+'
                     r'GPU number: 2', log)
    assert re.search(r'Iter\(train\) \[2/2\]', log)
    assert (work_dir / 'iter_2.pth').is_file()


def test_resume_after_the_process_is_killed_mid_run(tmp_path):
    """SIGKILL during iteration 6 of 12 (checkpoint every 4); `--resume` picks up iter_4.pth and
    trains exactly iterations 5..12: none lost, none repeated beyond the checkpoint."""
    data = write_synthetic_dataset(tmp_path / 'data')
    work_dir = tmp_path / 'work'
    command = [sys.executable, str(TOOLS / 'train.py'), str(TINY_CONFIG), '--work-dir',
               str(work_dir), *data_options(data), 'train_cfg.max_iters=12',
               'train_cfg.val_interval=100', 'default_hooks.checkpoint.interval=4']
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    first_log = []
    for line in process.stdout:
        first_log.append(line)
        if re.search(r'Iter\(train\) \[ ?6/12\]', line):
            process.kill()
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, ''.join(first_log)[-3000:]
    assert not (work_dir / 'iter_8.pth').exists() and (work_dir / 'iter_4.pth').is_file()
    result, log = run(command + ['--resume'], cwd=tmp_path)
    assert result.returncode == 0, log[-3000:]
    assert 'resumed epoch: 0, iter: 4' in log
    assert [int(i) for i in re.findall(r'Iter\(train\) \[ ?(\d+)/12\]', log)] == list(range(5, 13))
    assert (work_dir / 'iter_12.pth').is_file()
