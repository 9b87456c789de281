"""Your own dataset: images and masks in mmseg's img_dir/ann_dir layout, class names in a text file.

The text file holds one class name per line in label-id order: line 1 names id 0 of the masks,
line 2 id 1, and so on. Names are taken as written (a line ``car, automobile`` is prompted as
``car``, the release's synonym convention, see ``CATSegCLIPTextEncoder``).
"""
import os.path as osp

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from ..vocabulary import load_class_names


@DATASETS.register_module()
class CATSegCustomDataset(BaseSegDataset):
    """A segmentation dataset of your own, its classes read from a text file.

    Layout as in mmseg: ``img_dir/<split>/*.jpg`` and ``ann_dir/<split>/*.png`` under
    ``data_root``, each mask holding the label id of every pixel (255 = ignore).

    Args:
        classes_file (str): One class name per line, line 1 naming id 0 (``load_class_names``);
            relative to ``data_root`` unless absolute.
        **kwargs: ``BaseSegDataset`` arguments, e.g. ``reduce_zero_label=True`` for masks whose
            0 means "unlabelled" (then line 1 names mask value 1). An explicit
            ``metainfo['classes']`` wins over the file.

    Examples:
        >>> dataset = CATSegCustomDataset(
        ...     classes_file='classes.txt', data_root='data/my_dataset',
        ...     data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'))
    """

    def __init__(self, classes_file: str, data_root: str = '', img_suffix: str = '.jpg',
                 seg_map_suffix: str = '.png', **kwargs) -> None:
        if data_root and not osp.isabs(classes_file):
            classes_file = osp.join(data_root, classes_file)
        metainfo = dict(kwargs.pop('metainfo', None) or {})
        metainfo.setdefault('classes', tuple(load_class_names(classes_file)))
        super().__init__(data_root=data_root, img_suffix=img_suffix,
                         seg_map_suffix=seg_map_suffix, metainfo=metainfo, **kwargs)
