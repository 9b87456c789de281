"""tools/segment.py and its wrappers on the tiny model (random weights) over a synthetic image
tree: 2 gloo processes against one, a SIGKILL half-way then the rerun, damaged outputs, a file
list with every optional output, the Slurm wrapper under the stand-in srun, and every unusable
argument."""
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from mmseg.registry import MODELS
from PIL import Image
from test_slurm import cluster, run_slurm_script  # noqa: F401  (cluster: the stand-in srun)

from catseg_testing import (REPO_ROOT, TINY_CONFIG, assert_labels_score_best, free_port,
                            tiny_model_config)

TOOLS = REPO_ROOT / 'tools'
VOCAB = 'sky, grass, road; street'
NUM_IMAGES = 40
FOLDERS = ('', 'a', 'b/c')
BROKEN = 'images/b/broken.jpg'   # an empty file: it fails, as in tools/demo.py
BROKEN_FAILURE = [dict(image=BROKEN, reason='empty file (0 bytes)')]


def stem(index: int) -> str:
    """Where image ``index`` and its outputs sit, relative to the input and output trees."""
    return f'{FOLDERS[index % 3]}/{index:03d}'.lstrip('/')


def write_image_tree(root: Path) -> None:
    """``NUM_IMAGES`` noise images of a few sizes in three directories, and one broken file."""
    rng = np.random.RandomState(0)
    for index in range(NUM_IMAGES):
        path = root / 'images' / f'{stem(index)}.png'
        path.parent.mkdir(parents=True, exist_ok=True)
        size = (48 + 16 * (index % 2), 64 + 8 * (index % 4), 3)
        Image.fromarray(rng.randint(0, 256, size, np.uint8)).save(path)
    (root / BROKEN).write_bytes(b'')


def start(args, cwd, **popen) -> subprocess.Popen:
    """A tool run from ``cwd``, one thread per process as torchrun gives each worker, so that
    every run computes alike."""
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()), OMP_NUM_THREADS='1')
    return subprocess.Popen([str(a) for a in args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **popen)


def finish(process: subprocess.Popen):
    log = process.communicate(timeout=600)[0]
    return process.returncode, log


def output_files(out: Path) -> dict:
    """Every file under ``out``, hidden ones too: relative path -> bytes."""
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob('*') if p.is_file()}


def without_summary(files: dict) -> dict:
    return {name: data for name, data in files.items() if name != 'summary.json'}


def file_states(out: Path, names) -> dict:
    """Inode and modification time of each file: equal after a rerun means not rewritten."""
    return {name: (os.stat(out / name).st_ino, os.stat(out / name).st_mtime_ns)
            for name in names}


def process_tree(pid: int) -> list:
    """``pid`` and its descendants (torchrun starts each worker in a session of its own, so
    killing a process group would not reach them)."""
    parents = {}
    for stat in Path('/proc').glob('[0-9]*/stat'):
        try:
            fields = stat.read_text().rsplit(')', 1)[1].split()
        except OSError:   # the process ended meanwhile
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, index = [pid], 0
    while index < len(tree):
        tree += parents.get(tree[index], [])
        index += 1
    return tree


def complete_images(out: Path) -> list:
    """Images with both outputs under their final names. Every file under a final name must
    read back: a kill never leaves half a file there."""
    complete = []
    for index in range(NUM_IMAGES):
        labels, summary = out / f'{stem(index)}_labels.png', out / f'{stem(index)}.json'
        if labels.exists():
            Image.open(labels).load()
        if summary.exists():
            json.loads(summary.read_text())
        if labels.exists() and summary.exists():
            complete.append(index)
    return complete


@pytest.fixture(scope='module')
def options(tmp_path_factory):
    """The options every run shares: the tiny model (random weights) and its checkpoint."""
    root = tmp_path_factory.mktemp('tiny')
    torch.manual_seed(0)
    torch.save(MODELS.build(tiny_model_config()).state_dict(), root / 'tiny.pth')
    return ['--vocab', VOCAB, '--config', TINY_CONFIG, '--checkpoint', root / 'tiny.pth',
            '--text-cache', root / 'text_cache']


@pytest.fixture(scope='module')
def collection(tmp_path_factory, options):
    """The image tree, the options, and what one process (``--launcher none``) writes for it."""
    root = tmp_path_factory.mktemp('collection')
    write_image_tree(root)
    status, log = finish(start([sys.executable, TOOLS / 'segment.py', 'images', *options,
                                '--out', 'reference'], root))
    assert status == 1, log[-3000:]   # the broken image
    return root, options, output_files(root / 'reference'), log


