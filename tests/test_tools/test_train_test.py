"""tools/train.py, tools/test.py and tools/dist_train.sh through the real runner, on real files."""
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cat_seg.weights.resume import resume_problem
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


def spoil(path: Path, kind: str) -> None:
    """Make a checkpoint unreadable as a kill or a foreign file would."""
    if kind == 'truncated':
        path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
    elif kind == 'empty':
        path.write_bytes(b'')
    else:
        path.write_text('not a checkpoint')


@pytest.mark.parametrize('kind', ['truncated', 'empty', 'text', 'weights only', 'missing'])
def test_resume_refuses_a_file_that_is_not_a_training_checkpoint(trained, kind):
    root, data, work_dir, _ = trained
    path = root / f'{kind.replace(" ", "_")}.pth'
    if kind == 'weights only':
        torch.save({'decode_head.conv.weight': torch.zeros(1)}, path)
    elif kind != 'missing':
        shutil.copy(work_dir / 'iter_2.pth', path)
        spoil(path, kind)
    result, log = run([sys.executable, str(TOOLS / 'train.py'), str(TINY_CONFIG), '--work-dir',
                       str(root / 'resumed'), '--resume', str(path), *data_options(data)],
                      cwd=root)
    assert result.returncode == 2 and 'Traceback' not in log, log[-3000:]
    if kind == 'missing':
        assert f"error: --resume checkpoint '{path}' does not exist" in log
        return
    reason = ("it has no training state ['meta', 'state_dict', 'optimizer'], so it is not a "
              'checkpoint of tools/train.py; to start training from its weights use '
              f'--cfg-options load_from={path}' if kind == 'weights only'
              else 'it is not a readable checkpoint of tools/train.py (truncated, or another '
              'kind of file: ')
    assert f"error: cannot resume from '{path}': {reason}" in log


@pytest.mark.parametrize('named', [True, False])
def test_resume_refuses_a_checkpoint_of_another_architecture(trained, tmp_path, named):
    """mmengine would resume non-strictly (the extra layer at its initialisation)."""
    root, data, work_dir, _ = trained
    work_dir = copy_work_dir(trained, tmp_path / 'work')
    resume = ['--resume', str(work_dir / 'iter_4.pth')] if named else ['--resume']
    result, log = run([sys.executable, str(TOOLS / 'train.py'), str(TINY_CONFIG), '--work-dir',
                       str(work_dir), *resume, *data_options(data),
                       'model.decode_head.num_layers=2'], cwd=root)
    assert result.returncode == 2 and 'Traceback' not in log, log[-3000:]
    assert re.search(rf"error: cannot resume from '{work_dir / 'iter_4.pth'}': its weights do "
                     r"not match the config: \d+ missing keys \['decode_head\.layers\.1\.", log)


def copy_work_dir(trained, target: Path) -> Path:
    """A copy of the trained work dir (iter_2.pth, iter_4.pth; last_checkpoint names the
    original's iter_4.pth, which stays where it is)."""
    shutil.copytree(trained[2], target)
    assert (target / 'last_checkpoint').read_text() == str(trained[2] / 'iter_4.pth')
    return target


def resume(trained, work_dir: Path):
    root, data, _, _ = trained
    return run([sys.executable, str(TOOLS / 'train.py'), str(TINY_CONFIG), '--work-dir',
                str(work_dir), '--resume', *data_options(data)], cwd=root)


@pytest.mark.parametrize('kind', ['truncated', 'empty', 'text'])
def test_auto_resume_skips_an_unreadable_newest_checkpoint(trained, tmp_path, kind):
    work_dir = copy_work_dir(trained, tmp_path / 'work')
    spoil(work_dir / 'iter_4.pth', kind)
    result, log = resume(trained, work_dir)
    assert result.returncode == 0, log[-3000:]
    warnings = [line for line in log.splitlines() if line.startswith('warning:')]
    assert len(warnings) == 1 and warnings[0].startswith(
        f"warning: skipped '{work_dir / 'iter_4.pth'}' (it is not a readable checkpoint of "
        'tools/train.py'), log[-3000:]
    assert warnings[0].endswith(f"; resuming from '{work_dir / 'iter_2.pth'}'")
    assert 'resumed epoch: 0, iter: 2' in log
    assert re.findall(r'Iter\(train\) \[(\d)/4\]', log) == ['3', '4']


