import pytest
import torch
from torch import nn

from cat_seg.models import fast_paths as ff


@pytest.mark.parametrize('activation', [nn.GELU(), nn.ReLU(), nn.GELU(approximate='tanh'),
                                        nn.SiLU()])
def test_inference_in_steps_equals_the_plain_composition(activation):
    torch.manual_seed(0)
    fc1, fc2 = nn.Linear(8, 32), nn.Linear(32, 6)
    x = torch.randn(2, 3, 5, 8)                    # 30 tokens: steps of 7 leave a remainder
    expected = fc2(activation(fc1(x)))
    with torch.no_grad():
        out = ff.feed_forward(x, fc1, activation, fc2, rows_per_step=7)
    assert out.shape == (2, 3, 5, 6)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-6)


def test_training_keeps_the_autograd_graph():
    torch.manual_seed(0)
    fc1, fc2 = nn.Linear(4, 8), nn.Linear(8, 4)
    ff.feed_forward(torch.randn(10, 4), fc1, nn.GELU(), fc2, rows_per_step=3).sum().backward()
    assert fc1.weight.grad is not None and fc2.weight.grad is not None
