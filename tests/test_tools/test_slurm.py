"""tools/slurm_train.sh and tools/slurm_test.sh under stand-in `srun` and `scontrol` that start the
tasks on this machine with the variables Slurm sets: `--launcher slurm` runs 2 gloo processes."""
import argparse
import os
import re
import subprocess
import sys
import textwrap

import pytest

from cat_seg import compat
from cat_seg.cli import SLURM_VARIABLES, add_runner_arguments, load_runner_config
from catseg_testing import REPO_ROOT, TINY_CONFIG, free_port, write_synthetic_dataset

pytestmark = pytest.mark.slow  # the Slurm scripts train and test in gloo subprocesses

TOOLS = REPO_ROOT / 'tools'
# Records its arguments, then starts --ntasks copies of the command as srun does on one node.
FAKE_SRUN = textwrap.dedent('''\
    #!/usr/bin/env bash
    printf '%s\\n' "$@" > "$FAKE_SLURM_LOG/srun_args"
    ntasks=1
    per_node=1
    while [ $# -gt 0 ]; do
        case $1 in
            --ntasks=*) ntasks=${1#*=} ;;
            --ntasks-per-node=*) per_node=${1#*=} ;;
            -p) shift ;;
            -*) ;;
            *) break ;;
        esac
        shift
    done
    pids=()
    for ((rank = 0; rank < ntasks; rank++)); do
        SLURM_PROCID=$rank SLURM_NTASKS=$ntasks SLURM_LOCALID=$((rank % per_node)) \\
            SLURM_NODEID=$((rank / per_node)) SLURM_NODELIST=cpu-node[01] "$@" &
        pids+=($!)
    done
    status=0
    for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
    exit $status
''')
FAKE_SCONTROL = textwrap.dedent('''\
    #!/usr/bin/env bash
    echo "$@" >> "$FAKE_SLURM_LOG/scontrol_args"
    [ "$1 $2" = "show hostnames" ] && echo 127.0.0.1
''')


@pytest.fixture(scope='module')
def cluster(tmp_path_factory):
    """PATH with the stand-ins first, and the directory they log to."""
    root = tmp_path_factory.mktemp('slurm')
    bin_dir = root / 'bin'
    bin_dir.mkdir()
    for name, script in (('srun', FAKE_SRUN), ('scontrol', FAKE_SCONTROL)):
        (bin_dir / name).write_text(script)
        (bin_dir / name).chmod(0o755)
    return root, dict(PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}', FAKE_SLURM_LOG=str(root))


def run_slurm_script(args, cluster, cwd, **variables):
    """A script under the stand-ins, 2 tasks on 1 node, from a clean environment: no MASTER_ADDR
    or SLURM_* of the caller (the stand-in srun sets those Slurm would)."""
    env = {name: value for name, value in os.environ.items()
           if name != 'MASTER_ADDR' and not name.startswith('SLURM_')}
    env.update(cluster[1], PYTHON=sys.executable, MASTER_PORT=str(free_port()), GPUS='2',
               GPUS_PER_NODE='2', CPUS_PER_TASK='1', **variables)
    result = subprocess.run(['bash', *args], capture_output=True, text=True, cwd=cwd, env=env,
                            timeout=300)
    return result, result.stdout + result.stderr


def data_options(root):
    return ['--cfg-options'] + [f'{split}_dataloader.dataset.data_root={root}'
                                for split in ('train', 'val', 'test')]


@pytest.fixture(scope='module')
def trained(cluster, tmp_path_factory):
    """Two iterations of the tiny model by tools/slurm_train.sh on 2 tasks (CPU: GRES empty)."""
    root = tmp_path_factory.mktemp('slurm_train')
    data = write_synthetic_dataset(root / 'data')
    result, log = run_slurm_script(
        [str(TOOLS / 'slurm_train.sh'), 'cpu', 'catseg_tiny', str(TINY_CONFIG), str(root / 'work'),
         *data_options(data), 'train_cfg.max_iters=2', 'train_cfg.val_interval=100'],
        cluster, root, GRES='', SRUN_ARGS='--time=10 --mem=4G')
    return root, data, result, log