@pytest.mark.slow
def test_one_process_writes_each_image_and_the_summary(collection):
    root, _, reference, log = collection
    assert set(reference) == {'summary.json'} | {
        f'{stem(i)}{suffix}' for i in range(NUM_IMAGES) for suffix in ('_labels.png', '.json')}
    summary = json.loads(reference['summary.json'])
    pixels = sum(np.bincount(np.asarray(Image.open(root / 'reference' / f'{stem(i)}_labels.png'))
                             .ravel(), minlength=3) for i in range(NUM_IMAGES))
    assert [c['pixels'] for c in summary['pixels']] == pixels.tolist()
    assert [c['name'] for c in summary['pixels']] == ['sky', 'grass', 'road; street']
    assert summary['vocabulary'] == ['sky', 'grass', ['road', 'street']]
    assert summary['failed'] == BROKEN_FAILURE
    assert (summary['images'], summary['complete'], summary['segmented']) == (41, 40, 40)
    assert f'failed: {BROKEN}: empty file (0 bytes)' in log
    assert '41/41' in log   # the progress bar's overall count
    first = json.loads(reference[f'{stem(0)}.json'])
    assert first['image'] == f'images/{stem(0)}.png' and (first['height'], first['width']) == (
        48, 64)


@pytest.mark.slow
def test_two_gloo_processes_write_what_one_process_writes(collection, tmp_path):
    root, options, reference, _ = collection
    status, log = finish(start(['bash', TOOLS / 'dist_segment.sh', 'images', '2', *options,
                                '--out', tmp_path / 'out'], root))
    assert status == 1, log[-3000:]   # rank 0 reports the broken image
    assert output_files(tmp_path / 'out') == reference
    assert log.count(f'failed: {BROKEN}: ') == 1   # its rank alone reports it
    assert '41/41' in log


@pytest.mark.slow
def test_a_rerun_after_a_kill_segments_only_what_is_not_done(collection, tmp_path):
    """SIGKILL torchrun and both workers once about half the images are written, then rerun:
    outputs equal one process's, and the images complete before the kill are neither segmented
    nor written again."""
    root, options, reference, _ = collection
    out = tmp_path / 'out'
    args = ['bash', TOOLS / 'dist_segment.sh', 'images', '2', *options, '--out', out]
    process = start(args, root)
    while len(list(out.rglob('[0-9]*.json'))) < NUM_IMAGES // 2 and process.poll() is None:
        time.sleep(0.005)
    tree = process_tree(process.pid)
    for pid in reversed(tree):   # the workers first: torchrun must not stop them gently
        os.kill(pid, signal.SIGKILL)
    finish(process)
    assert len(tree) >= 3 and process.returncode == -signal.SIGKILL   # torchrun, 2 workers
    assert not (out / 'summary.json').exists()
    done = complete_images(out)
    assert NUM_IMAGES // 2 <= len(done) < NUM_IMAGES
    kept = [f'{stem(i)}{suffix}' for i in done for suffix in ('_labels.png', '.json')]
    before = file_states(out, kept)

    status, log = finish(start(args, root))
    assert status == 1, log[-3000:]
    files = output_files(out)
    assert without_summary(files) == without_summary(reference)   # nothing partial is left
    summary, expected = json.loads(files['summary.json']), json.loads(reference['summary.json'])
    assert (summary['done_before'], summary['segmented']) == (len(done), NUM_IMAGES - len(done))
    assert summary['pixels'] == expected['pixels'] and summary['failed'] == BROKEN_FAILURE
    assert file_states(out, kept) == before


