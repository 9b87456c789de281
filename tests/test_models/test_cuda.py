"""On a CUDA device: release parity of both plans, compile without graph breaks, AMP training.

``tools/analysis_tools/gpu_check.sh`` runs this file; without CUDA every test skips.
"""
import copy
import json
import sys

import pytest
import torch
import torch.nn.functional as F
from mmseg.registry import MODELS

from catseg_testing import REPO_ROOT, TINY_CONFIG, run_tool, tiny_model_config
from test_engine_amp_optim_wrapper import COSINE_MIN, train_two_iterations
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


def test_amp_training_on_cuda_stays_close_to_fp32():
    torch.manual_seed(0)
    model = MODELS.build(dict(tiny_model_config(), execution='plain')).cuda()
    losses, grads, _ = train_two_iterations(copy.deepcopy(model), 'OptimWrapper')
    amp_losses, amp_grads, dtypes = train_two_iterations(model, 'CATSegAmpOptimWrapper')
    assert set(dtypes) <= {torch.float16, torch.bfloat16} and dtypes
    assert all(torch.isfinite(loss) for loss in amp_losses)
    for reference, mixed in zip(grads, amp_grads):
        flat = [torch.cat([g[name].flatten() for name in reference]) for g in (reference, mixed)]
        assert F.cosine_similarity(*flat, dim=0) > COSINE_MIN
