"""Fine-tuning on your own classes: configs/custom/catseg_vitb_finetune.py, CATSegCustomDataset
(class names from a text file) and official checkpoints loaded by the runner (converted, URLs
under weights_only=True)."""
import functools
import http.server
import json
import os
import sys
import threading

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import CheckpointLoader, Runner

from cat_seg.weights.convert_release import convert_official_state_dict
from cat_seg.datasets import CATSegCustomDataset
from cat_seg.weights import CATSegOfficialCheckpointHook
from cat_seg.cli import configure_distributed_backend
from catseg_testing import (REPO_ROOT, TINY_CONFIG, catseg_config_from_fixture, run_tool,
                            tiny_model_config, write_synthetic_dataset)

FINETUNE_CONFIG = REPO_ROOT / 'configs' / 'custom' / 'catseg_vitb_finetune.py'
ITERS = 150


def custom_dataset(root, names=('sky', 'grass', 'road')):
    """The synthetic three-class images in img_dir/ann_dir, their names in classes.txt."""
    data = write_synthetic_dataset(root, num_train=16, num_val=4, seed=1)
    (data / 'classes.txt').write_text(''.join(f'{name}\n' for name in names))
    return data


def tiny_finetune_config(data_root, work_dir) -> Config:
    """The template with the tiny model, its 64-px pipelines and a schedule it learns in: the
    dataset type, class-names file, data layout, hooks, metric, parameter groups and checkpoint
    policy stay the template's. No release weights exist for the tiny model (load_from=None)."""
    cfg = Config.fromfile(str(FINETUNE_CONFIG))
    tiny = Config.fromfile(str(TINY_CONFIG))
    cfg.model = tiny.model
    for split in ('train', 'val', 'test'):
        loader, tiny_loader = cfg[f'{split}_dataloader'], tiny[f'{split}_dataloader']
        loader.update(batch_size=tiny_loader.batch_size, num_workers=0, persistent_workers=False)
        loader.dataset.update(data_root=str(data_root), pipeline=tiny_loader.dataset.pipeline)
    cfg.update(work_dir=str(work_dir), load_from=None, randomness=dict(seed=0))
    cfg.optim_wrapper.optimizer.lr = 2e-3   # the tiny model's random CLIP learns at a higher lr
    cfg.optim_wrapper.clip_grad = None
    cfg.train_cfg.update(max_iters=ITERS, val_interval=ITERS)
    cfg.param_scheduler = [dict(type='CosineAnnealingLR', T_max=ITERS, eta_min=0.0,
                                by_epoch=False)]
    cfg.default_hooks.checkpoint.interval = ITERS
    cfg.default_hooks.logger.interval = 50
    configure_distributed_backend(cfg)
    return cfg


@pytest.mark.slow
def test_finetuning_raises_held_out_miou_and_names_come_from_the_file(tmp_path):
    data = custom_dataset(tmp_path / 'data')
    work_dir = tmp_path / 'work'
    runner = Runner.from_cfg(tiny_finetune_config(data, work_dir))
    assert runner.test_dataloader.dataset.metainfo['classes'] == ('sky', 'grass', 'road')
    before = runner.test()['mIoU']
    runner.train()
    after = runner.test()['mIoU']
    # Afterwards, tools/test.py with another vocabulary for the same label ids: the names swapped
    # round must move the predictions with them, so the model reads them from the file.
    (data / 'swapped.txt').write_text('grass\nroad\nsky\n')
    result, log = run_tool(
        [sys.executable, str(REPO_ROOT / 'tools' / 'test.py'),
         str(work_dir / FINETUNE_CONFIG.name), str(work_dir / f'iter_{ITERS}.pth'),
         '--work-dir', str(tmp_path / 'test'), '--metrics-json', str(tmp_path / 'swapped.json'),
         '--cfg-options', f'test_dataloader.dataset.classes_file={data / "swapped.txt"}'],
        cwd=tmp_path)
    assert result.returncode == 0, log[-3000:]
    swapped = json.loads((tmp_path / 'swapped.json').read_text())['mIoU']
    print(f'\nheld-out mIoU before fine-tuning {before:.2f}, after {ITERS} iterations '
          f'{after:.2f}; with the class names swapped round {swapped:.2f}')
    assert after > before + 30
    assert swapped < after - 30


