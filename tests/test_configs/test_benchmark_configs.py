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
    args = test_tool.parse_args([str(config), str(checkpoint), '--keep-test-cfg', '--benchmark',
                                 str(REPO_ROOT / 'configs' / 'benchmarks' / 'ade150.py')])
    cfg = test_tool.build_config(args)
    assert cfg.test_dataloader.dataset.type == 'ADE20KDataset'
    assert cfg.model.test_cfg == dict(mode='whole')


RELEASE_CONFIGS = {'vitb': 'vit-b16', 'vitl': 'vit-l14-336', 'vith': 'vit-h14', 'vitg': 'vit-g14'}


@pytest.mark.parametrize('model', list(RELEASE_CONFIGS))
@pytest.mark.parametrize('benchmark,dataset', [
    ('ade847', 'ADE20K847Dataset'), ('pc459', 'PascalContext459Dataset'),
    ('ade150', 'ADE20KDataset'), ('pc59', 'PascalContextDataset59'),
    ('voc20', 'PascalVOC20Dataset'), ('voc20b', 'PascalVOC20bDataset')])
def test_every_release_model_has_a_stock_benchmark_config(model, benchmark, dataset):
    """configs/benchmarks/catseg_<model>_<benchmark>.py loads with mmengine alone and carries
    the one sliding-window protocol, the benchmark's data and CATSegIoUMetric."""
    from mmengine.config import Config
    from cat_seg.configs import sliding_test_cfg
    cfg = Config.fromfile(str(REPO_ROOT / 'configs' / 'benchmarks' /
                              f'catseg_{model}_{benchmark}.py'))
    assert cfg.model.backbone.arch == RELEASE_CONFIGS[model]
    assert cfg.model.test_cfg == sliding_test_cfg() == dict(
        mode='slide', crop_size=(384, 384), stride=(256, 256), resize_to=(640, 640),
        with_global_view=True, return_probs=False)
    assert cfg.test_dataloader.dataset.type == dataset
    assert cfg.test_evaluator.type == 'CATSegIoUMetric'
    assert cfg.test_cfg.type == 'TestLoop' and 'train_dataloader' not in cfg


def test_no_private_top_level_keys_in_configs():
    for path in (REPO_ROOT / 'configs').rglob('*.py'):
        text = path.read_text()
        assert 'model_test_cfg' not in text, path
