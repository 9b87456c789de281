"""On a CUDA device: release parity of both plans, compile without graph breaks, AMP training.

``tools/analysis_tools/gpu_check.sh`` runs this file; without CUDA every test skips.
"""
import json
import sys

import pytest
import torch

from catseg_testing import REPO_ROOT, TINY_CONFIG, run_tool
from test_engine_amp_optim_wrapper import (assert_close_to_fp32, fixture_model_and_batch,
                                          train_two_amp_iterations)
from test_parity.test_segmentor_parity import LOGITS_ATOL, cases_with, preprocess

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')


@torch.no_grad()
def test_whole_image_logits_match_the_release_fixture_on_cuda(parity_fixture, parity_model):
    model = parity_model.cuda()
    for case in cases_with(parity_fixture, 'clip_input', 'logits').values():
        expected = case['expected']
        inputs, samples = preprocess(model, case)
        views = model.whole_views(inputs, [s.metainfo for s in samples])
        logits = model.class_logits(views, model.encode_vocabulary(case['inputs']['class_names']))
        torch.testing.assert_close(logits.cpu(), expected['logits'], atol=LOGITS_ATOL, rtol=0)


@pytest.mark.parametrize('what', ['whole', 'slide', 'train'])
def test_compile_on_cuda_has_no_graph_break_and_eager_results(what, tmp_path):
    result, log = run_tool([sys.executable,
                            str(REPO_ROOT / 'tools' / 'analysis_tools' / 'compile_check.py'),
                            str(TINY_CONFIG), '--what', what, '--num-classes', '6',
                            '--device', 'cuda'], cwd=tmp_path, timeout=1800)
    assert result.returncode == 0, log[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report['graph_breaks'] == 0 and report['max_abs_diff'] <= 1e-5
    assert report.get('loss_rel_diff', 0) <= 1e-5


def test_amp_training_on_cuda_stays_close_to_fp32(parity_fixture):
    """Two AMP iterations (fp16 with a scaler, or bf16) of the parity fixture's model on CUDA:
    finite losses, each gradient tensor close to fp32's (the CPU test's criteria)."""
    model, (inputs, samples) = fixture_model_and_batch(parity_fixture)
    batch = inputs.cuda(), [sample.to('cuda') for sample in samples]
    iterations, dtypes = train_two_amp_iterations(model.cuda(), batch)
    assert dtypes[0::2] == [torch.float32] * 2
    assert set(dtypes[1::2]) <= {torch.float16, torch.bfloat16}
    assert_close_to_fp32(iterations)
