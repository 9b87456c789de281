"""Benchmark configs compose with any model config through tools/test.py --benchmark."""
import importlib.util

import pytest

from catseg_testing import REPO_ROOT

spec = importlib.util.spec_from_file_location('test_tool', REPO_ROOT / 'tools' / 'test.py')
test_tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(test_tool)


@pytest.mark.parametrize('benchmark,dataset,fold', [
    ('ade847.py', 'ADE20K847Dataset', None),
    ('pc459.py', 'PascalContext459Dataset', None),
    ('ade150.py', 'ADE20KDataset', None),
    ('pc59.py', 'PascalContextDataset59', None),
    ('voc20.py', 'PascalVOC20Dataset', None),
    ('voc20b.py', 'PascalVOC20bDataset', 20),
])
def test_benchmark_replaces_test_data_metric_and_mode(benchmark, dataset, fold, tmp_path):
    checkpoint = tmp_path / 'ckpt.pth'
    checkpoint.write_bytes(b'')
    args = test_tool.parse_args([str(REPO_ROOT / 'configs' / 'catseg_vitl.py'), str(checkpoint),
                                 '--benchmark', str(REPO_ROOT / 'configs' / 'benchmarks' / benchmark)])
    cfg = test_tool.build_config(args)
    assert cfg.test_dataloader.dataset.type == dataset
    assert cfg.test_evaluator.type == 'CATSegIoUMetric'
    assert cfg.test_evaluator.get('fold_predictions_from') == fold
    assert cfg.model.test_cfg.mode == 'slide' and cfg.model.test_cfg.resize_to == (640, 640)
    assert cfg.model.backbone.arch == 'vit-l14-336'         # the model config is untouched


def test_missing_benchmark_file_is_named(tmp_path):
    checkpoint = tmp_path / 'ckpt.pth'
    checkpoint.write_bytes(b'')
    args = test_tool.parse_args([str(REPO_ROOT / 'configs' / 'catseg_vitb.py'), str(checkpoint),
                                 '--benchmark', 'nope.py'])
    with pytest.raises(FileNotFoundError, match="benchmark config 'nope.py' does not exist"):
        test_tool.build_config(args)


def test_an_inference_ablation_keeps_its_mode_under_a_benchmark(tmp_path):
    checkpoint = tmp_path / 'ckpt.pth'
    checkpoint.write_bytes(b'')
    config = REPO_ROOT / 'configs' / 'paper' / 'ablations' / 't9_training_resolution_inference.py'
    args = test_tool.parse_args([str(config), str(checkpoint), '--benchmark',
                                 str(REPO_ROOT / 'configs' / 'benchmarks' / 'ade150.py')])
    cfg = test_tool.build_config(args)
    assert cfg.test_dataloader.dataset.type == 'ADE20KDataset'
    assert cfg.model.test_cfg == dict(mode='whole')
