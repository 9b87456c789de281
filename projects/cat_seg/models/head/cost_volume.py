"""Cost computation and embedding (paper §3.2, Eq. 1) and the release's top-k class selection."""
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def cosine_cost(image_feats: Tensor, text_embeds: Tensor) -> Tensor:
    """Cosine similarity between every pixel and every class prompt (paper §3.2, Eq. 1).

    Args:
        image_feats (Tensor): Dense CLIP features, (B, C, H, W).
        text_embeds (Tensor): Class embeddings, one per template, (B, T, P, C).

    Returns:
        Tensor: Cost volume, (B, P, T, H, W), values in [-1, 1].
    """
    image_feats = F.normalize(image_feats, dim=1)
    text_embeds = F.normalize(text_embeds, dim=-1)
    return torch.einsum('bchw,btpc->bpthw', image_feats, text_embeds)


def select_classes(cost: Tensor, num_kept: int) -> Tensor:
    """Indices of the ``num_kept`` classes with the highest cost anywhere, per image.

    The score of a class is its maximum over prompts and pixels; the order is the one
    ``torch.topk(sorted=False)`` returns, which the release aggregates in (fixture README §11).

    Args:
        cost (Tensor): (B, P, T, H, W).
        num_kept (int): K, at most T.

    Returns:
        Tensor: Class indices, (B, K), int64.
    """
    scores = cost.transpose(1, 2).flatten(2).amax(dim=-1)          # (B, T)
    return scores.topk(num_kept, dim=-1, sorted=False).indices


def gather_classes(text_embeds: Tensor, classes: Tensor) -> Tensor:
    """Rows ``classes`` (B, K) of ``text_embeds`` (B, T, P, C) -> (B, K, P, C)."""
    index = classes[:, :, None, None].expand(-1, -1, *text_embeds.shape[2:])
    return text_embeds.gather(1, index)


def scatter_classes(logits: Tensor, classes: Tensor, num_classes: int,
                    fill_value: float) -> Tensor:
    """Logits of kept classes (B, K, H, W) placed at ``classes`` in (B, T, H, W), rest filled."""
    out = logits.new_full((logits.shape[0], num_classes, *logits.shape[2:]), fill_value)
    index = classes[:, :, None, None].expand(-1, -1, *logits.shape[2:])
    return out.scatter(1, index, logits)


class ClassLogits(NamedTuple):
    """Per-class logits of a batch, of the classes the head kept.

    Attributes:
        logits (Tensor): (B, K, H, W).
        kept (Tensor, optional): (B, K) vocabulary index of each row; None: every class, K = T.
        fill_value (float): The logit of every class not kept (a constant, known without
            computing it).
        num_classes (int, optional): T; None: K.
    """

    logits: Tensor
    kept: Optional[Tensor] = None
    fill_value: float = 0.0
    num_classes: Optional[int] = None

    def dense(self) -> Tensor:
        """The logits of every class, (B, T, H, W): ``fill_value`` for those not kept."""
        if self.kept is None:
            return self.logits
        return scatter_classes(self.logits, self.kept, self.num_classes, self.fill_value)


class CostEmbedding(nn.Module):
    """One 7x7 convolution over the P prompt channels of each class's cost slice (paper §3.2).

    Args:
        num_prompts (int): P, input channels.
        embed_dims (int): d_F, output channels.
        kernel_size (int): Defaults to 7 (official ``conv1``).
    """

    def __init__(self, num_prompts: int, embed_dims: int, kernel_size: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(num_prompts, embed_dims, kernel_size, padding=kernel_size // 2)

    def forward(self, cost: Tensor) -> Tensor:
        """Cost (B, P, T, H, W) -> embedding, channels last, (B, T, H, W, C)."""
        batch, prompts, classes, height, width = cost.shape
        if prompts != self.conv.in_channels:
            raise ValueError(f'the cost volume has {prompts} prompt channels but the head was '
                             f'built with num_prompts={self.conv.in_channels}; make them match '
                             'the text encoder templates')
        slices = cost.transpose(1, 2).reshape(batch * classes, prompts, height, width)
        embed = self.conv(slices).view(batch, classes, -1, height, width)
        return embed.permute(0, 1, 3, 4, 2)
