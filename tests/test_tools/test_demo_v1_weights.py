"""The paper (arXiv v1) configs name the v1 checkpoints, and the demo runs a v1-layout checkpoint
given by URL (served on 127.0.0.1 from the v1 parity fixture), converting it on the fly."""
import functools
import http.server
import json
import shutil
import sys
import threading

import pytest
from mmengine.config import Config

from cat_seg.weights.download import WEIGHTS_URL_ENV, released_weights_url
from catseg_testing import (REPO_ROOT, run_tool, v1_catseg_config_from_fixture,
                            v1_parity_fixture_dirs)

pytestmark = pytest.mark.slow  # tools/demo.py and the converter in subprocesses

V1 = 'https://huggingface.co/hamacojr/CAT-Seg/resolve/main/'


@pytest.mark.parametrize('config,weights', [
    ('catseg_vitb_r101.py', 'model_final_base.pth'), ('catseg_vitl_swinb.py',
                                                      'model_final_large.pth'),
    ('catseg_vith_swinb.py', 'model_final_huge.pth'), ('catseg_vitg_swinb.py',
                                                       'model_final_giant.pth')])
def test_paper_configs_name_the_v1_checkpoints(config, weights, monkeypatch):
    monkeypatch.delenv(WEIGHTS_URL_ENV, raising=False)
    assert released_weights_url(str(REPO_ROOT / 'configs' / 'paper' / config)) == V1 + weights


@pytest.fixture
def served_dir(tmp_path):
    """A directory served over HTTP on 127.0.0.1 for the test's duration."""
    root = tmp_path / 'served'
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f'http://127.0.0.1:{server.server_address[1]}'
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize('fixture_dir', v1_parity_fixture_dirs()[:1], ids=lambda p: p.name)
def test_demo_runs_a_v1_checkpoint_from_a_url(fixture_dir, served_dir, tmp_path):
    root, base_url = served_dir
    shutil.copy(fixture_dir / 'state_dict.pt', root / 'model_final_base.pth')
    config = tmp_path / 'v1_model.py'
    Config(dict(model=v1_catseg_config_from_fixture(
        json.loads((fixture_dir / 'config.json').read_text())),
        custom_imports=dict(imports=['cat_seg', 'mmpretrain.models']))).dump(str(config))
    result, log = run_tool(
        [sys.executable, str(REPO_ROOT / 'tools' / 'demo.py'),
         str(REPO_ROOT / 'demo' / 'astronaut.jpg'), '--vocab', 'sky, person; rocket',
         '--config', str(config), '--checkpoint', f'{base_url}/model_final_base.pth',
         '--mode', 'whole', '--out', str(tmp_path / 'out')],
        cwd=tmp_path, env={'TORCH_HOME': str(tmp_path / 'torch_home')})
    assert result.returncode == 0, log[-3000:]
    assert (tmp_path / 'out' / 'astronaut_labels.png').is_file()
    assert (tmp_path / 'torch_home' / 'hub' / 'checkpoints' / 'model_final_base.pth').is_file()