def test_class_names_file_is_read_relative_to_data_root(tmp_path):
    data = custom_dataset(tmp_path, names=('road surface', 'car, automobile', 'sky'))
    (data / 'classes.txt').write_text('road surface\n car, automobile \nsky\n\n\n')
    dataset = CATSegCustomDataset(classes_file='classes.txt', data_root=str(data),
                                  data_prefix=dict(img_path='img_dir/val',
                                                   seg_map_path='ann_dir/val'))
    assert dataset.metainfo['classes'] == ('road surface', 'car, automobile', 'sky')
    assert len(dataset) == 4
    renamed = CATSegCustomDataset(classes_file='classes.txt', data_root=str(data),
                                  metainfo=dict(classes=('a', 'b', 'c')),
                                  data_prefix=dict(img_path='img_dir/val',
                                                   seg_map_path='ann_dir/val'))
    assert renamed.metainfo['classes'] == ('a', 'b', 'c')


def loading_runner(tmp_path, model_cfg) -> Runner:
    return Runner(model=model_cfg, work_dir=str(tmp_path / 'work'), default_scope='mmseg',
                  custom_hooks=[dict(type='CATSegOfficialCheckpointHook')])


@pytest.fixture
def http_root(tmp_path, monkeypatch):
    """A directory served on 127.0.0.1, and an empty torch hub cache (TORCH_HOME)."""
    served = tmp_path / 'served'
    served.mkdir()
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ('127.0.0.1', 0), functools.partial(QuietHandler, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield served, f'http://127.0.0.1:{server.server_port}'
    server.shutdown()
    server.server_close()


def test_runner_loads_an_official_checkpoint_from_a_url_converted(parity_fixture, tmp_path,
                                                                  http_root):
    served, url = http_root
    (served / 'model_base.pth').write_bytes((parity_fixture.path / 'state_dict.pt').read_bytes())
    runner = loading_runner(tmp_path, catseg_config_from_fixture(parity_fixture.config))
    runner.load_checkpoint(f'{url}/model_base.pth')
    expected = convert_official_state_dict(parity_fixture.state_dict)
    loaded = runner.model.state_dict()
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(loaded[key], expected[key]) for key in expected)
    assert (tmp_path / 'torch_home' / 'hub' / 'checkpoints' / 'model_base.pth').is_file()


def test_official_checkpoint_of_another_architecture_is_refused(parity_fixture, tmp_path):
    runner = loading_runner(tmp_path, tiny_model_config())
    with pytest.raises(ValueError, match=r'official CAT-Seg checkpoint does not fit the model '
                                         r'of this config: \d+ missing keys'):
        runner.load_checkpoint(str(parity_fixture.path / 'state_dict.pt'))


def test_our_checkpoints_pass_the_hook_unchanged():
    checkpoint = dict(state_dict={'decode_head.x': torch.zeros(1)}, meta=dict(iter=4))
    CATSegOfficialCheckpointHook().after_load_checkpoint(runner=None, checkpoint=checkpoint)
    assert checkpoint.keys() == {'state_dict', 'meta'} and checkpoint['meta'] == dict(iter=4)


class RunsCode:
    def __reduce__(self):
        return os.system, ('touch pwned',)


def test_checkpoint_url_that_would_run_code_is_refused(tmp_path, http_root, monkeypatch):
    served, url = http_root
    torch.save({'model': RunsCode()}, served / 'model_base.pth')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"checkpoint 'http://127.0.0.1:\d+/model_base.pth' "
                                         r'\(downloaded to .*\) is not a plain weights file'):
        CheckpointLoader.load_checkpoint(f'{url}/model_base.pth')
    assert not (tmp_path / 'pwned').exists()
