"""CATSegAmpOptimWrapper: mixed-precision training on a CPU (bf16 autocast), close to fp32."""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmengine.optim import OptimWrapper
from mmseg.registry import MODELS, OPTIM_WRAPPERS

from catseg_testing import raw_batch, tiny_model_config

# Cosine of all gradients (one vector) with fp32. Per tensor it does not hold in bf16 on the
# random tiny model: the key biases' true gradient is 0 (softmax ignores a shift), and the
# random CLIP's q/v gradients come out at cosine 0.1-0.6 (docs/gpu.md, "Mixed precision").
COSINE_MIN = 0.99
LOSS_RTOL = 0.02


def train_two_iterations(model, wrapper_type):
    """Losses, per-iteration gradients {name: grad} (unscaled, as the optimiser sees them) and
    the dtypes the head's text-guidance projection computed in, over two iterations."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    wrapper = OPTIM_WRAPPERS.build(dict(type=wrapper_type, optimizer=optimizer))
    grads, dtypes = [], []
    optimizer.register_step_pre_hook(lambda *args: grads.append(
        {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    model.decode_head.text_guidance_proj[0].register_forward_hook(
        lambda module, args, output: dtypes.append(output.dtype))
    model.train_vocabulary = ['sky', 'grass', 'road', 'car', 'tree', 'person']
    batch = raw_batch(with_labels=True)
    losses = [model.train_step(batch, wrapper)['decode.loss_bce'] for _ in range(2)]
    return losses, grads, dtypes


def test_two_bf16_iterations_on_cpu_give_finite_losses_and_fp32_like_gradients():
    torch.manual_seed(0)
    model = MODELS.build(dict(tiny_model_config(), execution='plain'))
    losses, grads, dtypes = train_two_iterations(copy.deepcopy(model), 'OptimWrapper')
    amp_losses, amp_grads, amp_dtypes = train_two_iterations(model, 'CATSegAmpOptimWrapper')
    assert dtypes == [torch.float32] * 2 and amp_dtypes == [torch.bfloat16] * 2
    assert all(torch.isfinite(loss) for loss in amp_losses)
    torch.testing.assert_close(torch.stack(amp_losses), torch.stack(losses), rtol=LOSS_RTOL,
                               atol=0)
    assert len(amp_grads) == len(grads) == 2
    for reference, mixed in zip(grads, amp_grads):
        assert reference.keys() == mixed.keys() and reference
        flat = [torch.cat([g[name].flatten() for name in reference]) for g in (reference, mixed)]
        assert F.cosine_similarity(*flat, dim=0) > COSINE_MIN


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
