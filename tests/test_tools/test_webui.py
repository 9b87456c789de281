"""tools/webui.py: the page in a real headless browser (Debian's chromium through selenium), the
``segment`` API endpoint through gradio_client, and the handlers in-process, on the parity
fixture's model (its official-format checkpoint converted on the fly)."""
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from cat_seg.apis import CATSegInferencer
from catseg_testing import REPO_ROOT, TINY_CONFIG, catseg_config_from_fixture, free_port, \
    load_parity_fixture, parity_fixture_dirs

pytestmark = pytest.mark.slow  # the web app's server in a subprocess

WEBUI = REPO_ROOT / 'tools' / 'webui.py'
PHOTO = REPO_ROOT / 'demo' / 'astronaut.jpg'
VOCAB = 'person, sky; heaven, flag'
NAMES = ['person', 'sky; heaven', 'flag']


@pytest.fixture(scope='module')
def model_files(tmp_path_factory):
    """A config file for the fixture's model and its official-format checkpoint."""
    fixture = load_parity_fixture(parity_fixture_dirs()[0])
    config = tmp_path_factory.mktemp('webui_model') / 'fixture_model.py'
    Config(dict(model=catseg_config_from_fixture(fixture.config),
                custom_imports=dict(imports=['cat_seg']))).dump(str(config))
    return config, fixture.path / 'state_dict.pt'


@pytest.fixture(scope='module')
def webui():
    """tools/webui.py imported as a module, without tools/ on the path: it imports no other tool."""
    spec = importlib.util.spec_from_file_location('catseg_webui_tool', WEBUI)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def server(model_files, tmp_path_factory):
    """The CLI serving the fixture model on a free port; no CHECKPOINT argument, so it takes the
    default weights as ``make demo`` does (here $CATSEG_WEIGHTS_URL, a file:// URL: offline)."""
    config, checkpoint = model_files
    tmp = tmp_path_factory.mktemp('webui_server')
    port = free_port()
    env = {**os.environ, 'CATSEG_WEIGHTS_URL': checkpoint.resolve().as_uri(),
           'TORCH_HOME': str(tmp / 'torch'), 'GRADIO_TEMP_DIR': str(tmp / 'gradio'),
           'OMP_NUM_THREADS': '1'}
    log = tmp / 'server.log'
    with open(log, 'w') as out:
        process = subprocess.Popen(
            [sys.executable, str(WEBUI), str(config), '--port', str(port), '--text-cache',
             str(tmp / 'text_cache')], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp)
    url = f'http://127.0.0.1:{port}/'
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, f'the server exited:\n{log.read_text()[-3000:]}'
            assert time.monotonic() < deadline, f'no answer on {url}:\n{log.read_text()[-3000:]}'
            try:
                urllib.request.urlopen(url, timeout=2).close()
                break
            except OSError:
                time.sleep(0.5)
        yield url, log
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def browser():
    """Headless chromium (Debian's chromium and chromium-driver; `make test` installs them),
    logging every request the page makes."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    missing = [b for b in ('chromium', 'chromedriver') if shutil.which(b) is None]
    if missing:
        pytest.fail(f'{missing} not found: apt-get install chromium chromium-driver (make test '
                    'installs them)')
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which('chromium')
    for argument in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage',
                     '--window-size=1400,1200', '--disable-background-networking'):
        options.add_argument(argument)
    options.set_capability('goog:loggingPrefs', {'performance': 'ALL'})
    driver = webdriver.Chrome(options=options, service=Service(shutil.which('chromedriver')))
    try:
        yield driver
    finally:
        driver.quit()


def requested_urls(driver) -> set:
    """Every URL the page asked for: the DevTools request log and the resource timings."""
    messages = (json.loads(entry['message'])['message']
                for entry in driver.get_log('performance'))
    urls = {m['params']['request']['url'] for m in messages
            if m['method'] == 'Network.requestWillBeSent'}
    urls |= set(driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"))
    return {u for u in urls if not u.startswith(('data:', 'blob:'))}


def table_cells(table) -> list:
    """The text of each body cell of gradio's table, by row, once it has filled (empty before)."""
    from selenium.webdriver.common.by import By
    rows = {}
    for cell in table.find_elements(By.CSS_SELECTOR, '[role=gridcell][data-row]'):
        rows.setdefault(int(cell.get_attribute('data-row')), {})[
            int(cell.get_attribute('data-col'))] = cell.get_attribute('textContent').strip()
    cells = [[row[c] for c in sorted(row)] for _, row in sorted(rows.items())]
    return cells if cells and cells[0][0] else None


