"""CATSegAmpOptimWrapper: mixed-precision training on a CPU (bf16 autocast), close to fp32."""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.optim import OptimWrapper, build_optim_wrapper
from mmseg.registry import MODELS, OPTIM_WRAPPERS

from cat_seg.weights.convert_release import convert_official_state_dict
from catseg_testing import REPO_ROOT, catseg_config_from_fixture
from test_parity.test_segmentor_parity import preprocess

RELEASE_SCHEDULE = REPO_ROOT / 'configs' / '_base_' / 'schedules' / 'catseg_adamw_80k.py'
COSINE_MIN = 0.99
# A gradient below this share of the largest tensor's norm is negligible. Only the key biases
# of softmax attention fall below: a bias shifts every key alike, which softmax ignores, so
# their true gradient is 0 and fp32 gives rounding noise (1e-11 of the largest).
NEGLIGIBLE = 1e-6


def fixture_model_and_batch(fixture):
    """The parity fixture's model (official initialisation, tiny dimensions) with its weights,
    and its training case: a real image, labels and class names, whose classes CLIP tells
    apart (the tiny random model's prompts all embed alike, cosine 0.98)."""
    model = MODELS.build(dict(catseg_config_from_fixture(fixture.config), execution='plain'))
    model.load_state_dict(convert_official_state_dict(fixture.state_dict))
    case = next(c for c in fixture.cases.values() if 'loss' in c['expected'])
    model.train_vocabulary = case['inputs']['class_names']
    return model.train(), preprocess(model, case, training=True)


def fp32_loss_and_grads(model, batch):
    """Loss and gradients {name: grad} of one fp32 step at the model's current parameters
    (on a copy: the model is left untouched)."""
    model = copy.deepcopy(model)
    loss = sum(model.loss(*batch).values())
    loss.backward()
    return loss.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


def train_two_amp_iterations(model, batch):
    """Two iterations of the release's optimiser (AdamW, CLIP at lr x0.01, clipping) through
    CATSegAmpOptimWrapper. Per iteration: the loss, the gradients as the optimiser sees them
    (unscaled, clipped: a common factor), and the fp32 loss and gradients at the same
    parameters; and the dtypes the head's text-guidance projection computed in."""
    cfg = Config.fromfile(str(RELEASE_SCHEDULE)).optim_wrapper
    wrapper = build_optim_wrapper(model, dict(cfg, type='CATSegAmpOptimWrapper'))
    grads, dtypes, iterations = [], [], []
    wrapper.optimizer.register_step_pre_hook(lambda *args: grads.append(
        {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    model.decode_head.text_guidance_proj[0].register_forward_hook(
        lambda module, args, output: dtypes.append(output.dtype))
    for _ in range(2):
        reference = fp32_loss_and_grads(model, batch)
        with wrapper.optim_context(model):
            loss = sum(model.loss(*batch).values())
        wrapper.update_params(loss)
        iterations.append((loss.detach(), grads[-1], *reference))
    return iterations, dtypes


def assert_close_to_fp32(iterations):
    """Each iteration's loss is finite and every gradient tensor has a cosine above COSINE_MIN
    with fp32's, except the negligible ones, which must all be key biases."""
    for loss, grads, fp32_loss, fp32_grads in iterations:
        assert torch.isfinite(loss) and torch.isfinite(fp32_loss)
        assert grads.keys() == fp32_grads.keys() and grads
        largest = max(float(g.norm()) for g in fp32_grads.values())
        negligible = {n for n, g in fp32_grads.items() if g.norm() < NEGLIGIBLE * largest}
        assert negligible and all(n.endswith('attn.k.bias') for n in negligible), negligible
        cosines = {n: float(F.cosine_similarity(grads[n].flatten().double(),
                                                fp32_grads[n].flatten().double(), dim=0))
                   for n in fp32_grads if n not in negligible}
        assert {n: c for n, c in cosines.items() if c <= COSINE_MIN} == {}
        assert {n.split('.')[0] for n in cosines} >= {'backbone', 'text_encoder', 'decode_head'}


def test_two_bf16_iterations_on_cpu_give_finite_losses_and_fp32_gradients_per_tensor(
        parity_fixture):
    iterations, dtypes = train_two_amp_iterations(*fixture_model_and_batch(parity_fixture))
    # The fp32 reference runs first in each iteration, then the autocast step.
    assert dtypes == [torch.float32, torch.bfloat16] * 2
    assert_close_to_fp32(iterations)


def test_cpu_amp_wrapper_scales_on_the_cpu_and_refuses_fp16():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=0.1)
    wrapper = OPTIM_WRAPPERS.build(dict(type='CATSegAmpOptimWrapper', optimizer=optimizer,
                                        loss_scale=512.0))
    assert isinstance(wrapper, OptimWrapper) and wrapper.cast_dtype == torch.bfloat16
    assert wrapper.loss_scaler.get_scale() == 512.0
    wrapper.load_state_dict(wrapper.state_dict())   # a resumed run restores the scaler
    with pytest.raises(ValueError, match='cannot autocast on a CPU'):
        OPTIM_WRAPPERS.build(dict(type='CATSegAmpOptimWrapper', optimizer=optimizer,
                                  dtype='float16'))
    with pytest.raises(TypeError, match="loss_scale='static' must be 'dynamic'"):
        OPTIM_WRAPPERS.build(dict(type='CATSegAmpOptimWrapper', optimizer=optimizer,
                                  loss_scale='static'))
