"""tools/demo.py end to end on the parity fixture's official-format checkpoint (converted on the
fly), and every kind of bad input."""
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from cat_seg.apis import CATSegInferencer
from cat_seg.datasets import save_categories
from catseg_testing import (REPO_ROOT, TINY_CONFIG, assert_labels_score_best,
                            catseg_config_from_fixture)
from image_corpus import BROKEN, EXOTIC, write_image_corpus

pytestmark = pytest.mark.slow  # tools/demo.py in subprocesses

DEMO = REPO_ROOT / 'tools' / 'demo.py'
VOCAB = 'person, spacesuit, flag'


def demo(*args, cwd, env=None, python=(sys.executable,)):
    result = subprocess.run([*python, str(DEMO), *map(str, args), '--text-cache',
                             str(cwd / 'text_cache')], capture_output=True, text=True, cwd=cwd,
                            timeout=300, env=None if env is None else {**os.environ, **env})
    return result, result.stdout + result.stderr


def test_demo_writes_overlay_labels_and_summary(parity_fixture, fixture_config, tmp_path):
    out = tmp_path / 'out'
    result, log = demo(REPO_ROOT / 'demo' / 'astronaut.jpg', '--vocab', VOCAB, '--config',
                       fixture_config, '--checkpoint', parity_fixture.path / 'state_dict.pt',
                       '--out', out, '--mode', 'whole', cwd=tmp_path)
    assert result.returncode == 0, log[-3000:]
    summary = json.loads((out / 'astronaut.json').read_text())
    labels = np.asarray(Image.open(out / 'astronaut_labels.png'))
    assert labels.shape == (512, 512) and summary['vocabulary'] == VOCAB.split(', ')
    counts = np.bincount(labels.ravel(), minlength=3)
    assert [c['pixels'] for c in summary['present']] == sorted(counts[counts > 0], reverse=True)
    overlay = Image.open(out / 'astronaut_overlay.png')
    assert overlay.height == 512 and overlay.width > 512          # image + legend
    assert '1 of 1 images segmented' in log

    # The Python API gives the same label map for the same input.
    inferencer = CATSegInferencer(str(fixture_config), str(parity_fixture.path / 'state_dict.pt'),
                                  mode='whole')
    api = inferencer([REPO_ROOT / 'demo' / 'astronaut.jpg'], VOCAB.split(', '))[0]
    np.testing.assert_array_equal(api.label_map, labels)


def test_one_call_over_every_broken_and_exotic_image(tiny_catseg, tmp_path):
    """The tiny model (random weights: only sizes and reports are checked) over a folder of every
    kind of image in tests/image_corpus.py, plus a missing path, in one call."""
    images = tmp_path / 'images'
    write_image_corpus(images)
    Image.open(REPO_ROOT / 'demo' / 'astronaut.jpg').resize((48, 32)).save(images / 'photo.jpg')
    torch.save(tiny_catseg.state_dict(), tmp_path / 'tiny.pth')
    missing = tmp_path / 'missing.jpg'
    result, log = demo(images, missing, '--vocab', 'sky, sky, person', '--config', TINY_CONFIG,
                       '--checkpoint', tmp_path / 'tiny.pth', '--out', tmp_path / 'out',
                       '--mode', 'whole', cwd=tmp_path)
    assert result.returncode == 1 and 'Traceback' not in log, log[-3000:]
    good = {**{name: shape for name, (_, shape, _) in EXOTIC.items()}, 'photo.jpg': (32, 48)}
    for name, shape in good.items():
        labels = Image.open(tmp_path / 'out' / f'{Path(name).stem}_labels.png')
        assert labels.size[::-1] == shape, name            # rotated.jpg: 40 high, 20 wide
    failed = [line for line in log.splitlines() if line.startswith('failed: ')]
    bad = {str(images / n): reason for n, (_, reason) in BROKEN.items() if n != 'missing.jpg'}
    bad[str(missing)] = BROKEN['missing.jpg'][1]
    assert len(failed) == len(bad), failed
    for path, reason in bad.items():
        line = next(line for line in failed if line.startswith(f'failed: {path}: '))
        assert re.search(reason, line[len(f'failed: {path}: '):]), line
    assert f'{len(good)} of {len(good) + len(bad)} images segmented' in log
    assert 'duplicate class names removed' in log