@pytest.mark.browser
def test_page_segments_an_upload_offline(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    url, _ = server
    browser.get(url)
    wait = WebDriverWait(browser, 30)
    vocabulary = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, '#vocabulary textarea'))
    browser.find_element(By.CSS_SELECTOR, '#image input[type=file]').send_keys(str(PHOTO))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '#image img'))

    browser.find_element(By.CSS_SELECTOR, '#segment').click()   # no vocabulary yet
    message = wait.until(lambda d: ' '.join(
        t.text for t in d.find_elements(By.CSS_SELECTOR, '[data-testid=toast-text]')).strip())
    assert 'the vocabulary is empty: give at least one class name' in message
    browser.find_element(By.CSS_SELECTOR, '[data-testid=toast-close]').click()

    vocabulary.send_keys(VOCAB)
    browser.find_element(By.XPATH, "//*[@id='mode']//label[contains(., 'whole')]").click()
    browser.find_element(By.CSS_SELECTOR, '#segment').click()
    overlay = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, '#overlay img'))
    cells = wait.until(lambda d: table_cells(d.find_element(By.CSS_SELECTOR, '#classes')))
    assert sorted(c[0] for c in cells) == sorted(NAMES)   # every class labels pixels here
    shares = [float(c[1].rstrip('%')) for c in cells]
    assert shares == sorted(shares, reverse=True) and sum(shares) == pytest.approx(100, abs=0.2)
    assert browser.execute_script('return arguments[0].naturalWidth', overlay) > 512  # + legend
    downloads = browser.find_element(By.CSS_SELECTOR, '#downloads').text
    assert 'astronaut_labels' in downloads and 'astronaut' in downloads and '.json' in downloads
    browser.save_screenshot('/tmp/webui.png')

    hosts = {urlparse(u).hostname for u in requested_urls(browser)}
    assert hosts == {'127.0.0.1'}, sorted(requested_urls(browser))


