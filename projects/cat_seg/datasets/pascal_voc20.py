"""PASCAL VOC 2012 for open-vocabulary evaluation: PAS-20 and PAS-20b (CAT-Seg paper §4.1)."""
from mmseg.datasets import BaseSegDataset, PascalContextDataset59, PascalVOCDataset
from mmseg.registry import DATASETS

VOC_CLASSES = PascalVOCDataset.METAINFO['classes'][1:]          # without 'background'
# PASCAL-Context spells one VOC class differently.
_CONTEXT_NAMES_OF_VOC = {'diningtable': 'table'}
CONTEXT_CLASSES_NOT_IN_VOC = tuple(
    name for name in PascalContextDataset59.METAINFO['classes']
    if name not in {_CONTEXT_NAMES_OF_VOC.get(c, c) for c in VOC_CLASSES})


@DATASETS.register_module()
class PascalVOC20Dataset(BaseSegDataset):
    """PAS-20: the 20 VOC classes; VOC's background (label 0) and boundaries (255) are ignored.

    Layout of mmseg's VOC (``JPEGImages``, ``SegmentationClass`` palette PNGs whose indices are
    the labels, ``ImageSets/Segmentation/val.txt``).
    """

    METAINFO = dict(classes=VOC_CLASSES, palette=PascalVOCDataset.METAINFO['palette'][1:])

    def __init__(self, ann_file: str = '', img_suffix: str = '.jpg',
                 seg_map_suffix: str = '.png', **kwargs) -> None:
        super().__init__(ann_file=ann_file, img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
                         reduce_zero_label=True, **kwargs)


@DATASETS.register_module()
class PascalVOC20bDataset(BaseSegDataset):
    """PAS-20b: the 20 VOC classes plus background, as class 20.

    The model predicts over ``metainfo['vocabulary']``, the 20 VOC names followed by the 39
    PASCAL-Context-59 names that are not VOC classes (taken from the two datasets' own class
    lists); ``CATSegIoUMetric(fold_predictions_from=20)`` counts every prediction >= 20 as
    background.
    """

    METAINFO = dict(classes=VOC_CLASSES + ('background',),
                    vocabulary=VOC_CLASSES + CONTEXT_CLASSES_NOT_IN_VOC,
                    palette=PascalVOCDataset.METAINFO['palette'][1:]
                    + PascalVOCDataset.METAINFO['palette'][:1])

    def __init__(self, ann_file: str = '', img_suffix: str = '.jpg',
                 seg_map_suffix: str = '.png', **kwargs) -> None:
        super().__init__(ann_file=ann_file, img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
                         reduce_zero_label=False, **kwargs)

    def load_data_list(self) -> list:
        """Samples whose labels are remapped: background 0 -> 20, class k -> k - 1 (boundaries,
        255, stay ignored)."""
        label_map = {0: 20, **{k: k - 1 for k in range(1, 21)}}
        data_list = super().load_data_list()
        for info in data_list:
            info['label_map'] = label_map
        return data_list
