"""Test data pairs up and decodes before evaluation (cat_seg.datasets.pairing), on real files."""
import os
import re
from pathlib import Path

import numpy as np
import pytest
from mmseg.registry import DATASETS
from PIL import Image

from cat_seg.datasets.pairing import check_test_data
from catseg_testing import write_synthetic_dataset


def dataset_config(root: Path, **kwargs) -> dict:
    """The tiny config's validation set (img_dir/val/*.jpg, ann_dir/val/*.png) under ``root``."""
    return dict(type='BaseSegDataset', data_root=str(root), img_suffix='.jpg',
                seg_map_suffix='.png', metainfo=dict(classes=('sky', 'grass', 'road')),
                data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'), **kwargs)


@pytest.fixture
def root(tmp_path):
    return write_synthetic_dataset(tmp_path / 'data', num_train=0, num_val=3)


def test_complete_data_passes_unchanged(root):
    cfg = dataset_config(root)
    assert check_test_data(cfg) == cfg


def test_an_annotation_without_its_image(root):
    os.remove(root / 'img_dir' / 'val' / '001.jpg')
    orphan = root / 'ann_dir' / 'val' / '001.png'
    with pytest.raises(ValueError, match=(
            rf'^1 unpaired test files, so the metric would cover 2 of 3 samples: '
            rf'{orphan} \(no image\); add the missing files, or pass --allow-unpaired')):
        check_test_data(dataset_config(root))


def test_an_image_without_its_annotation(root):
    os.remove(root / 'ann_dir' / 'val' / '002.png')
    image, annotation = root / 'img_dir' / 'val' / '002.jpg', root / 'ann_dir' / 'val' / '002.png'
    with pytest.raises(ValueError, match=rf'cover 2 of 3 samples: {image} \(no {annotation}\);'):
        check_test_data(dataset_config(root))


def test_a_split_file_lists_names_without_files(root):
    (root / 'val.txt').write_text('000\n001\nghost\n')
    os.remove(root / 'img_dir' / 'val' / '001.jpg')
    missing = [root / 'img_dir' / 'val' / '001.jpg', root / 'ann_dir' / 'val' / '001.png']
    ghost = [root / 'img_dir' / 'val' / 'ghost.jpg', root / 'ann_dir' / 'val' / 'ghost.png']
    with pytest.raises(ValueError, match=(
            rf'^2 unpaired test files, so the metric would cover 1 of 3 samples: '
            rf'{missing[1]} \(no {missing[0]}\), {ghost[0]} \(missing, as is {ghost[1]}\);')):
        check_test_data(dataset_config(root, ann_file='val.txt'))


def test_the_first_ten_unpaired_files_and_their_count(tmp_path):
    root = write_synthetic_dataset(tmp_path / 'data', num_train=0, num_val=13, size=(24, 24))
    for index in range(12):
        os.remove(root / 'ann_dir' / 'val' / f'{index:03d}.png')
    with pytest.raises(ValueError, match=r'^12 unpaired .* cover 1 of 13 samples: .*009\.png\) '
                                         r'and 2 more; add the missing'):
        check_test_data(dataset_config(root))


def test_allow_unpaired_keeps_the_complete_pairs_only(root):
    os.remove(root / 'img_dir' / 'val' / '001.jpg')
    os.remove(root / 'ann_dir' / 'val' / '002.png')
    cfg = check_test_data(dataset_config(root), allow_unpaired=True)
    dataset = DATASETS.build(dict(cfg, pipeline=[]))
    assert [Path(dataset[i]['img_path']).name for i in range(len(dataset))] == ['000.jpg']


@pytest.mark.parametrize('kind,damage,reason', [
    ('image', b'not a jpeg at all', 'not an image (unknown format or damaged header)'),
    ('image', 'truncated', 'cannot be decoded (image file is truncated'),
    ('annotation', b'\x89PNG\r\n\x1a\n garbage', 'cannot be decoded ('),
    ('annotation', 'truncated', 'cannot be decoded ('),
])
def test_a_file_that_does_not_decode_is_named(root, kind, damage, reason):
    path = root / ('img_dir' if kind == 'image' else 'ann_dir') / 'val' / (
        '001.jpg' if kind == 'image' else '001.png')
    content = path.read_bytes()
    path.write_bytes(content[:len(content) * 2 // 3] if damage == 'truncated' else damage)
    with pytest.raises(ValueError, match=f'^{re.escape(f"{path}: {reason}")}'):
        check_test_data(dataset_config(root))
    with pytest.raises(ValueError, match=f'^{path}: '):    # present, hence not "unpaired"
        check_test_data(dataset_config(root), allow_unpaired=True)


def test_an_annotation_of_another_size(root):
    annotation = root / 'ann_dir' / 'val' / '000.png'
    Image.fromarray(np.zeros((80, 90), np.uint8)).save(annotation)
    with pytest.raises(ValueError, match=(
            rf'^{annotation}: the annotation is 80x90 \(h x w\) but its image '
            rf'{root / "img_dir" / "val" / "000.jpg"} is 80x96')):
        check_test_data(dataset_config(root))


def test_an_exif_rotated_photo_pairs_with_its_upright_annotation(root):
    """mmseg decodes images with cv2, which applies the EXIF orientation: a photo stored 96x80
    with orientation 6 (rotate 90) is read as 80x96, the size of its annotation."""
    image = root / 'img_dir' / 'val' / '000.jpg'
    stored = Image.open(image).transpose(Image.Transpose.ROTATE_90)
    exif = stored.getexif()
    exif[0x0112] = 6
    stored.save(image, exif=exif)
    assert check_test_data(dataset_config(root)) == dataset_config(root)


@pytest.mark.parametrize('missing,message', [
    ('img_dir/val', r"img_path directory '.*img_dir/val' does not exist"),
    ('val.txt', r"split file \(ann_file\) '.*val\.txt' does not exist"),
])
def test_missing_directories_and_split_files(root, missing, message):
    if missing == 'img_dir/val':
        for path in (root / missing).iterdir():
            path.unlink()
        (root / missing).rmdir()
    with pytest.raises(FileNotFoundError, match=message):
        check_test_data(dataset_config(root, ann_file='val.txt' if missing == 'val.txt' else ''))
