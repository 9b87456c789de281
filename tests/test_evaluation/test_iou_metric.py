import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from cat_seg.evaluation import CATSegIoUMetric


def sample(pred, label):
    data_sample = SegDataSample()
    data_sample.pred_sem_seg = PixelData(data=torch.tensor(pred)[None])
    data_sample.gt_sem_seg = PixelData(data=torch.tensor(label)[None])
    return data_sample.to_dict()


def evaluate(metric, pairs, classes):
    metric.dataset_meta = dict(classes=classes)
    metric.process({}, [sample(p, label) for p, label in pairs])
    return metric.compute_metrics(metric.results)


def test_both_miou_definitions_on_a_hand_computed_case():
    # Class 2 is predicted once but never in the ground truth.
    pred = [[0, 0, 1, 2]]
    label = [[0, 1, 1, 255]]
    metrics = evaluate(CATSegIoUMetric(), [(pred, label)], ('a', 'b', 'c'))
    # IoU a = 1/2, b = 1/2; c = 0/1 but the pixel is ignored in the label -> union 0, nan.
    assert metrics['mIoU'] == 50.0
    assert metrics['mIoU_mmseg'] == 50.0
    pred, label = [[0, 0, 1, 2]], [[0, 1, 1, 1]]
    metrics = evaluate(CATSegIoUMetric(), [(pred, label)], ('a', 'b', 'c'))
    # a = 1/2, b = 1/3 (gt has 3 b pixels, one predicted), c = 0/1 (predicted, absent in gt).
    assert metrics['mIoU'] == round((1 / 2 + 1 / 3) / 2 * 100, 2)          # 41.67
    assert metrics['mIoU_mmseg'] == round((1 / 2 + 1 / 3 + 0) / 3 * 100, 2)  # 27.78


def test_background_folding_of_pas20b():
    # 3 foreground classes + background (3); predictions over 5 names: 3 and 4 are background.
    pred = [[0, 4, 3, 1]]
    label = [[0, 3, 3, 1]]
    metrics = evaluate(CATSegIoUMetric(fold_predictions_from=3), [(pred, label)],
                       ('a', 'b', 'c', 'background'))
    assert metrics['mIoU'] == 100.0