def test_max_pixels_sets_the_limit(tiny_catseg, tmp_path, monkeypatch, capsys):
    """In process (tools/demo.py's main): --max-pixels is the limit every image is held to."""
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', Image.MAX_IMAGE_PIXELS)   # restored after
    torch.save(tiny_catseg.state_dict(), tmp_path / 'tiny.pth')
    Image.new('RGB', (40, 30)).save(tmp_path / 'big.png')
    Image.new('RGB', (20, 20)).save(tmp_path / 'small.png')
    status = demo_module().main([str(tmp_path / 'big.png'), str(tmp_path / 'small.png'),
                                 '--vocab', 'sky', '--config', str(TINY_CONFIG), '--checkpoint',
                                 str(tmp_path / 'tiny.pth'), '--out', str(tmp_path / 'out'),
                                 '--mode', 'whole', '--text-cache', '', '--max-pixels', '1000'])
    log = capsys.readouterr()
    assert status == 1
    assert (f"failed: {tmp_path / 'big.png'}: 1200 pixels, over the limit of 1000 pixels (a "
            'guard against decompression bombs); if you trust this image, raise the limit with '
            '--max-pixels 1200') in log.err
    assert '1 of 2 images segmented' in log.out and (tmp_path / 'out' / 'small.json').is_file()


def test_precision_option_reaches_the_model(tiny_catseg, tmp_path, autocast_requests, capsys):
    torch.save(tiny_catseg.state_dict(), tmp_path / 'tiny.pth')
    Image.new('RGB', (20, 20)).save(tmp_path / 'a.png')
    for precision in ('bf16', 'fp16', None):
        option = ['--precision', precision] if precision else []
        status = demo_module().main([str(tmp_path / 'a.png'), '--vocab', 'sky', '--config',
                                     str(TINY_CONFIG), '--checkpoint', str(tmp_path / 'tiny.pth'),
                                     '--out', str(tmp_path / 'out'), '--mode', 'whole',
                                     '--text-cache', '', *option])
        assert status == 0, capsys.readouterr()
    assert autocast_requests == ['bf16', 'fp16', 'fp32']    # fp32 by default


@pytest.mark.parametrize('extra,message', [
    (['--vocab', ' , '], 'the vocabulary is empty'),
    (['--vocab', 'sky', '--opacity', '2'], 'must be in \\[0, 1\\]'),
    (['--dataset', 'ade847'], '--dataset ade847 reads its vocabulary from a file its preparation '
     "script writes .*: category file 'data/ade/ADE20K_847/ade847_categories.json' does not "
     'exist'),
    (['--dataset', 'ade21k'], "invalid choice: 'ade21k'"),
    (['--vocab', 'sky', '--max-pixels', '0'], '--max-pixels 0 must be a positive number'),
    (['--vocab', 'sky', '--precision', 'int8'], "argument --precision: invalid choice: 'int8'"),
])
def test_unusable_arguments_exit_2(parity_fixture, fixture_config, tmp_path, extra, message):
    result, log = demo(REPO_ROOT / 'demo' / 'astronaut.jpg', *extra, '--config', fixture_config,
                       '--checkpoint', parity_fixture.path / 'state_dict.pt', '--out',
                       tmp_path / 'out', cwd=tmp_path)
    assert result.returncode == 2 and 'error:' in log
    assert re.search(message, log)


def test_a_missing_checkpoint_file_is_named(fixture_config, tmp_path):
    result, log = demo(REPO_ROOT / 'demo' / 'astronaut.jpg', '--vocab', 'sky', '--config',
                       fixture_config, '--checkpoint', tmp_path / 'model_base.pth', cwd=tmp_path)
    assert result.returncode == 2
    assert f"error: no checkpoint at '{tmp_path / 'model_base.pth'}': give a file" in log


