"""mIoU as published open-vocabulary results define it, next to mmseg's definition."""
import os.path as osp
from typing import Dict, Optional, Sequence

import numpy as np
import torch
from mmseg.evaluation.metrics import IoUMetric
from mmseg.registry import METRICS

from ..datasets.loading import save_label_map


@METRICS.register_module()
class CATSegIoUMetric(IoUMetric):
    """IoU metric reporting the paper-compatible mIoU (``mIoU``) and mmseg's (``mIoU_mmseg``).

    Published open-vocabulary numbers (CAT-Seg and others) come from detectron2's
    ``SemSegEvaluator``, which averages IoU over the classes present in the ground truth
    (detectron2/evaluation/sem_seg_evaluation.py); mmseg's ``IoUMetric`` averages over classes
    whose union of prediction and ground truth is non-empty, so a class predicted but absent
    from every label counts as 0 there and not at all in detectron2. On A-847 and PC-459 the two
    differ a lot.

    Args:
        fold_predictions_from (int, optional): Predicted indices at or above this value become
            this value. PAS-20b predicts over 20 VOC names plus 39 PASCAL-Context names and
            counts every prediction >= 20 as background, class 20. Defaults to None.
        **kwargs: ``IoUMetric`` arguments (``ignore_index``, ``iou_metrics``, ...).
    """

    def __init__(self, fold_predictions_from: Optional[int] = None, **kwargs):
        super().__init__(**kwargs)
        self.fold_predictions_from = fold_predictions_from

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Per-image class areas, after folding predictions when configured.

        Predictions saved with ``output_dir`` are 16-bit PNGs beyond 256 classes: mmseg's
        ``IoUMetric`` casts them to uint8, which corrupts A-847 and PC-459 outputs.
        """
        num_classes = len(self.dataset_meta['classes'])
        for sample in data_samples:
            pred = sample['pred_sem_seg']['data'].squeeze()
            if self.fold_predictions_from is not None:
                pred = pred.clamp(max=self.fold_predictions_from)
            if not self.format_only:
                label = sample['gt_sem_seg']['data'].squeeze().to(pred)
                self.results.append(
                    self.intersect_and_union(pred, label, num_classes, self.ignore_index))
            if self.output_dir is not None:
                name = osp.splitext(osp.basename(sample['img_path']))[0]
                # mmseg's convention: with reduce_zero_label, files hold the dataset's own ids.
                offset = int(sample.get('reduce_zero_label', False))
                save_label_map(pred.cpu().numpy() + offset, num_classes + offset,
                               osp.join(self.output_dir, f'{name}.png'))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """mmseg's metrics, with ``mIoU`` in the detectron2 definition and ``mIoU_mmseg``."""
        metrics = super().compute_metrics(results)
        intersect, union, _, label = (sum(areas) for areas in zip(*results))
        metrics['mIoU_mmseg'] = metrics.pop('mIoU')
        metrics['mIoU'] = round(float(self.paper_miou(intersect, union, label)) * 100, 2)
        return metrics

    @staticmethod
    def paper_miou(area_intersect: torch.Tensor, area_union: torch.Tensor,
                   area_label: torch.Tensor) -> float:
        """Mean IoU over the classes with ground-truth pixels (detectron2's definition)."""
        present = area_label > 0
        if not present.any():
            return float('nan')
        iou = area_intersect[present].double() / area_union[present].double()
        return float(np.mean(iou.cpu().numpy()))
