"""The command-line tools start without the dormant OpenMMLab stack's notices (cat_seg.compat)."""
import re
import sys

import pytest

from catseg_testing import REPO_ROOT, free_port, run_tool

pytestmark = pytest.mark.slow  # each test starts a tool in a new interpreter

# Python prints a warning as "<file>:<line>: <Category>: <message>"; the stack's name is in the
# file (mmcv/..., mmengine/...) or in the message (pkg_resources).
STACK = r'(mmcv|mmengine|pkg_resources)'
CATEGORY = r'(UserWarning|DeprecationWarning)'


def stack_notices(output: str) -> list:
    """The lines of ``output`` that show a warning of the OpenMMLab stack or pkg_resources."""
    return [line for line in output.splitlines()
            if re.search(f'{STACK}.*{CATEGORY}|{CATEGORY}.*{STACK}', line)]


@pytest.mark.parametrize('tool', ['demo.py', 'train.py', 'test.py', 'webui.py'])
def test_help_prints_no_stack_notice(tool, tmp_path):
    result, output = run_tool([sys.executable, str(REPO_ROOT / 'tools' / tool), '--help'],
                              cwd=tmp_path, timeout=120)
    assert result.returncode == 0, output[-2000:]
    assert result.stdout.startswith('usage:')
    assert stack_notices(output) == []


def test_offline_demo_prints_its_error_and_no_stack_notice(tmp_path):
    """Reads the release config (mmengine imports pkg_resources for its mmseg:: bases), builds
    nothing it cannot download, and stops at the unreachable weights URL."""
    url = f'http://127.0.0.1:{free_port()}/model_base.pth'
    result, output = run_tool(
        [sys.executable, str(REPO_ROOT / 'tools' / 'demo.py'), str(REPO_ROOT / 'demo' /
         'astronaut.jpg'), '--vocab', 'a,b', '--config', str(REPO_ROOT / 'configs' /
         'catseg_vitb.py'), '--out', str(tmp_path / 'out')],
        cwd=tmp_path, timeout=120, env={'CATSEG_WEIGHTS_URL': url, 'TORCH_HOME': str(tmp_path)})
    assert result.returncode == 2, output[-2000:]
    assert f"error: could not download the checkpoint '{url}'" in result.stderr
    assert stack_notices(output) == []
    # Issue 22: the weights line and the error line, nothing else.
    lines = output.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith(f'weights: {url}'), output
    assert lines[1].startswith('error: '), output
