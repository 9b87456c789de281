"""Per-pixel binary cross-entropy over the class axis (paper §3.5)."""
from typing import Optional

import torch
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import Tensor, nn

IGNORE_MODES = ('negative', 'mask')


@MODELS.register_module()
class CATSegBCELoss(nn.Module):
    """Binary cross-entropy of every class logit against one-hot targets.

    Args:
        ignore_mode (str): How pixels labelled ``ignore_index`` count. 'negative' (release,
            fixture README §10): all-zero targets, averaged with the rest; 'mask': left out.
            Defaults to 'negative'.
        loss_weight (float): Multiplier. Defaults to 1.0.
        loss_name (str): Key in the loss dict (must start with 'loss'). Defaults to 'loss_bce'.
    """

    def __init__(self, ignore_mode: str = 'negative', loss_weight: float = 1.0,
                 loss_name: str = 'loss_bce'):
        super().__init__()
        if ignore_mode not in IGNORE_MODES:
            raise ValueError(f'ignore_mode={ignore_mode!r} is not one of {list(IGNORE_MODES)}')
        if not loss_name.startswith('loss'):
            raise ValueError(f"loss_name={loss_name!r} must start with 'loss' so mmengine "
                             'back-propagates it')
        self.ignore_mode, self.loss_weight, self._loss_name = ignore_mode, loss_weight, loss_name

    @property
    def loss_name(self) -> str:
        return self._loss_name

    def forward(self, seg_logits: Tensor, seg_label: Tensor, weight: Optional[Tensor] = None,
                ignore_index: int = 255, **kwargs) -> Tensor:
        """Loss of logits (B, T, H, W) against labels (B, H, W) with values in [0, T) or ignore."""
        num_classes = seg_logits.shape[1]
        labels = seg_label.masked_fill(seg_label == ignore_index, 0)
        if labels.numel() and int(labels.max()) >= num_classes:
            raise ValueError(f'label {int(labels.max())} is outside the {num_classes} classes of '
                             'the training vocabulary; check the dataset classes and '
                             'ignore_index')
        return self.loss_weight * self.mean_loss(seg_logits, seg_label, weight, ignore_index)

    def mean_loss(self, seg_logits: Tensor, seg_label: Tensor, weight: Optional[Tensor],
                  ignore_index: int) -> Tensor:
        """The unweighted loss of labels already checked: tensor operations only, so it
        compiles into one graph."""
        num_classes = seg_logits.shape[1]
        ignored = seg_label == ignore_index
        labels = seg_label.masked_fill(ignored, 0)
        target = F.one_hot(labels, num_classes).permute(0, 3, 1, 2).to(seg_logits.dtype)
        target = target.masked_fill(ignored[:, None], 0)
        loss = F.binary_cross_entropy_with_logits(seg_logits, target, reduction='none')
        if weight is not None:
            loss = loss * weight[:, None]
        if self.ignore_mode == 'negative':
            return loss.mean()
        # A masked sum, not loss[kept]: a data-dependent shape would break a compiled graph.
        kept = (~ignored)[:, None].expand_as(loss)
        return (loss * kept).sum() / kept.sum().clamp(min=1)

    def compile(self, *args, **kwargs) -> None:
        """``torch.compile`` :meth:`mean_loss` only: the label check reads a value back to
        raise its error, which would split the graph."""
        self.mean_loss = torch.compile(self.mean_loss, *args, **kwargs)