@pytest.mark.parametrize('last_checkpoint', ['stale', 'empty', 'absent'])
def test_auto_resume_looks_only_inside_the_resumed_work_dir(trained, tmp_path, last_checkpoint):
    """A copied work dir resumes from its own iter_4.pth, although last_checkpoint names the
    original's (which exists); empty or absent, the newest iter_<N>.pth is found."""
    work_dir = copy_work_dir(trained, tmp_path / 'copied')
    (work_dir / 'iter_2.pth').unlink()
    if last_checkpoint == 'empty':
        (work_dir / 'last_checkpoint').write_text('')
    elif last_checkpoint == 'absent':
        (work_dir / 'last_checkpoint').unlink()
    result, log = resume(trained, work_dir)
    assert result.returncode == 0 and 'warning:' not in log, log[-3000:]
    assert f'Load checkpoint from {work_dir / "iter_4.pth"}' in log
    assert str(trained[2]) not in log.replace(str(work_dir), '')
    assert 'resumed epoch: 0, iter: 4' in log


def test_auto_resume_without_a_readable_checkpoint_names_the_work_dir_and_the_files(
        trained, tmp_path):
    work_dir = copy_work_dir(trained, tmp_path / 'work')
    spoil(work_dir / 'iter_4.pth', 'truncated')
    spoil(work_dir / 'iter_2.pth', 'empty')
    result, log = resume(trained, work_dir)
    assert result.returncode == 2 and 'Traceback' not in log, log[-3000:]
    error = [line for line in log.splitlines() if line.startswith('error:')]
    assert error[0].startswith(f"error: no readable checkpoint to resume from in the work dir "
                               f"'{work_dir}'; tried '{work_dir / 'iter_4.pth'}' (it is not a "
                               'readable checkpoint'), log[-3000:]
    assert f"; '{work_dir / 'iter_2.pth'}' (it is not a readable checkpoint" in error[0]


# Runs tools/train.py with every write to the N-th file opened for writing whose name contains
# argv[1] stopped half-way by SIGKILL: a kill in the middle of saving that file.
KILL_WHILE_WRITING = """
import builtins, os, runpy, signal, sys
fragment, occurrence = sys.argv[1], int(sys.argv[2])
real_open, opened = builtins.open, []


class HalfWriteThenDie:
    def __init__(self, file):
        self.file = file

    def write(self, data):
        self.file.write(data[:len(data) // 2])
        self.file.flush()
        os.fsync(self.file.fileno())
        os.kill(os.getpid(), signal.SIGKILL)

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()


def killing_open(file, mode='r', *args, **kwargs):
    handle = real_open(file, mode, *args, **kwargs)
    if fragment in os.path.basename(str(file)) and ('w' in mode or 'x' in mode):
        opened.append(file)
        if len(opened) == occurrence:
            return HalfWriteThenDie(handle)
    return handle


builtins.open = killing_open
sys.argv = sys.argv[3:]
runpy.run_path(sys.argv[0], run_name='__main__')
"""


@pytest.mark.parametrize('killed_file, occurrence', [('iter_4.pth', 1), ('last_checkpoint', 2)])
def test_a_kill_while_saving_leaves_no_torn_file_and_resume_continues(tmp_path, killed_file,
                                                                      occurrence):
    """SIGKILL half-way through writing iter_4.pth, or the last_checkpoint that names it: every
    file under a final name is whole, last_checkpoint names iter_2.pth, and --resume continues
    from iteration 2."""
    data = write_synthetic_dataset(tmp_path / 'data')
    work_dir = tmp_path / 'work'
    command = [str(TOOLS / 'train.py'), str(TINY_CONFIG), '--work-dir', str(work_dir),
               *data_options(data)]
    result, log = run([sys.executable, '-c', KILL_WHILE_WRITING, killed_file, str(occurrence),
                       *command], cwd=tmp_path)
    assert result.returncode == -signal.SIGKILL, log[-3000:]
    assert (work_dir / 'last_checkpoint').read_text() == str(work_dir / 'iter_2.pth')
    saved = sorted(path.name for path in work_dir.glob('*.pth'))
    assert saved == (['iter_2.pth'] if killed_file == 'iter_4.pth'
                     else ['iter_2.pth', 'iter_4.pth'])
    assert [resume_problem(str(work_dir / name)) for name in saved] == [None] * len(saved)
    result, log = run([sys.executable, *command, '--resume'], cwd=tmp_path)
    assert result.returncode == 0 and 'warning:' not in log, log[-3000:]
    assert 'resumed epoch: 0, iter: 2' in log
    assert re.findall(r'Iter\(train\) \[(\d)/4\]', log) == ['3', '4']


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
