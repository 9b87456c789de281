"""load_rgb on exotic but valid images (exact pixels) and on every kind of broken file (its
reason), expand_inputs' listing, and the pixel limit."""
import re

import numpy as np
import pytest
from PIL import Image

from cat_seg.apis import ImageReadError, expand_inputs, load_rgb
from cat_seg.apis.image_io import check_rgb_array
from image_corpus import BROKEN, EXOTIC


@pytest.mark.parametrize('name', sorted(EXOTIC))
def test_exotic_images_become_rgb_uint8(tmp_path, name):
    writer, shape, first_pixel = EXOTIC[name]
    writer(tmp_path / name)
    rgb = load_rgb(tmp_path / name)
    assert rgb.dtype == np.uint8 and rgb.shape == (*shape, 3)
    np.testing.assert_allclose(rgb[0, 0], first_pixel, atol=2)   # JPEG may be off by one


@pytest.mark.parametrize('name', sorted(BROKEN))
def test_broken_files_are_refused_with_their_reason(tmp_path, name):
    writer, reason = BROKEN[name]
    writer(tmp_path / name)
    with pytest.raises(ImageReadError, match=rf"^'{tmp_path / name}': ") as error:
        load_rgb(tmp_path / name)
    assert error.value.source == str(tmp_path / name)
    assert re.search(reason, error.value.reason), error.value.reason


@pytest.mark.parametrize('limit', [6000, 4000])   # PIL warns above its limit, fails above twice
def test_the_pixel_limit_is_exact_and_says_how_to_raise_it(tmp_path, monkeypatch, limit):
    Image.new('RGB', (100, 100)).save(tmp_path / 'big.png')
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', limit)
    with pytest.raises(ImageReadError, match=rf'10000 pixels, over the limit of {limit} pixels'
                                             r'.*--max-pixels 10000 \(in Python: PIL.Image'):
        load_rgb(tmp_path / 'big.png')
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 10000)
    assert load_rgb(tmp_path / 'big.png').shape == (100, 100, 3)


def test_arrays_must_be_rgb_uint8():
    assert check_rgb_array(np.zeros((2, 3, 3), np.uint8), 'array_0').shape == (2, 3, 3)
    for bad in (np.zeros((2, 3), np.uint8), np.zeros((2, 3, 3), np.float32),
                np.zeros((0, 3, 3), np.uint8)):
        with pytest.raises(ImageReadError, match=r"^'array_1': expected an RGB uint8 array"):
            check_rgb_array(bad, 'array_1')


def test_directories_list_images_and_entries_named_like_images(tmp_path):
    for name in ('b.gif', 'a.JPG', 'notes.txt'):
        (tmp_path / name).write_bytes(b'')
    (tmp_path / 'folder.jpg').mkdir()
    (tmp_path / 'sub').mkdir()
    listed = expand_inputs([tmp_path, tmp_path / 'folder.jpg', tmp_path / 'gone.png'])
    assert [p.name for p in listed] == ['a.JPG', 'b.gif', 'folder.jpg', 'folder.jpg', 'gone.png']
