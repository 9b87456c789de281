"""The API's batch call: an input that fails is reported and skipped, the others are segmented."""
import logging

import numpy as np
import torch
from PIL import Image

from cat_seg.apis import CATSegInferencer, ImageFailure
from cat_seg.apis import inferencer as inferencer_module
from catseg_testing import TINY_CONFIG
from image_corpus import BROKEN, write_image_corpus


def test_failures_are_reported_and_skipped(tiny_catseg, tmp_path, monkeypatch):
    """Random tiny weights: only which inputs give a result, and the reports, are checked."""
    images = tmp_path / 'images'
    write_image_corpus(images)
    torch.save(tiny_catseg.state_dict(), tmp_path / 'tiny.pth')
    inferencer = CATSegInferencer(str(TINY_CONFIG), str(tmp_path / 'tiny.pth'), mode='whole',
                                  text_cache_dir=None)
    inputs = [images / 'bomb.png', np.zeros((6, 4, 3), np.uint8), images / 'one.png',
              np.zeros((6, 4), np.uint8), tmp_path / 'missing.jpg']
    logged = []
    monkeypatch.setattr(inferencer_module, 'print_log',
                        lambda message, logger, level: logged.append((message, level)))
    results = inferencer(inputs, ['sky', 'person'], out_dir=str(tmp_path / 'out'))
    shapes = [r.label_map.shape if r else None for r in results]
    assert shapes == [None, (6, 4), (1, 1), None, None]
    assert [r.source for r in results if r] == ['array_1', str(images / 'one.png')]
    assert [level for _, level in logged] == [logging.WARNING] * 3
    log = '\n'.join(message for message, _ in logged)
    assert f"failed: {images / 'bomb.png'}: 1600000000 pixels, over the limit" in log
    assert ('failed: array_3: expected an RGB uint8 array (H, W, 3), got uint8 of shape (6, 4)'
            in log)
    assert f"failed: {tmp_path / 'missing.jpg'}: no such file" in log
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == [
        'array_1.json', 'array_1_labels.png', 'array_1_overlay.png', 'one.json',
        'one_labels.png', 'one_overlay.png']

    # segment_each yields the failures themselves, in input order.
    outcomes = list(inferencer.segment_each(images, ['sky']))
    failures = {f.source: f.reason for f in outcomes if isinstance(f, ImageFailure)}
    assert sorted(failures) == sorted(str(images / n) for n in BROKEN if n != 'missing.jpg')
    assert failures[str(images / 'folder.jpg')] == 'a directory, not an image file'
    assert str(ImageFailure('a.png', 'why')) == 'failed: a.png: why'


def test_an_image_whose_outputs_cannot_be_written_is_a_failure(tiny_catseg, tmp_path):
    torch.save(tiny_catseg.state_dict(), tmp_path / 'tiny.pth')
    Image.new('RGB', (8, 8)).save(tmp_path / 'a.png')
    (tmp_path / 'out').mkdir()
    (tmp_path / 'out' / 'a_labels.png').mkdir()      # where the label map should go
    inferencer = CATSegInferencer(str(TINY_CONFIG), str(tmp_path / 'tiny.pth'), mode='whole',
                                  text_cache_dir=None)
    outcome, = inferencer.segment_each([tmp_path / 'a.png'], ['sky'], str(tmp_path / 'out'))
    assert isinstance(outcome, ImageFailure) and outcome.reason.startswith('IsADirectoryError')
