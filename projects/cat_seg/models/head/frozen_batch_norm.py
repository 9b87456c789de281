"""Batch normalisation with fixed statistics and affine terms, as the paper's ResNet-101 guidance
backbone uses it (detectron2 ``FrozenBatchNorm2d``; v1 fixture README §5).

mmcv has no such layer: ``BN`` with ``requires_grad=False`` and ``norm_eval=True`` computes the
same values but keeps ``weight``/``bias`` as parameters and adds ``num_batches_tracked``, so the
official checkpoints (four buffers per norm) would not load strictly and the frozen terms would
be listed as parameters.
"""
import torch
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import Tensor, nn


@MODELS.register_module()
class CATSegFrozenBatchNorm2d(nn.Module):
    """``(x - running_mean) / sqrt(running_var + eps) * weight + bias`` per channel, no parameters.

    All four tensors are buffers, so nothing here trains or is updated by a forward pass in
    either mode. Usable as an mmcv norm layer: ``norm_cfg=dict(type='CATSegFrozenBatchNorm2d')``
    (its abbreviation is 'bn', so mmpretrain's ResNet names it ``bn1``, ``layer1.0.bn2``, ...).

    Args:
        num_features (int): C, channels of the (B, C, H, W) input.
        eps (float): Added to the variance. Defaults to 1e-5 (detectron2).

    Examples:
        >>> norm = CATSegFrozenBatchNorm2d(8)
        >>> norm(torch.randn(2, 8, 4, 4)).shape
        torch.Size([2, 8, 4, 4])
    """

    _abbr_ = 'bn'

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.num_features, self.eps = num_features, eps
        self.register_buffer('weight', torch.ones(num_features))
        self.register_buffer('bias', torch.zeros(num_features))
        self.register_buffer('running_mean', torch.zeros(num_features))
        self.register_buffer('running_var', torch.ones(num_features))

    def forward(self, x: Tensor) -> Tensor:
        """Normalise (B, C, H, W) with the stored statistics."""
        if x.dim() != 4 or x.shape[1] != self.num_features:
            raise ValueError(f'{type(self).__name__}({self.num_features}) expects (B, '
                             f'{self.num_features}, H, W), got {tuple(x.shape)}')
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            training=False, eps=self.eps)

    def extra_repr(self) -> str:
        return f'{self.num_features}, eps={self.eps}'