def test_a_json_object_vocabulary_file_is_refused(parity_fixture, fixture_config, tmp_path):
    (tmp_path / 'vocab.json').write_text('{"sky": 1}')
    result, log = demo(REPO_ROOT / 'demo' / 'astronaut.jpg', '--vocab-file',
                       tmp_path / 'vocab.json', '--config', fixture_config, '--checkpoint',
                       parity_fixture.path / 'state_dict.pt', cwd=tmp_path)
    assert result.returncode == 2 and 'Traceback' not in log
    assert (f"error: vocabulary file '{tmp_path / 'vocab.json'}' holds a JSON object, not a "
            'list; expected one name per line, or a JSON list of names') in log


def demo_module():
    """tools/demo.py imported as a module, to call its functions."""
    spec = importlib.util.spec_from_file_location('catseg_demo_tool', DEMO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_checkpoint_of_another_model_names_the_keys(parity_fixture, tmp_path):
    config = tmp_path / 'other.py'
    cfg = catseg_config_from_fixture(parity_fixture.config)
    cfg['decode_head']['num_layers'] += 1          # one layer more than the checkpoint has
    Config(dict(model=cfg)).dump(str(config))
    result, log = demo(REPO_ROOT / 'demo' / 'astronaut.jpg', '--vocab', 'sky', '--config', config,
                       '--checkpoint', parity_fixture.path / 'state_dict.pt', '--out',
                       tmp_path / 'out', cwd=tmp_path)
    assert result.returncode == 2
    extra_layer = f"decode_head.layers.{cfg['decode_head']['num_layers'] - 1}."
    assert 'does not match the config' in log and extra_layer in log


def test_unwritable_output_directory(parity_fixture, fixture_config, tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    result, log = demo(REPO_ROOT / 'demo' / 'astronaut.jpg', '--vocab', 'sky', '--config',
                       fixture_config, '--checkpoint', parity_fixture.path / 'state_dict.pt',
                       '--out', blocker / 'out', cwd=tmp_path)
    assert result.returncode == 2 and 'is not writable' in log


def test_second_run_on_a_vocabulary_skips_the_text_encoder(parity_fixture, fixture_config,
                                                           tmp_path):
    checkpoint = str(parity_fixture.path / 'state_dict.pt')
    vocabulary = ['sky', ['person', 'human'], 'flag']
    first = CATSegInferencer(str(fixture_config), checkpoint, mode='whole',
                             text_cache_dir=str(tmp_path / 'cache'))
    expected = first([REPO_ROOT / 'demo' / 'astronaut.jpg'], vocabulary)[0]
    # 4 names (one class has two synonyms), each in every template of the fixture.
    templates = len(parity_fixture.config['prompt_templates'])
    assert first.model.text_encoder.num_prompts_encoded == 4 * templates
    second = CATSegInferencer(str(fixture_config), checkpoint, mode='whole',
                              text_cache_dir=str(tmp_path / 'cache'))
    again = second([REPO_ROOT / 'demo' / 'astronaut.jpg'], vocabulary)[0]
    assert second.model.text_encoder.num_prompts_encoded == 0
    np.testing.assert_array_equal(again.label_map, expected.label_map)
    assert again.present_classes()[0]['name'] in ('sky', 'person; human', 'flag')


def test_unusual_images_and_vocabularies(parity_fixture, fixture_config, tmp_path):
    images = tmp_path / 'images'
    images.mkdir()
    rotated = Image.new('RGB', (40, 20), 'blue')
    exif = rotated.getexif()
    exif[0x0112] = 6                                    # orientation: rotate 90 degrees
    rotated.save(images / 'rotated.jpg', exif=exif)
    Image.new('RGBA', (16, 16), (0, 0, 0, 0)).save(images / 'rgba.png')
    Image.new('L', (10, 10), 128).save(images / 'gray.png')
    Image.new('RGB', (1, 1), 'white').save(images / 'one.png')
    names = [f'thing {i}' for i in range(997)] + ['Straße', 'café ☕', 'very ' * 100 + 'long']
    vocab_file = tmp_path / 'vocab.json'
    vocab_file.write_text(json.dumps(names))
    result, log = demo(images, '--vocab-file', vocab_file, '--config', fixture_config,
                       '--checkpoint', parity_fixture.path / 'state_dict.pt', '--out',
                       tmp_path / 'out', '--mode', 'whole', cwd=tmp_path)
    assert result.returncode == 0, log[-3000:]
    labels = np.asarray(Image.open(tmp_path / 'out' / 'rotated_labels.png'))
    assert labels.shape == (40, 20) and labels.dtype == np.uint16   # EXIF applied; 16-bit > 256
    summary = json.loads((tmp_path / 'out' / 'one.json').read_text())
    assert len(summary['vocabulary']) == 1000 and summary['present'][0]['pixels'] == 1


def test_benchmark_vocabulary_from_a_prepared_category_file(parity_fixture, fixture_config,
                                                            tmp_path):
    """--dataset pc459 reads the category file the preparation script wrote under data/."""
    voc = tmp_path / 'data' / 'VOCdevkit' / 'VOC2010'
    voc.mkdir(parents=True)
    categories = [dict(name='accordion', id=1), dict(name='sky', id=259), dict(name='wood', id=300)]
    save_categories(categories, voc / 'pc459_categories.json')
    result, log = demo(REPO_ROOT / 'demo' / 'astronaut.jpg', '--dataset', 'pc459', '--config',
                       fixture_config, '--checkpoint', parity_fixture.path / 'state_dict.pt',
                       '--out', tmp_path / 'out', '--mode', 'whole', cwd=tmp_path)
    assert result.returncode == 0, log[-3000:]
    summary = json.loads((tmp_path / 'out' / 'astronaut.json').read_text())
    assert summary['vocabulary'] == ['accordion', 'sky', 'wood']


def test_checkpoint_from_a_url_is_downloaded_once(parity_fixture, fixture_config, tmp_path):
    url = (parity_fixture.path / 'state_dict.pt').resolve().as_uri()      # file://, offline
    env = dict(TORCH_HOME=str(tmp_path / 'torch_home'))
    args = (REPO_ROOT / 'demo' / 'astronaut.jpg', '--vocab', 'sky, person', '--config',
            fixture_config, '--checkpoint', url, '--out', tmp_path / 'out', '--mode', 'whole')
    result, log = demo(*args, cwd=tmp_path, env=env)
    assert result.returncode == 0, log[-3000:]
    downloaded = tmp_path / 'torch_home' / 'hub' / 'checkpoints' / 'state_dict.pt'
    assert downloaded.read_bytes() == (parity_fixture.path / 'state_dict.pt').read_bytes()
    assert (tmp_path / 'out' / 'astronaut_labels.png').is_file()
    result, log = demo(*args[:-6], '--checkpoint', url + '.missing', *args[-4:], cwd=tmp_path,
                       env=env)
    assert result.returncode == 2
    assert f"error: could not download the checkpoint '{url}.missing'" in log


PEAK_RSS = (sys.executable, '-c', 'import resource, subprocess, sys; '
            'code = subprocess.call(sys.argv[1:]); '
            'print("peak_rss_mb", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024); '
            'sys.exit(code)', sys.executable)


def test_an_8000x6000_photo_in_bounded_memory(parity_fixture, fixture_config, tmp_path):
    """Peak RSS of the whole CLI on a 48-megapixel photo vs a tiny one: the difference is a few
    copies of the photo (uint8 RGB is 144 MB; int64 labels 384 MB), not full-size float maps per
    class or float64 blending (before: +2.8 GB)."""
    rng = np.random.RandomState(0)
    small = Image.fromarray((rng.rand(60, 80, 3) * 255).astype(np.uint8))
    small.save(tmp_path / 'small.jpg')
    small.resize((8000, 6000)).save(tmp_path / 'big.jpg', quality=80)
    peaks = {}
    for name in ('small', 'big'):
        result, log = demo(tmp_path / f'{name}.jpg', '--vocab', 'sky, tree, person, car, road',
                           '--config', fixture_config, '--checkpoint',
                           parity_fixture.path / 'state_dict.pt', '--out', tmp_path / 'out',
                           '--mode', 'whole', cwd=tmp_path, python=PEAK_RSS)
        assert result.returncode == 0, log[-3000:]
        peaks[name] = int(re.search(r'peak_rss_mb (\d+)', log).group(1))
    assert Image.open(tmp_path / 'out' / 'big_labels.png').size == (8000, 6000)
    assert peaks['big'] - peaks['small'] < 1600, peaks


def test_api_takes_directories_and_arrays_and_saves_what_the_cli_saves(parity_fixture,
                                                                       fixture_config, tmp_path):
    folder = tmp_path / 'photos'
    folder.mkdir()
    Image.open(REPO_ROOT / 'demo' / 'astronaut.jpg').resize((96, 64)).save(folder / 'b.png')
    Image.new('RGB', (40, 30), 'green').save(folder / 'a.jpg')
    (folder / 'notes.txt').write_text('not an image, not listed')
    inferencer = CATSegInferencer(str(fixture_config), str(parity_fixture.path / 'state_dict.pt'),
                                  mode='whole', text_cache_dir=None)
    array = np.zeros((20, 30, 3), np.uint8)
    results = inferencer([folder, array], ['sky', 'person'], out_dir=str(tmp_path / 'api'))
    assert [r.label_map.shape for r in results] == [(30, 40), (64, 96), (20, 30)]
    assert all(r.class_scores.shape == (2,) for r in results)
    assert sorted(p.name for p in (tmp_path / 'api').iterdir()) == sorted(
        f'{n}{s}' for n in ('a', 'b', 'array_2') for s in ('.json', '_labels.png', '_overlay.png'))
    result, log = demo(folder, '--vocab', 'sky, person', '--config', fixture_config,
                       '--checkpoint', parity_fixture.path / 'state_dict.pt', '--out',
                       tmp_path / 'cli', '--mode', 'whole', cwd=tmp_path)
    assert result.returncode == 0, log[-3000:]
    for name in ('a', 'b'):
        assert ((tmp_path / 'api' / f'{name}_labels.png').read_bytes()
                == (tmp_path / 'cli' / f'{name}_labels.png').read_bytes())
        assert (json.loads((tmp_path / 'api' / f'{name}.json').read_text())
                == json.loads((tmp_path / 'cli' / f'{name}.json').read_text()))


def test_saved_probabilities_and_features(parity_fixture, fixture_config, tmp_path, capsys):
    """In process: the label map is an argmax of --save-probs' probabilities, with the
    vocabulary inside; --save-features holds the 4 windows and the global view, C x h x w (the
    CLIP grid, 24 x 24 for 384 px and patch 16)."""
    Image.open(REPO_ROOT / 'demo' / 'astronaut.jpg').resize((96, 72)).save(tmp_path / 'a.png')
    status = demo_module().main([str(tmp_path / 'a.png'), '--vocab', 'sky, person; human, flag',
                                 '--config', str(fixture_config), '--checkpoint',
                                 str(parity_fixture.path / 'state_dict.pt'), '--out',
                                 str(tmp_path / 'out'), '--mode', 'slide', '--text-cache', '',
                                 '--save-probs', '--save-features'])
    assert status == 0, capsys.readouterr()
    labels = np.asarray(Image.open(tmp_path / 'out' / 'a_labels.png'))
    stored = np.load(tmp_path / 'out' / 'a_probs.npz')
    probs = stored['probs']
    assert probs.dtype == np.float16 and probs.shape == (3, 72, 96)
    assert list(stored['vocabulary']) == ['sky', 'person; human', 'flag']
    assert_labels_score_best(probs, labels, tolerance=0)   # float16 rounding is monotonic
    features = np.load(tmp_path / 'out' / 'a_features.npz')['features']
    clip = parity_fixture.config['clip']
    grid = [size // clip['vision_patch_size'] for size in parity_fixture.config['clip_resolution']]
    assert features.shape == (5, clip['embed_dim'], *grid) and features.dtype == np.float32
