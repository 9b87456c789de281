"""The GPU-readiness tools on CPU: compile_check.py, tools/train.py --amp and the runner's
compile setting, benchmark_training.py, gpu_check.sh."""
import json
import math
import os
import re
import subprocess
import sys

import pytest
import torch
from mmseg.registry import MODELS

from catseg_testing import REPO_ROOT, TINY_CONFIG, raw_batch, run_tool, tiny_model_config
from catseg_testing import write_synthetic_dataset

pytestmark = pytest.mark.slow  # the analysis tools and tools/train.py in subprocesses; compilation

ANALYSIS = REPO_ROOT / 'tools' / 'analysis_tools'
# Backends that trace as inductor does without generating C++ (minutes per model here). Training
# uses dynamo alone: aot_eager's backward of the head fails on CPU (a view of a gradient whose
# real strides differ from the traced ones; inductor plans its own layouts, docs/gpu.md).
FAST_BACKENDS = dict(whole='aot_eager', slide='aot_eager', train='eager')


def last_json(log: str) -> dict:
    return json.loads(log.strip().splitlines()[-1])


@pytest.mark.parametrize('what, precision', [('whole', 'fp32'), ('slide', 'fp32'),
                                             ('train', 'fp32'), ('whole', 'bf16')])
def test_compile_check_finds_no_graph_break_and_eager_results(what, precision, tmp_path):
    # 6 classes: more than the tiny pad_len (4), so the class selection is compiled too. bf16:
    # the parts are traced under the call's autocast, and fp32 runs after it.
    result, log = run_tool([sys.executable, str(ANALYSIS / 'compile_check.py'), str(TINY_CONFIG),
                            '--what', what, '--num-classes', '6', '--repeats', '1',
                            '--precision', precision,
                            '--cfg-options', f'model.compile.backend={FAST_BACKENDS[what]}'],
                           cwd=tmp_path, timeout=900)
    assert result.returncode == 0, log[-3000:]
    report = last_json(result.stdout)
    parts = {'backbone', 'guidance', 'decode_head'} | ({'decode_head.loss_decode'}
                                                       if what == 'train' else set())
    assert set(report['parts']) == parts
    assert report['graph_breaks'] == 0 and report['graphs'] == len(parts)
    assert report['options'] == {'backend': FAST_BACKENDS[what]}
    assert report['max_abs_diff'] <= 1e-5
    assert report['eager_s'] > 0 and report['compiled_s'] > 0
    if what == 'train':
        assert report['loss_rel_diff'] <= 1e-5
    if precision != 'fp32':
        assert report['precision'] == precision and 0 < report['fp32_max_abs_diff'] < 0.05


def test_model_compile_compiles_the_parts_in_place_with_eager_results():
    torch.manual_seed(0)
    eager = MODELS.build(dict(tiny_model_config(), execution='plain')).eval()
    compiled = MODELS.build(dict(tiny_model_config(), compile=dict(backend='aot_eager'))).eval()
    compiled.load_state_dict(eager.state_dict())    # same keys: compiled in place
    assert all(part._compiled_call_impl is not None
               for part in (compiled.backbone, compiled.guidance, compiled.decode_head))
    data = eager.data_preprocessor(raw_batch(), training=False)
    with torch.no_grad():
        outputs = [model.predict(data['inputs'], data['data_samples'],
                                 vocabulary=['sky', 'road', 'tree'])[0].seg_logits.data
                   for model in (eager, compiled)]
    torch.testing.assert_close(outputs[1], outputs[0], atol=1e-5, rtol=0)
    assert compiled.execution == 'plain'     # 'auto' would pick the cpu plan here
    with pytest.raises(TypeError, match="model.compile='yes' must be True, False or a dict"):
        MODELS.build(dict(tiny_model_config(), compile='yes'))
    with pytest.raises(ValueError, match="model.compile needs model.execution='plain'"):
        MODELS.build(dict(tiny_model_config(), compile=True, execution='cpu'))


@pytest.mark.parametrize('options', [['--amp'], ['--cfg-options', 'compile.backend=aot_eager']],
                         ids=['amp', 'runner-compile'])
def test_train_with_amp_or_the_runner_compile_setting(options, tmp_path):
    data = write_synthetic_dataset(tmp_path / 'data')
    args = [sys.executable, str(REPO_ROOT / 'tools' / 'train.py'), str(TINY_CONFIG),
            '--work-dir', str(tmp_path / 'work'), *options]
    args += [] if '--cfg-options' in options else ['--cfg-options']
    args += [f'{split}_dataloader.dataset.data_root={data}' for split in ('train', 'val', 'test')]
    args += ['train_cfg.max_iters=2',
             'train_cfg.val_interval=10', 'default_hooks.checkpoint.interval=10']
    result, log = run_tool(args, cwd=tmp_path, timeout=900)
    assert result.returncode == 0, log[-3000:]
    losses = [float(v) for v in re.findall(r'Iter\(train\) \[\d/2\].*decode\.loss_bce: (\S+)', log)]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    if options == ['--amp']:
        assert "type='CATSegAmpOptimWrapper'" in log
    else:
        assert 'Model has been "compiled"' in log


@pytest.mark.parametrize('with_cp', [False, True])
def test_benchmark_training_reports_one_step(with_cp, tmp_path):
    result, log = run_tool([sys.executable, str(ANALYSIS / 'benchmark_training.py'),
                            str(TINY_CONFIG), '--num-classes', '6', '--cfg-options',
                            'model.execution=plain', f'model.backbone.with_cp={with_cp}'],
                           cwd=tmp_path)
    assert result.returncode == 0, log[-3000:]
    report = last_json(result.stdout)
    assert report['execution'] == 'plain' and report['backbone_with_cp'] is with_cp
    assert report['seconds'] > 0 and report['peak_rss_gb'] >= report['rss_before_step_gb'] > 0
    assert re.match(r'one training step: [\d.]+ s, peak RSS [\d.]+ GB$',
                    result.stdout.splitlines()[-2])


def test_gpu_check_without_a_gpu_says_so_and_runs_nothing(tmp_path):
    script = ANALYSIS / 'gpu_check.sh'
    result, log = run_tool(['bash', str(script), str(TINY_CONFIG), str(tmp_path / 'out.json')],
                           cwd=tmp_path, env=dict(CUDA_VISIBLE_DEVICES=''))
    assert result.returncode == 0, log
    assert result.stdout.splitlines() == [
        'gpu_check: no CUDA GPU found (torch.cuda.is_available() is False); nothing was run']
    assert list(tmp_path.iterdir()) == [] and result.stderr == ''


def test_gpu_check_without_torch_is_an_error(tmp_path):
    result = subprocess.run(['bash', str(ANALYSIS / 'gpu_check.sh')], cwd=tmp_path, text=True,
                            capture_output=True, env=dict(os.environ, PYTHON='false'), timeout=60)
    assert result.returncode == 2
    assert result.stderr.splitlines() == ['error: false cannot import torch']
