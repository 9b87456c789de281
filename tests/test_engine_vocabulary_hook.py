import pytest
from mmseg.datasets import BaseSegDataset

from cat_seg.benchmarks import BENCHMARKS, named_vocabulary
from cat_seg.datasets import PascalVOC20Dataset, save_categories
from cat_seg.engine.vocabulary_hook import dataset_vocabulary


def test_vocabulary_prefers_an_explicit_prediction_vocabulary():
    dataset = BaseSegDataset(metainfo=dict(classes=('a', 'b'), vocabulary=('a', 'b', 'c')),
                             lazy_init=True)
    assert dataset_vocabulary(dataset) == ['a', 'b', 'c']
    assert dataset_vocabulary(BaseSegDataset(metainfo=dict(classes=('x',)),
                                             lazy_init=True)) == ['x']


def test_dataset_without_class_names_is_an_error():
    class Nameless:
        metainfo = {}

    with pytest.raises(ValueError, match='Nameless has no metainfo "classes" or "vocabulary"'):
        dataset_vocabulary(Nameless())


def test_a_dataset_class_gives_its_fixed_classes():
    assert dataset_vocabulary(PascalVOC20Dataset)[:2] == ['aeroplane', 'bicycle']


def test_named_vocabularies_come_from_the_benchmark_datasets():
    """One place per fact: PAS-20 without VOC's background (the dataset's METAINFO), PAS-20b's
    59 names, the benchmark list of tools/benchmark.py and tools/demo.py."""
    assert list(BENCHMARKS) == ['ade847', 'pc459', 'ade150', 'pc59', 'voc20', 'voc20b']
    voc20 = named_vocabulary('voc20')
    assert len(voc20) == 20 and 'background' not in voc20
    assert named_vocabulary('voc20b')[:20] == voc20 and len(named_vocabulary('voc20b')) == 59
    assert len(named_vocabulary('ade150')) == 150 and len(named_vocabulary('coco171')) == 171
    with pytest.raises(ValueError, match=r"dataset 'ade21k' is not one of \['ade847', "):
        named_vocabulary('ade21k')


def test_a_category_file_vocabulary_is_read_from_the_prepared_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="category file 'data/VOCdevkit/VOC2010/"
                                                "pc459_categories.json' does not exist"):
        named_vocabulary('pc459')
    (tmp_path / 'data' / 'VOCdevkit' / 'VOC2010').mkdir(parents=True)
    save_categories([dict(name='accordion', id=1), dict(name='sky', id=2)],
                    tmp_path / 'data' / 'VOCdevkit' / 'VOC2010' / 'pc459_categories.json')
    assert named_vocabulary('pc459') == ['accordion', 'sky']
