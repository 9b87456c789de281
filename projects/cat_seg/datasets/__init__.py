"""Open-vocabulary benchmark datasets (A-150, PC-59 and COCO-Stuff reuse mmseg's classes), and
your own (``CATSegCustomDataset``)."""
from .categories import (Category, load_categories, names_checksum, remap_to_label_order,
                         save_categories)
from .custom import CATSegCustomDataset
from .large_vocabulary import ADE20K847Dataset, CategoryFileDataset, PascalContext459Dataset
from .loading import LoadCATSegAnnotations, save_label_map
from .pairing import check_test_data
from .pascal_voc20 import PascalVOC20bDataset, PascalVOC20Dataset

__all__ = [
    'ADE20K847Dataset', 'CATSegCustomDataset', 'Category', 'CategoryFileDataset',
    'LoadCATSegAnnotations', 'PascalContext459Dataset', 'PascalVOC20Dataset',
    'PascalVOC20bDataset', 'check_test_data', 'load_categories', 'names_checksum',
    'remap_to_label_order', 'save_categories', 'save_label_map'
]
