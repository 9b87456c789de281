"""The demo's default weights: a config's released checkpoint URL (configs/metafile.yaml, or
$CATSEG_WEIGHTS_URL), downloaded once from a local HTTP server on 127.0.0.1, loaded strictly;
partial, corrupt and unreachable downloads."""
import http.server
import socket
import sys
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from mmengine.config import Config

from cat_seg.apis import CATSegInferencer
from cat_seg.weights.download import (WEIGHTS_URL_ENV, download_checkpoint, fetch_checkpoint,
                                      load_checkpoint_file, released_weights_url)
from catseg_testing import REPO_ROOT, catseg_config_from_fixture, free_port, run_tool

RELEASE = 'https://huggingface.co/spaces/hamacojr/CAT-Seg-weights/resolve/main/'


class FileServer(http.server.ThreadingHTTPServer):
    """Serves ``files`` (name -> bytes) and counts the requests for each name; ``announced``
    (name -> bytes) makes it announce another Content-Length than it sends."""

    def __init__(self, files: dict, announced: dict = None):
        super().__init__(('127.0.0.1', 0), FileHandler)
        self.files, self.announced, self.requests = files, announced or {}, Counter()

    def url(self, name: str) -> str:
        return f'http://127.0.0.1:{self.server_address[1]}/{name}'