def test_segment_endpoint_for_gradio_client(server, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError
    url, log = server
    client = Client(url, download_files=str(tmp_path), verbose=False)
    overlay, summary = client.predict(handle_file(str(PHOTO)), VOCAB, api_name='/segment')
    assert summary['vocabulary'] == ['person', ['sky', 'heaven'], 'flag']
    assert sum(c['share'] for c in summary['present']) == pytest.approx(1)
    assert (summary['height'], summary['width']) == (512, 512)
    with Image.open(overlay) as picture:
        assert picture.height == 512 and picture.width > 512    # the photo and its legend

    # Bad requests get their message back and leave the server serving.
    (tmp_path / 'notes.jpg').write_text('not an image')
    with pytest.raises(AppError, match='notes.jpg: not a readable image'):
        client.predict(handle_file(str(tmp_path / 'notes.jpg')), VOCAB, api_name='/segment')
    with pytest.raises(AppError, match='the vocabulary is empty'):
        client.predict(handle_file(str(PHOTO)), ' , ; ', api_name='/segment')
    too_many = ', '.join(f'class {i}' for i in range(1001))     # the default limit is 1000
    with pytest.raises(AppError, match='the vocabulary has 1001 classes, more than the limit of '
                       '1000 this app was started with; name fewer, or restart it with '
                       r'--max-classes 1001 \(or more\)'):
        client.predict(handle_file(str(PHOTO)), too_many, api_name='/segment')
    whole, again = client.predict(handle_file(str(PHOTO)), VOCAB, 'whole', api_name='/segment')
    assert sum(c['share'] for c in again['present']) == pytest.approx(1)
    assert 'weights: file://' in log.read_text()     # the default weights, as make demo


@pytest.fixture(scope='module')
def app(webui, model_files):
    config, checkpoint = model_files
    return webui.SegmentationApp(str(config), str(checkpoint), text_cache_dir=None)


def upload(path: Path) -> dict:
    """The payload gradio hands the handler for an uploaded file."""
    return dict(path=str(path), orig_name=path.name)


def test_each_mode_gives_the_inferencers_result(app, model_files):
    config, checkpoint = model_files
    for mode in ('whole', 'slide', 'whole'):    # switched back and forth on one model
        overlay, summary, out = app.segment(upload(PHOTO), VOCAB, mode)
        reference = CATSegInferencer(str(config), str(checkpoint), mode=mode,
                                     text_cache_dir=None)
        expected = reference(PHOTO, [NAMES[0], ('sky', 'heaven'), NAMES[2]])[0]
        assert summary['present'] == expected.present_classes()
        labels = np.asarray(Image.open(Path(out) / 'astronaut_labels.png'))
        np.testing.assert_array_equal(labels, expected.label_map)
        rows, files = app.details(summary, out)
        assert [r[2] for r in rows] == [c['pixels'] for c in expected.present_classes()]
        assert [Path(f).name for f in files] == ['astronaut_labels.png', 'astronaut.json']
        assert all(Path(f).is_file() for f in files)
        assert Path(overlay).name == 'astronaut_overlay.png'


def test_files_are_named_after_the_upload(app, tmp_path):
    shutil.copy(PHOTO, tmp_path / 'my_overlay.jpg')
    overlay, summary, out = app.segment(upload(tmp_path / 'my_overlay.jpg'), 'sky', 'whole')
    _, files = app.details(summary, out)
    assert [Path(f).name for f in [overlay, *files]] == [
        'my_overlay_overlay.png', 'my_overlay_labels.png', 'my_overlay.json']
    assert all(Path(f).is_file() for f in files)


def test_a_repeated_vocabulary_never_runs_the_text_encoder(app):
    encoder = app.inferencer.model.text_encoder
    app.segment(upload(PHOTO), 'rocket, wall; brick wall', 'whole')
    encoded = encoder.num_prompts_encoded
    app.segment(upload(PHOTO), 'rocket, wall; brick wall', 'slide')
    app.segment(upload(PHOTO), ' rocket ,wall;brick wall ', 'whole')   # the same classes
    assert encoder.num_prompts_encoded == encoded


def test_duplicate_classes_are_removed_with_a_warning(webui, app):
    with pytest.warns(UserWarning, match='duplicate class names removed: 1 repeats'):
        _, summary, _ = app.segment(upload(PHOTO), 'sky, flag, sky', 'whole')
    assert summary['vocabulary'] == ['sky', 'flag']


def test_the_class_limit_counts_distinct_classes(app, monkeypatch):
    import gradio as gr
    monkeypatch.setattr(app, 'max_classes', 2)
    with pytest.warns(UserWarning, match='duplicate class names removed'):
        _, summary, _ = app.segment(upload(PHOTO), 'sky, flag; banner, sky', 'whole')
    assert summary['vocabulary'] == ['sky', ['flag', 'banner']]
    with pytest.raises(gr.Error, match='the vocabulary has 3 classes, more than the limit of 2 '
                       'this app was started with; name fewer, or restart it with '
                       r'--max-classes 3 \(or more\)'):
        app.segment(upload(PHOTO), 'sky, flag, person', 'whole')


def test_precision_option_serves_both_modes(webui, tiny_catseg, tmp_path, monkeypatch,
                                            autocast_requests):
    torch.save(tiny_catseg.state_dict(), tmp_path / 'tiny.pth')
    app = webui.SegmentationApp(str(TINY_CONFIG), str(tmp_path / 'tiny.pth'),
                                text_cache_dir=None, precision='bf16')
    for mode in ('slide', 'whole'):
        app.segment(upload(PHOTO), 'sky, person', mode)
    assert autocast_requests == ['bf16', 'bf16']

    # The command line hands --precision (and --max-classes) to the app it serves.
    built = {}

    class Recorder:
        def __init__(self, *args):
            built['args'] = args

        def blocks(self):
            return self

        def launch(self, **kwargs):
            built['launch'] = kwargs

    monkeypatch.setattr(webui, 'SegmentationApp', Recorder)
    webui.main([str(TINY_CONFIG), str(tmp_path / 'tiny.pth'), '--precision', 'fp16',
                '--max-classes', '7', '--port', '7999'])
    assert built['args'][-2:] == (7, 'fp16')
    assert built['launch']['server_name'] == '127.0.0.1'


@pytest.mark.parametrize('content,vocabulary,mode,message', [
    (None, VOCAB, 'whole', 'no image: upload one'),
    (b'', VOCAB, 'whole', r'upload.jpg: empty file \(0 bytes\)'),
    (b'GIF89a truncated', VOCAB, 'whole', 'upload.jpg: not a readable image'),
    ('directory', VOCAB, 'whole', 'upload: a directory, not an image file'),
    ('photo', '', 'whole', 'the vocabulary is empty: give at least one class name'),
    ('photo', None, 'whole', 'the vocabulary is empty'),
    ('photo', VOCAB, 'fast', r"mode 'fast' is not one of \['slide', 'whole'\]"),
    ('photo', VOCAB, '<b>', "mode '&lt;b&gt;' is not one of"),    # shown as typed, not as HTML
])
def test_bad_requests_raise_a_message_for_the_page(webui, app, tmp_path, content, vocabulary,
                                                   mode, message):
    import gradio as gr
    image = None
    if content == 'photo':
        image = upload(PHOTO)
    elif content == 'directory':
        (tmp_path / 'upload').mkdir()   # with an image inside, not segmented instead
        shutil.copy(PHOTO, tmp_path / 'upload' / 'inside.jpg')
        image = upload(tmp_path / 'upload')
    elif content is not None:
        (tmp_path / 'upload.jpg').write_bytes(content)
        image = upload(tmp_path / 'upload.jpg')
    with pytest.raises(gr.Error, match=message):
        app.segment(image, vocabulary, mode)


@pytest.mark.parametrize('extra,message', [
    (['{config}', '{tmp}/model_base.pth'], "no checkpoint at '.*model_base.pth'"),
    (['{tmp}/missing.py'], "config file '.*missing.py' does not exist"),
    (['{config}'], 'has no released weights'),     # a config without a metafile entry
    (['{config}', '--max-classes', '0'], '--max-classes 0 must be a positive number of classes'),
])
def test_unusable_arguments_exit_2(webui, model_files, tmp_path, monkeypatch, capsys, extra,
                                   message):
    config, _ = model_files
    monkeypatch.delenv('CATSEG_WEIGHTS_URL', raising=False)
    with pytest.raises(SystemExit) as exit_info:
        webui.main([a.format(config=config, tmp=tmp_path) for a in extra])
    assert exit_info.value.code == 2
    assert re.fullmatch(f'error: .*{message}.*\n', capsys.readouterr().err)
