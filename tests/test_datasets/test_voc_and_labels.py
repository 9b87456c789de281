"""PAS-20 / PAS-20b on VOC's real on-disk layout (palette PNGs), and 16-bit label loading."""
import numpy as np
from mmseg.registry import DATASETS
from PIL import Image

from cat_seg.datasets import LoadCATSegAnnotations
from cat_seg.datasets.pascal_voc20 import CONTEXT_CLASSES_NOT_IN_VOC, VOC_CLASSES

VOC_LABEL = np.array([[0, 1, 15], [20, 255, 0]], dtype=np.uint8)   # bg, aeroplane, person, tv


def write_voc(root):
    (root / 'JPEGImages').mkdir(parents=True)
    (root / 'SegmentationClass').mkdir()
    (root / 'ImageSets' / 'Segmentation').mkdir(parents=True)
    Image.new('RGB', (3, 2), 'gray').save(root / 'JPEGImages' / '2007_000001.jpg')
    label = Image.fromarray(VOC_LABEL, mode='P')
    label.putpalette(list(np.random.RandomState(0).randint(0, 255, 768)))
    label.save(root / 'SegmentationClass' / '2007_000001.png')
    (root / 'ImageSets' / 'Segmentation' / 'val.txt').write_text('2007_000001\n')
    return root


def first_label(cfg):
    dataset = DATASETS.build(dict(**cfg, data_prefix=dict(
        img_path='JPEGImages', seg_map_path='SegmentationClass'),
        ann_file='ImageSets/Segmentation/val.txt',
        pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadCATSegAnnotations')]))
    return dataset, dataset[0]['gt_seg_map']


def test_pas20_ignores_background(tmp_path):
    dataset, label = first_label(dict(type='PascalVOC20Dataset', data_root=str(write_voc(tmp_path))))
    assert len(dataset.metainfo['classes']) == 20
    np.testing.assert_array_equal(label, [[255, 0, 14], [19, 255, 255]])


def test_pas20b_makes_background_class_20_and_predicts_over_59_names(tmp_path):
    dataset, label = first_label(dict(type='PascalVOC20bDataset',
                                      data_root=str(write_voc(tmp_path))))
    np.testing.assert_array_equal(label, [[20, 0, 14], [19, 255, 20]])
    vocabulary = dataset.metainfo['vocabulary']
    assert len(vocabulary) == 59 and vocabulary[:20] == VOC_CLASSES
    assert 'table' not in CONTEXT_CLASSES_NOT_IN_VOC and 'sky' in CONTEXT_CLASSES_NOT_IN_VOC


def test_16_bit_labels_keep_their_ids(tmp_path):
    path = tmp_path / 'label.png'
    Image.fromarray(np.array([[0, 300], [846, 65535]], dtype=np.uint16)).save(path)
    results = dict(seg_map_path=str(path), seg_fields=[], reduce_zero_label=False)
    loaded = LoadCATSegAnnotations(reduce_zero_label=False)(dict(results))['gt_seg_map']
    np.testing.assert_array_equal(loaded, [[0, 300], [846, 65535]])
    results['reduce_zero_label'] = True
    reduced = LoadCATSegAnnotations(reduce_zero_label=True)(dict(results))['gt_seg_map']
    np.testing.assert_array_equal(reduced, [[65535, 299], [845, 65535]])
