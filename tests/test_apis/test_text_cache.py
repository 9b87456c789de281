"""The disk text cache never gives a wrong answer: every kind of bad entry is named, recomputed
and rewritten, and concurrent writers of one vocabulary both succeed."""
import logging
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.logging import MMLogger

from cat_seg.apis import CATSegInferencer
from catseg_testing import REPO_ROOT, TINY_CONFIG

VOCABULARY = ['sky', ['person', 'human'], 'flag', 'tree', 'road']
PHOTO = REPO_ROOT / 'demo' / 'astronaut.jpg'


@pytest.fixture
def warnings_logged():
    """WARNING lines logged through mmengine's current logger while the test runs."""
    lines = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: lines.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


def damage(path, kind, good):
    """Replace the entry at ``path`` (holding ``good``, (T, P, C)) by a bad one of ``kind``."""
    if kind == 'truncated':
        path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
    elif kind == 'empty':
        path.write_bytes(b'')
    elif kind == 'dict of tensors':
        torch.save({'embeds': good}, path)
    elif kind == 'foreign pickle':
        path.write_bytes(pickle.dumps(sorted))
    elif kind == 'wrong shape':
        torch.save(good[:-1].clone(), path)      # one class short: another vocabulary's entry
    elif kind == 'wrong dtype':
        torch.save(good.double(), path)
    elif kind == 'not finite':
        torch.save(torch.full_like(good, float('nan')), path)


@pytest.mark.parametrize('kind', ['truncated', 'empty', 'dict of tensors', 'foreign pickle',
                                  'wrong shape', 'wrong dtype', 'not finite'])
def test_a_bad_entry_is_named_recomputed_and_rewritten(tiny_checkpoint, tmp_path, kind,
                                                       warnings_logged):
    uncached = CATSegInferencer(str(TINY_CONFIG), tiny_checkpoint, mode='whole',
                                text_cache_dir=None)
    expected, = uncached(PHOTO, VOCABULARY)
    good = uncached.model.text_encoder(VOCABULARY)
    cache = str(tmp_path / 'cache')
    CATSegInferencer(str(TINY_CONFIG), tiny_checkpoint, mode='whole',
                     text_cache_dir=cache)(PHOTO, VOCABULARY)                # writes the entry
    inferencer = CATSegInferencer(str(TINY_CONFIG), tiny_checkpoint, mode='whole',
                                  text_cache_dir=cache)
    path = inferencer.text_cache.file(VOCABULARY)
    damage(path, kind, good)
    result, = inferencer(PHOTO, VOCABULARY)
    assert len(warnings_logged) == 1 and warnings_logged[0].startswith(
        f'text embedding cache: ignoring {path}: ') and warnings_logged[0].endswith(
        '; recomputing it'), warnings_logged
    assert inferencer.model.text_encoder.num_prompts_encoded == 6     # 4 names + 2 synonyms
    np.testing.assert_array_equal(result.label_map, expected.label_map)
    np.testing.assert_array_equal(result.class_scores, expected.class_scores)
    rewritten = torch.load(path, weights_only=True)
    torch.testing.assert_close(rewritten, good, rtol=0, atol=0)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]   # no temporary left


def test_the_wrong_shape_names_what_this_vocabulary_needs(tiny_checkpoint, tmp_path,
                                                          warnings_logged):
    inferencer = CATSegInferencer(str(TINY_CONFIG), tiny_checkpoint, mode='whole',
                                  text_cache_dir=str(tmp_path))
    path = inferencer.text_cache.file(VOCABULARY)
    torch.save(torch.zeros(4, 1, 32, dtype=torch.float16), path)
    inferencer(PHOTO, VOCABULARY)
    assert warnings_logged == [
        f'text embedding cache: ignoring {path}: holds a torch.float16 tensor of shape '
        '(4, 1, 32); this vocabulary and encoder give torch.float32 (5, 1, 32) (T, P, C); '
        'recomputing it']


@pytest.mark.slow
def test_two_demo_processes_share_a_new_vocabulary(tiny_checkpoint, tmp_path):
    """Both processes find no entry, both compute and write it at about the same time."""
    cache = tmp_path / 'cache'
    commands = [[sys.executable, str(REPO_ROOT / 'tools' / 'demo.py'), str(PHOTO), '--vocab',
                 'sky, grass, road, flag', '--config', str(TINY_CONFIG), '--checkpoint',
                 tiny_checkpoint, '--mode', 'whole', '--text-cache', str(cache),
                 '--out', str(tmp_path / f'out{i}')] for i in range(2)]
    processes = [subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for command in commands]
    logs = [process.communicate(timeout=300)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0], logs
    entries = list(cache.iterdir())
    assert len(entries) == 1 and entries[0].suffix == '.pt', entries
    embeds = torch.load(entries[0], weights_only=True)
    assert embeds.shape == (4, 1, 32) and torch.isfinite(embeds).all()
    labels = [(tmp_path / f'out{i}' / 'astronaut_labels.png').read_bytes() for i in range(2)]
    assert labels[0] == labels[1]
