# PAS-20b: VOC 2012 validation, 20 classes + background (class 20); the model predicts over the
# dataset's 59-name vocabulary and every prediction >= 20 counts as background.
_base_ = ['./voc20.py']
test_dataloader = dict(dataset=dict(type='PascalVOC20bDataset'))
test_evaluator = dict(fold_predictions_from=20)
