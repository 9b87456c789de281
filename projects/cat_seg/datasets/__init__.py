"""Open-vocabulary benchmark datasets (A-150, PC-59 and COCO-Stuff reuse mmseg's classes)."""
from .loading import LoadCATSegAnnotations
from .pascal_voc20 import PascalVOC20bDataset, PascalVOC20Dataset

__all__ = ['LoadCATSegAnnotations', 'PascalVOC20Dataset', 'PascalVOC20bDataset']
