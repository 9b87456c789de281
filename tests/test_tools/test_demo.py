"""tools/demo.py end to end on the parity fixture's official-format checkpoint (converted on the
fly), and every kind of bad input."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

from cat_seg.apis import CATSegInferencer
from cat_seg.datasets import save_categories
from catseg_testing import REPO_ROOT, catseg_config_from_fixture

DEMO = REPO_ROOT / 'tools' / 'demo.py'
VOCAB = 'person, spacesuit, flag'


@pytest.fixture
def fixture_config(parity_fixture, tmp_path):
    path = tmp_path / 'fixture_model.py'
    Config(dict(model=catseg_config_from_fixture(parity_fixture.config),
                custom_imports=dict(imports=['cat_seg']))).dump(str(path))
    return path


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


def test_bad_images_are_skipped_and_reported(parity_fixture, fixture_config, tmp_path):
    images = tmp_path / 'images'
    images.mkdir()
    (images / 'notes.jpg').write_text('not an image')
    Image.new('RGB', (40, 30), 'red').save(images / 'good.png')
    (images / 'truncated.jpg').write_bytes((REPO_ROOT / 'demo' / 'astronaut.jpg').read_bytes()[:3000])
    Image.new('LA', (10, 10)).save(images / 'gray_alpha.png')
    Image.fromarray(np.full((1, 1), 60000, np.uint16)).save(images / 'tiny16.png')
    result, log = demo(images, tmp_path / 'missing.jpg', '--vocab', 'sky, sky, tree',
                       '--config', fixture_config, '--checkpoint',
                       parity_fixture.path / 'state_dict.pt', '--out', tmp_path / 'out',
                       '--mode', 'whole', cwd=tmp_path)
    assert result.returncode == 1
    assert '3 of 6 images segmented' in log
    assert 'duplicate class names removed' in log
    assert "failed: " in log and 'notes.jpg' in log and 'truncated.jpg' in log
    assert 'missing.jpg' in log
    assert (tmp_path / 'out' / 'tiny16_labels.png').is_file()


@pytest.mark.parametrize('extra,message', [
    (['--vocab', ' , '], 'the vocabulary is empty'),
    (['--vocab', 'sky', '--opacity', '2'], 'must be in \\[0, 1\\]'),
    (['--dataset', 'ade847'], 'reads its vocabulary from data/ade/ADE20K_847/'
     'ade847_categories.json, which does not exist: run tools/dataset_converters/ade20k_847.py'),
    (['--dataset', 'ade21k'], "invalid choice: 'ade21k'"),
])
def test_unusable_arguments_exit_2(parity_fixture, fixture_config, tmp_path, extra, message):
    result, log = demo(REPO_ROOT / 'demo' / 'astronaut.jpg', *extra, '--config', fixture_config,
                       '--checkpoint', parity_fixture.path / 'state_dict.pt', '--out',
                       tmp_path / 'out', cwd=tmp_path)
    assert result.returncode == 2 and 'error:' in log
    assert __import__('re').search(message, log)


def test_missing_checkpoint_says_where_to_get_weights(tmp_path):
    result, log = demo(REPO_ROOT / 'demo' / 'astronaut.jpg', '--vocab', 'sky', '--checkpoint',
                       '', cwd=tmp_path)
    assert result.returncode == 2
    assert 'download an official CAT-Seg checkpoint' in log and 'make demo CHECKPOINT=' in log


def test_checkpoint_of_another_model_names_the_keys(parity_fixture, tmp_path):
    config = tmp_path / 'other.py'
    cfg = catseg_config_from_fixture(parity_fixture.config)
    cfg['decode_head']['num_layers'] = 3
    Config(dict(model=cfg)).dump(str(config))
    result, log = demo(REPO_ROOT / 'demo' / 'astronaut.jpg', '--vocab', 'sky', '--config', config,
                       '--checkpoint', parity_fixture.path / 'state_dict.pt', '--out',
                       tmp_path / 'out', cwd=tmp_path)
    assert result.returncode == 2
    assert 'does not match the config' in log and 'decode_head.layers.2.' in log


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
    assert first.model.text_encoder.num_prompts_encoded == 4
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
        peaks[name] = int(__import__('re').search(r'peak_rss_mb (\d+)', log).group(1))
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