@pytest.mark.slow
def test_damaged_outputs_are_segmented_again(collection, tmp_path):
    root, options, reference, _ = collection
    out = tmp_path / 'out'
    shutil.copytree(root / 'reference', out)
    labels = out / f'{stem(0)}_labels.png'
    labels.write_bytes(labels.read_bytes()[:len(labels.read_bytes()) // 2])   # truncated
    (out / f'{stem(1)}.json').write_text('{"height": 48, ')                    # cut short
    (out / f'{stem(2)}_labels.png').unlink()
    untouched = [name for name in without_summary(reference)
                 if not name.startswith((stem(0), stem(1), stem(2)))]
    before = file_states(out, untouched)
    status, log = finish(start([sys.executable, TOOLS / 'segment.py', 'images', *options,
                                '--out', out], root))
    assert status == 1, log[-3000:]
    files = output_files(out)
    assert without_summary(files) == without_summary(reference)
    summary = json.loads(files['summary.json'])
    assert (summary['done_before'], summary['segmented']) == (NUM_IMAGES - 3, 3)
    assert file_states(out, untouched) == before
    assert '3 by this run, 37 before' in log


@pytest.mark.slow
def test_a_file_list_with_probabilities_and_overlays(collection, tmp_path):
    """A .txt list (relative to its directory, and absolute); --save-probs and --save-overlay
    make those files part of what is done: a rerun without them keeps everything."""
    root, options, reference, _ = collection
    listing = root / 'images' / 'some.txt'
    listing.write_text(f'{stem(1)}.png\n\n{root / "images" / stem(2)}.png\n')
    out = tmp_path / 'out'
    status, log = finish(start([sys.executable, TOOLS / 'segment.py', listing, *options,
                                '--out', out, '--save-probs', '--save-overlay'], root))
    assert status == 0, log[-3000:]
    name = Path(stem(2)).name
    assert set(output_files(out)) == {'summary.json'} | {
        f'{prefix}{suffix}' for prefix in (stem(1), name)
        for suffix in ('_labels.png', '.json', '_probs.npz', '_overlay.png')}
    assert (out / f'{stem(1)}_labels.png').read_bytes() == reference[f'{stem(1)}_labels.png']
    with np.load(out / f'{name}_probs.npz') as saved:
        assert saved['probs'].dtype == np.float16
        assert_labels_score_best(saved['probs'],   # tolerance 0: float16 rounding is monotonic
                                 np.asarray(Image.open(out / f'{name}_labels.png')), tolerance=0)
        assert saved['vocabulary'].tolist() == ['sky', 'grass', 'road; street']
    status, log = finish(start([sys.executable, TOOLS / 'segment.py', listing, *options,
                                '--out', out], root))
    assert status == 0 and '0 by this run, 2 before' in log, log[-3000:]


@pytest.mark.slow
def test_slurm_wrapper_runs_two_tasks(collection, cluster, tmp_path):  # noqa: F811
    root, options, reference, _ = collection
    result, log = run_slurm_script(
        [str(TOOLS / 'slurm_segment.sh'), 'cpu', 'catseg_segment', 'images',
         *map(str, options), '--out', str(tmp_path / 'out')], cluster, root, GRES='',
        OMP_NUM_THREADS='1')
    assert result.returncode == 1, log[-3000:]
    assert output_files(tmp_path / 'out') == reference
    srun_args = (cluster[0] / 'srun_args').read_text().splitlines()
    assert srun_args[:2] == ['-p', 'cpu'] and srun_args[-2:] == ['--launcher', 'slurm']
    assert str(TOOLS / 'segment.py') in srun_args


def segment_module():
    """tools/segment.py imported as a module, to call its main in this process."""
    spec = importlib.util.spec_from_file_location('catseg_segment_tool', TOOLS / 'segment.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_precision_option_reaches_the_model(options, tmp_path, autocast_requests, monkeypatch):
    (tmp_path / 'photos').mkdir()
    Image.new('RGB', (20, 20)).save(tmp_path / 'photos' / 'a.png')
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', Image.MAX_IMAGE_PIXELS)   # the tool sets it
    for run, precision in enumerate(('bf16', 'fp16', None)):
        option = ['--precision', precision] if precision else []
        status = segment_module().main([str(tmp_path / 'photos'), *map(str, options), '--out',
                                        str(tmp_path / f'out{run}'), '--mode', 'whole', *option])
        assert status == 0
    assert autocast_requests == ['bf16', 'fp16', 'fp32']    # fp32 by default


@pytest.mark.parametrize('layout, extra, message', [
    ({'photos/a.png': 'image'}, ['photos', '--out', 'photos/labels'],
     "--out '.*photos/labels' is inside the input directory 'photos': a rerun would read the "
     'labels as images; choose an output directory outside it'),
    ({'photos/x/a.png': 'image', 'photos/x/a.jpg': 'image'}, ['photos', '--out', 'out'],
     "'photos/x/a.jpg' and 'photos/x/a.png' would write the same outputs \\(x/a_labels.png, "
     '\\.\\.\\.\\); rename one or segment them into different output directories'),
    ({'photos/notes.md': 'text'}, ['photos', '--out', 'out'],
     "no images found in \\['photos'\\]"),
    ({'photos/a.png': 'image'}, ['photos', '--out', 'out', '--launcher', 'slurm'],
     "--launcher slurm needs the variables srun sets; \\['SLURM_PROCID', 'SLURM_NTASKS', "
     "'SLURM_NODELIST'\\] are not set: start the tool with tools/slurm_segment.sh"),
])
def test_unusable_arguments_exit_2(options, tmp_path, monkeypatch, capsys, layout, extra,
                                   message):
    for name, kind in layout.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        if kind == 'image':
            Image.new('RGB', (8, 8)).save(tmp_path / name)
        else:
            (tmp_path / name).write_text('notes')
    for variable in ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST'):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', Image.MAX_IMAGE_PIXELS)   # the tool sets it
    with pytest.raises(SystemExit) as exit_status:
        segment_module().main([*extra, *map(str, options)])
    assert exit_status.value.code == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert errors[-1].startswith('error: ') and re.fullmatch(message, errors[-1][7:])


@pytest.mark.parametrize('script, args, usage', [
    ('dist_segment.sh', ['photos', 'two'], 'INPUT NUM_PROCESSES [tools/segment.py options]'),
    ('dist_segment.sh', ['--vocab', 'sky'], 'INPUT NUM_PROCESSES [tools/segment.py options]'),
    ('slurm_segment.sh', ['cpu', 'job', '--vocab'],
     'PARTITION JOB_NAME INPUT [tools/segment.py options]'),
])
def test_wrappers_state_their_usage(script, args, usage, tmp_path):
    result = subprocess.run(['bash', str(TOOLS / script), *args], capture_output=True,
                            text=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().endswith(usage)