class FileHandler(http.server.BaseHTTPRequestHandler):

    def do_GET(self):
        name = self.path.lstrip('/')
        self.server.requests[name] += 1
        if name not in self.server.files:
            self.send_error(404)
            return
        body = self.server.files[name]
        self.send_response(200)
        self.send_header('Content-Length', str(self.server.announced.get(name, len(body))))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    """``serve(files, announced)`` starts a FileServer in a thread, stopped after the test."""
    servers = []

    def start(files, announced=None):
        server = FileServer(files, announced)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """A fresh torch hub cache (torch reads $TORCH_HOME at every call); no URL override."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    monkeypatch.delenv(WEIGHTS_URL_ENV, raising=False)
    return tmp_path / 'torch_home' / 'hub' / 'checkpoints'


def test_release_configs_name_their_official_weights(torch_home, monkeypatch):
    configs = REPO_ROOT / 'configs'
    assert released_weights_url(str(configs / 'catseg_vitb.py')) == RELEASE + 'model_base.pth'
    assert released_weights_url(str(configs / 'catseg_vitl.py')) == RELEASE + 'model_large.pth'
    # No official ViT-H checkpoint: no metafile entry.
    with pytest.raises(ValueError, match=r"catseg_vith.py' has no released weights \(no entry "
                                         r"with Weights in .*configs/metafile.yaml\): pass a "
                                         r'checkpoint with --checkpoint PATH'):
        released_weights_url(str(configs / 'catseg_vith.py'))
    with pytest.raises(ValueError, match='a config not read from a file has no released '
                                         'weights: pass a checkpoint with --checkpoint PATH'):
        CATSegInferencer(Config(dict(model=dict(type='CATSeg'))))
    monkeypatch.setenv(WEIGHTS_URL_ENV, 'http://127.0.0.1:1/mine.pth')
    assert released_weights_url(str(configs / 'catseg_vith.py')) == 'http://127.0.0.1:1/mine.pth'


@pytest.mark.slow
def test_make_demo_downloads_the_released_weights_once(parity_fixture, fixture_config, serve,
                                                       torch_home, tmp_path, monkeypatch):
    weights = (parity_fixture.path / 'state_dict.pt').read_bytes()
    server = serve({'model_base.pth': weights})
    url = server.url('model_base.pth')
    # -o: never (re)build .venv from a test; the running interpreter is the venv's.
    result, log = run_tool(
        ['make', '-C', str(REPO_ROOT), '-o', '.venv/.installed', 'demo', f'PY={sys.executable}',
         f'CONFIG={fixture_config}', f'INPUT={REPO_ROOT / "demo" / "astronaut.jpg"}',
         f'DEMO_OUT={tmp_path / "out"}', 'VOCAB=sky, person', f'WEIGHTS_URL={url}'],
        cwd=tmp_path, env=dict(HOME=str(tmp_path)))
    assert result.returncode == 0, log[-3000:]
    assert f'weights: {url} (no --checkpoint' in log
    assert server.requests['model_base.pth'] == 1
    assert (torch_home / 'model_base.pth').read_bytes() == weights
    assert (tmp_path / 'out' / 'astronaut_labels.png').is_file()

    # A second run finds the file in the cache and loads it strictly.
    monkeypatch.setenv(WEIGHTS_URL_ENV, url)
    inferencer = CATSegInferencer(str(fixture_config), mode='whole', text_cache_dir=None)
    assert server.requests['model_base.pth'] == 1
    expected = parity_fixture.state_dict
    name = 'backbone.conv1.weight'
    torch.testing.assert_close(inferencer.model.state_dict()[name],
                               expected['sem_seg_head.predictor.clip_model.visual.conv1.weight'])


@pytest.mark.slow
def test_offline_the_demo_stops_at_once_with_one_line(fixture_config, tmp_path):
    url = f'http://127.0.0.1:{free_port()}/model_base.pth'        # nothing listens there
    result, log = run_tool(
        [sys.executable, str(REPO_ROOT / 'tools' / 'demo.py'), str(REPO_ROOT / 'demo' /
         'astronaut.jpg'), '--vocab', 'sky', '--config', str(fixture_config), '--out',
         str(tmp_path / 'out')], cwd=tmp_path, timeout=60,     # a retrying demo times out
        env={'TORCH_HOME': str(tmp_path / 'torch_home'), WEIGHTS_URL_ENV: url})
    assert result.returncode == 2 and 'Traceback' not in log
    errors = [line for line in log.splitlines() if line.startswith('error:')]
    assert errors == [errors[0]] and f"could not download the checkpoint '{url}'" in errors[0]
    assert 'pass the file with --checkpoint PATH' in errors[0]
    assert not list((tmp_path / 'torch_home' / 'hub' / 'checkpoints').iterdir())


@pytest.mark.slow
def test_a_config_without_released_weights_needs_a_checkpoint(fixture_config, tmp_path):
    result, log = run_tool([sys.executable, str(REPO_ROOT / 'tools' / 'demo.py'),
                            str(REPO_ROOT / 'demo' / 'astronaut.jpg'), '--vocab', 'sky',
                            '--config', str(fixture_config)], cwd=tmp_path,
                           env={WEIGHTS_URL_ENV: ''})
    assert result.returncode == 2 and 'Traceback' not in log
    assert (f"error: config '{fixture_config}' has no released weights (no entry with Weights "
            f"in {tmp_path / 'metafile.yaml'}): pass a checkpoint with --checkpoint PATH") in log


def test_a_corrupt_download_is_deleted_and_reported(serve, torch_home):
    server = serve({'model_base.pth': np.random.RandomState(0).bytes(5000)})
    url = server.url('model_base.pth')
    for attempt in (1, 2):    # deleted, so the next run downloads it again
        with pytest.raises(ValueError, match=rf"the checkpoint downloaded from '{url}' does not "
                                             rf"load and was deleted \({torch_home}/model_base"):
            load_checkpoint_file(url)
        assert server.requests['model_base.pth'] == attempt
        assert not list(torch_home.iterdir())


def test_a_partial_download_is_deleted(serve, torch_home):
    server = serve({'model_base.pth': b'x' * 5000}, announced={'model_base.pth': 9000})
    with pytest.raises(ValueError, match=r"could not download the checkpoint 'http://127.0.0.1:"
                                         r"\d+/model_base.pth' \(.*\); check the network"):
        fetch_checkpoint(server.url('model_base.pth'))
    assert not list(torch_home.iterdir())


def test_a_server_that_never_answers_times_out(tmp_path):
    # The socket closes first on the way out, so a download that ignored its timeout ends too.
    with ThreadPoolExecutor(1) as pool, socket.socket() as silent:
        silent.bind(('127.0.0.1', 0))
        silent.listen(1)      # accepts connections (backlog), never replies
        url = f'http://127.0.0.1:{silent.getsockname()[1]}/model_base.pth'
        download = pool.submit(download_checkpoint, url, tmp_path / 'model_base.pth', timeout=1)
        with pytest.raises(ValueError, match=rf"could not download the checkpoint '{url}' "
                                             r'\(.*(timed out|no answer within 1 s)'):
            download.result(timeout=60)
    assert not list(tmp_path.iterdir())


def test_a_downloaded_checkpoint_of_another_model_is_refused(parity_fixture, serve, torch_home,
                                                             tmp_path):
    server = serve({'model_base.pth': (parity_fixture.path / 'state_dict.pt').read_bytes()})
    cfg = catseg_config_from_fixture(parity_fixture.config)
    cfg['decode_head']['num_layers'] += 1          # one layer more than the checkpoint has
    with pytest.raises(ValueError, match=r"checkpoint 'http://127.0.0.1:\d+/model_base.pth' "
                                         r'does not match the config: \d+ missing keys'):
        CATSegInferencer(Config(dict(model=cfg)), server.url('model_base.pth'),
                         text_cache_dir=None)
    assert (torch_home / 'model_base.pth').is_file()     # a valid file: kept
