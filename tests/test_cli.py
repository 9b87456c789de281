"""cat_seg.cli: how the runner tools end."""
import subprocess
import sys
import textwrap

import pytest

from catseg_testing import free_port

# A tool whose main prints, runs one collective in a real gloo group (or none) and returns or
# raises; stdout is a pipe, so its last line is only seen when exit_tool flushes it.
TOOL = textwrap.dedent('''
    import torch
    import torch.distributed as dist
    from cat_seg.cli import exit_tool

    def main():
        if {distributed}:
            dist.init_process_group('gloo', init_method='tcp://127.0.0.1:{port}', rank=0,
                                    world_size=1)
            dist.broadcast(torch.ones(3), 0)
        print('work done')
        {end}

    exit_tool(main)
    print('not reached')
''')


def run_tool_script(distributed: bool, end: str):
    script = TOOL.format(distributed=distributed, port=free_port(), end=end)
    return subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize('distributed, end, status', [
    (True, 'return 3', 3), (True, 'raise SystemExit(2)', 2), (True, 'return None', 0),
    (False, 'return 3', 3)])
def test_the_tool_exits_with_the_status_of_main_and_its_output_flushed(
        distributed, end, status):
    result = run_tool_script(distributed, end)
    assert result.returncode == status, result.stderr
    assert result.stdout == 'work done\n'


@pytest.mark.slow
def test_a_message_exit_prints_the_message_and_exits_1_in_a_distributed_run():
    result = run_tool_script(True, "raise SystemExit('error: bad config')")
    assert result.returncode == 1
    assert 'error: bad config' in result.stderr
