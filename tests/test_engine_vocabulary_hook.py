import pytest
from mmseg.datasets import BaseSegDataset

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
