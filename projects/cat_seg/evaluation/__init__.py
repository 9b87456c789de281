"""Evaluation metrics comparable with published open-vocabulary numbers."""
from .iou_metric import CATSegIoUMetric

__all__ = ['CATSegIoUMetric']
