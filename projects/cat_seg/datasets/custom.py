"""Your own dataset: images and masks in mmseg's img_dir/ann_dir layout, class names in a text file.

The text file holds one class name per line in label-id order: line 1 names id 0 of the masks,
line 2 id 1, and so on. Names are taken as written (a line ``car, automobile`` is prompted as
``car``, the release's synonym convention, see ``CATSegCLIPTextEncoder``).
"""
import os.path as osp
from pathlib import Path
from typing import List, Union

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS


def load_class_names(path: Union[str, Path]) -> List[str]:
    """Class names from a text file, one per line in label-id order (blank lines at the end are
    ignored; anywhere else they would shift the ids, so they are an error)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'class names file {str(path)!r} does not exist; write one class '
                                'name per line, line 1 naming label id 0')
    names = [line.strip() for line in path.read_text(encoding='utf-8').splitlines()]
    while names and not names[-1]:
        names.pop()
    if not names:
        raise ValueError(f'class names file {str(path)!r} is empty; write one class name per '
                         'line, line 1 naming label id 0')
    if '' in names:
        raise ValueError(f'class names file {str(path)!r}: line {names.index("") + 1} is blank; '
                         'line k names label id k - 1, so every line up to the last needs a name')
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f'class names file {str(path)!r} repeats {repeated[:5]}: two label ids '
                         'with one name cannot be told apart by the model')
    return names


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