def test_slurm_train_runs_two_gloo_processes(cluster, trained):
    root, _, result, log = trained
    assert result.returncode == 0, log[-3000:]
    assert re.search(r'Distributed launcher: slurm\s+Distributed training: True\s+'
                     r'GPU number: 2', log)
    assert re.search(r'Iter\(train\) \[2/2\]', log)
    assert (root / 'work' / 'iter_2.pth').is_file()
    srun_args = (cluster[0] / 'srun_args').read_text().splitlines()
    assert srun_args[:9] == ['-p', 'cpu', '--job-name=catseg_tiny', '--ntasks=2',
                             '--ntasks-per-node=2', '--cpus-per-task=1', '--kill-on-bad-exit=1',
                             '--time=10', '--mem=4G']
    assert srun_args[9:13] == [sys.executable, '-u', str(TOOLS / 'train.py'), str(TINY_CONFIG)]
    assert srun_args[-2:] == ['--launcher', 'slurm']
    # Each task found the master through scontrol (MASTER_ADDR was unset).
    assert (cluster[0] / 'scontrol_args').read_text().splitlines() == [
        'show hostnames cpu-node[01]'] * 2


def test_slurm_test_evaluates_on_two_processes(cluster, trained, tmp_path):
    root, data, result, _ = trained
    assert result.returncode == 0
    result, log = run_slurm_script(
        [str(TOOLS / 'slurm_test.sh'), 'gpu', 'catseg_test', str(TINY_CONFIG),
         str(root / 'work' / 'iter_2.pth'), '--work-dir', str(tmp_path / 'test'),
         *data_options(data)], cluster, tmp_path, MASTER_ADDR='127.0.0.1')
    assert result.returncode == 0, log[-3000:]
    assert re.search(r'Distributed launcher: slurm\s+Distributed training: True', log)
    assert re.search(r'Iter\(test\) \[1/1\].*mIoU: \d+\.\d+', log)   # 2 images, 1 per task
    srun_args = (cluster[0] / 'srun_args').read_text().splitlines()
    assert srun_args[:3] == ['-p', 'gpu', '--job-name=catseg_test']
    assert '--gres=gpu:2' in srun_args   # MMSeg's default request
    # MASTER_ADDR given: the tasks did not ask scontrol (its log holds the training run's calls).
    assert len((cluster[0] / 'scontrol_args').read_text().splitlines()) == 2


@pytest.mark.parametrize('script, usage', [
    ('slurm_train.sh', 'PARTITION JOB_NAME CONFIG WORK_DIR [tools/train.py options]'),
    ('slurm_test.sh', 'PARTITION JOB_NAME CONFIG CHECKPOINT [tools/test.py options]'),
])
def test_slurm_scripts_state_their_usage(script, usage, tmp_path):
    result = subprocess.run(['bash', str(TOOLS / script), 'cpu', 'job', str(TINY_CONFIG),
                             '--work-dir', 'w'], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().endswith(usage)


def test_launcher_slurm_outside_a_job_is_named(monkeypatch):
    for name in SLURM_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('LOCAL_RANK', '0')   # load_runner_config sets it when missing
    parser = argparse.ArgumentParser()
    parser.add_argument('config')
    add_runner_arguments(parser)
    args = parser.parse_args([str(TINY_CONFIG), '--launcher', 'slurm'])
    with pytest.raises(ValueError, match=re.escape(
            "--launcher slurm needs the variables srun sets; ['SLURM_PROCID', 'SLURM_NTASKS', "
            "'SLURM_NODELIST'] are not set: start the tool with tools/slurm_train.sh")):
        load_runner_config(args)


def test_cpu_slurm_setup_names_a_failing_scontrol(monkeypatch, tmp_path):
    monkeypatch.delenv('MASTER_ADDR', raising=False)
    monkeypatch.setenv('SLURM_NODELIST', 'node[1-2]')
    monkeypatch.setenv('PATH', str(tmp_path))   # no scontrol
    with pytest.raises(RuntimeError, match=r'`scontrol show hostnames node\[1-2\]` failed .*; '
                                           r'set MASTER_ADDR to the first node of the job'):
        compat.init_dist_slurm_without_cuda('gloo')
