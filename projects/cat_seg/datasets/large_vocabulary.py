"""A-847 and PC-459: benchmarks whose vocabularies come from the downloads' own files.

Both are written by the preparation scripts of ``tools/dataset_converters/`` as 16-bit PNG label
maps (ignore 65535, read with ``LoadCATSegAnnotations``) next to a category file (``categories.py``)
that holds the class names in label order. The class names are therefore read when the dataset is
built, not fixed in ``METAINFO``.
"""
import os.path as osp

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from .categories import load_categories

IGNORE_INDEX_16BIT = 65535


class CategoryFileDataset(BaseSegDataset):
    """A segmentation dataset whose classes are those of a category file.

    Args:
        categories_file (str): The category file, relative to ``data_root`` unless absolute.
        **kwargs: ``BaseSegDataset`` arguments. An explicit ``metainfo['classes']`` wins over the
            file (e.g. to evaluate with other names for the same ids).
    """

    def __init__(self, categories_file: str, data_root: str = '', img_suffix: str = '.jpg',
                 seg_map_suffix: str = '.png', ignore_index: int = IGNORE_INDEX_16BIT,
                 **kwargs) -> None:
        if data_root and not osp.isabs(categories_file):
            categories_file = osp.join(data_root, categories_file)
        metainfo = dict(kwargs.pop('metainfo', None) or {})
        metainfo.setdefault('classes', tuple(c['name'] for c in load_categories(categories_file)))
        super().__init__(data_root=data_root, img_suffix=img_suffix,
                         seg_map_suffix=seg_map_suffix, ignore_index=ignore_index,
                         reduce_zero_label=False, metainfo=metainfo, **kwargs)


@DATASETS.register_module()
class ADE20K847Dataset(CategoryFileDataset):
    """A-847: the ADE20K-Full validation images, 847 classes (layout of
    ``tools/dataset_converters/ade20k_847.py``: ``images/validation``, ``annotations/validation``,
    ``ade847_categories.json``)."""

    def __init__(self, categories_file: str = 'ade847_categories.json', **kwargs) -> None:
        super().__init__(categories_file=categories_file, **kwargs)


@DATASETS.register_module()
class PascalContext459Dataset(CategoryFileDataset):
    """PC-459: the PASCAL-Context validation images with all 459 classes (layout of
    ``tools/dataset_converters/pascal_context.py`` inside VOC2010:
    ``SegmentationClassContext459``, ``ImageSets/SegmentationContext459/val.txt``,
    ``pc459_categories.json``)."""

    def __init__(self, categories_file: str = 'pc459_categories.json', **kwargs) -> None:
        super().__init__(categories_file=categories_file, **kwargs)
