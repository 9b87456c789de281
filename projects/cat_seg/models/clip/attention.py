"""CLIP self-attention with separate query/key/value projection weights.

open_clip blocks use ``nn.MultiheadAttention``, whose input projection is one packed
``in_proj_weight`` (3W, W). CAT-Seg fine-tunes only the query and value rows (paper §3.5, release
``CLIP_FINETUNE: attention``); with a packed matrix that cannot be a ``requires_grad`` flag, and
masking the gradient would still let AdamW's decoupled weight decay move the frozen key rows. So
the three matrices are separate parameters here, named as in the official checkpoints
(``q_proj_weight``, ``k_proj_weight``, ``v_proj_weight``), and a packed ``in_proj_weight`` found
while loading (OpenAI / open_clip weights) is split on the fly by ``split_packed_qkv``, which
the weights package also uses for whole checkpoints (the layout is this module's to define).
"""
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PROJECTIONS = ('q', 'k', 'v')
PACKED_WEIGHT = 'in_proj_weight'


def split_packed_qkv(key: str, packed: Tensor) -> Dict[str, Tensor]:
    """A packed ``<prefix>in_proj_weight`` (3W, W), rows q, k, v, as the separate weights of
    ``SplitQKVAttention``: ``{'<prefix>q_proj_weight': (W, W), ...k..., ...v...}``."""
    prefix = key[:-len(PACKED_WEIGHT)]
    return {f'{prefix}{name}_proj_weight': weight
            for name, weight in zip(PROJECTIONS, packed.chunk(3))}


class SplitQKVAttention(nn.Module):
    """Batch-first multi-head self-attention, a drop-in for open_clip's ``nn.MultiheadAttention``.

    Args:
        embed_dims (int): Token width W.
        num_heads (int): Number of heads; must divide W.
    """

    def __init__(self, embed_dims: int, num_heads: int):
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'num_heads={num_heads} must divide the CLIP width {embed_dims}')
        self.num_heads = num_heads
        for name in PROJECTIONS:
            self.register_parameter(f'{name}_proj_weight',
                                    nn.Parameter(torch.empty(embed_dims, embed_dims)))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * embed_dims))
        self.out_proj = nn.Linear(embed_dims, embed_dims)
        for name in PROJECTIONS:
            nn.init.xavier_uniform_(getattr(self, f'{name}_proj_weight'))

    @classmethod
    def from_multihead(cls, attn: nn.MultiheadAttention) -> 'SplitQKVAttention':
        """Copy the weights of a packed ``nn.MultiheadAttention`` (batch-first self-attention)."""
        split = cls(attn.embed_dim, attn.num_heads)
        split.load_state_dict(attn.state_dict())
        return split

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        if prefix + PACKED_WEIGHT in state_dict:
            key = prefix + PACKED_WEIGHT
            state_dict.update(split_packed_qkv(key, state_dict.pop(key)))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def project(self, x: Tensor, name: str) -> Tensor:
        """Input projection ``name`` in ('q', 'k', 'v') of tokens (B, L, W) -> (B, L, W)."""
        index = PROJECTIONS.index(name)
        bias = self.in_proj_bias.chunk(3)[index]
        return F.linear(x, getattr(self, f'{name}_proj_weight'), bias)

    def forward(self,
                query: Tensor,
                key: Optional[Tensor] = None,
                value: Optional[Tensor] = None,
                need_weights: bool = False,
                attn_mask: Optional[Tensor] = None) -> Tuple[Tensor, None]:
        """Self-attention over tokens (B, L, W); returns ``(out, None)`` like
        ``nn.MultiheadAttention`` so open_clip's blocks call it unchanged."""
        if (key is not None and key is not query) or (value is not None and value is not query):
            raise ValueError('SplitQKVAttention computes self-attention only; key and value must '
                             'be the query tensor or None')
        if need_weights:
            raise ValueError('SplitQKVAttention does not return attention weights; '
                             'call it with need_weights=False')
        batch, length, width = query.shape
        heads = [self.project(query, name).view(batch, length, self.num_heads, -1).transpose(1, 2)
                 for name in PROJECTIONS]
        out = F.scaled_dot_product_attention(*heads, attn_mask=attn_mask)
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, width)), None


def split_qkv_(transformer: nn.Module) -> nn.Module:
    """Replace the packed attention of every block of an open_clip ``Transformer``, in place."""
    for block in transformer.resblocks:
        block.attn = SplitQKVAttention.from_multihead(block.attn)
    return transformer
