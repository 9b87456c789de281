"""Class aggregation (paper §3.3, Eq. 3 and 4): linear attention across classes at each pixel
(or softmax attention, the official ATTENTION_TYPE "full").

No positional encoding is used over classes, so any number of classes in any order works and the
output is permutation-equivariant. The release pads the class axis to a fixed length with one
learned token (and learned guidance); every padding slot is identical, so here their keys and
values enter the attention sums once, multiplied by their count, and their outputs (discarded by
the release) are never computed.
"""
import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..execution import PLAIN_PLAN, ExecutionPlan, class_chunks, concat_classes
from ..fast_paths import elu_plus_one, feed_forward
from .fp32_layer_norm import Fp32LayerNorm
from .guided_linear import GuidedLinear

LINEAR_ATTENTION_EPS = 1e-6   # official LinearAttention eps
ATTENTION_TYPES = ('linear', 'full')   # official model.py AttentionLayer


def linear_attention(q: Tensor, k: Tensor, v: Tensor, padding: Optional[Tuple[Tensor, Tensor]],
                     length: int) -> Tensor:
    """Linear attention across classes (Katharopoulos et al., 2020) at each pixel.

    ``out_t = q_t . sum_s k_s v_s^T / (q_t . sum_s k_s + eps)`` over the ``length`` classes of the
    (padded) sequence, whose ``length - T`` padding slots share one key and value. The ratio is
    computed in a form that stays within float16's range: both sums are means (the official
    code divides the values by the length for this reason), and each query is divided by its
    own sum, so its products are weighted averages of the means; the eps is scaled alike.
    Under autocast it runs in fp32 and returns the values' dtype: in bf16 the sums over
    classes lose what tells the queries apart, and query and key gradients disagree with fp32.

    Args:
        q, k (Tensor): Feature-mapped (positive) queries and keys, (B, T, P, heads, d).
        v (Tensor): Values, (B, T, P, heads, d).
        padding (tuple[Tensor, Tensor], optional): Key and value of the padding slots, each
            (heads, d); None without padding.
        length (int | Tensor): Sequence length, T plus the padding slots; a 0-dim float
            tensor under ``any_class_count``.

    Returns:
        Tensor: (B, T, P, heads, d).
    """
    dtype = v.dtype
    with torch.autocast(q.device.type, enabled=False):
        q, k, v = q.float(), k.float(), v.float()
        kv = torch.einsum('btpnd,btpne->bpnde', k, v / length)         # (B, P, h, d, d)
        k_mean = k.mean(dim=1) * (k.shape[1] / length)                 # (B, P, h, d)
        if padding is not None:
            share = (length - k.shape[1]) / length
            pad_k, pad_v = (t.float() for t in padding)
            kv = kv + share * torch.einsum('nd,ne->nde', pad_k, pad_v)
            k_mean = k_mean + share * pad_k
        q_sum = q.sum(dim=-1)                                          # (B, T, P, h)
        q = q / q_sum[..., None]
        normaliser = (torch.einsum('btpnd,bpnd->btpn', q, k_mean)
                      + LINEAR_ATTENTION_EPS / length / q_sum)
        out = torch.einsum('btpnd,bpnde->btpne', q, kv) / normaliser[..., None]
    return out.to(dtype)


def full_attention(q: Tensor, k: Tensor, v: Tensor, padding: Optional[Tuple[Tensor, Tensor]],
                   length: int) -> Tensor:
    """Softmax attention across classes at each pixel, scaled by 1/sqrt(d) (official
    ``FullAttention``).

    The ``length - T`` identical padding slots enter as one key whose logit is raised by
    log(length - T): its softmax weight is then that of all the copies together.

    Args:
        q, k, v (Tensor): Queries, keys and values, (B, T, P, heads, d).
        padding (tuple[Tensor, Tensor], optional): Key and value of the padding slots, each
            (heads, d); None without padding.
        length (int | Tensor): Sequence length, T plus the padding slots; a 0-dim float
            tensor under ``any_class_count``.

    Returns:
        Tensor: (B, T, P, heads, d).
    """
    q, k, v = (t.permute(0, 2, 3, 1, 4) for t in (q, k, v))               # (B, P, h, T, d)
    bias = None
    if padding is not None:
        slot = (*k.shape[:3], 1, k.shape[-1])
        k = torch.cat([k, padding[0][:, None].expand(slot)], dim=3)
        v = torch.cat([v, padding[1][:, None].expand(slot)], dim=3)
        bias = q.new_zeros(k.shape[3])
        slots = length - q.shape[3]
        # A tensor when traced (any_class_count); log(0) = -inf then gives the slot no weight.
        bias[-1] = slots.log() if isinstance(slots, Tensor) else math.log(slots)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias).permute(0, 3, 1, 2, 4)


class ClassAggregation(nn.Module):
    """Pre-norm linear-attention transformer layer over the class axis.

    Args:
        embed_dims (int): C.
        guidance_channels (int): Projected text guidance channels; 0 for none.
        num_heads (int): Attention heads.
        pad_len (int): Class sequences shorter than this are padded to it with a learned token
            (release: 256); 0 disables padding.
        mlp_ratio (float): MLP hidden width over C. Defaults to 4.
        attention_type (str): 'linear' (paper) or 'full' (softmax). Defaults to 'linear'.
    """

    def __init__(self, embed_dims: int, guidance_channels: int, num_heads: int,
                 pad_len: int, mlp_ratio: float = 4.0, attention_type: str = 'linear'):
        super().__init__()
        self.attention_type = attention_type
        self.num_heads, self.pad_len = num_heads, pad_len
        self.norm1 = Fp32LayerNorm(embed_dims)
        self.attn = nn.Module()
        self.attn.q = GuidedLinear(embed_dims, guidance_channels, embed_dims)
        self.attn.k = GuidedLinear(embed_dims, guidance_channels, embed_dims)
        self.attn.v = nn.Linear(embed_dims, embed_dims)
        self.norm2 = Fp32LayerNorm(embed_dims)
        hidden = int(embed_dims * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(embed_dims, hidden), nn.ReLU(),
                                 nn.Linear(hidden, embed_dims))
        self.padding_tokens = nn.Parameter(torch.zeros(1, 1, embed_dims)) if pad_len else None
        self.padding_guidance = (nn.Parameter(torch.zeros(1, 1, guidance_channels))
                                 if pad_len and guidance_channels else None)

    def forward(self, x: Tensor, guidance: Optional[Tensor], pool_size: Tuple[int, int],
                pixels_per_step: Optional[int] = None, plan: ExecutionPlan = PLAIN_PLAN,
                in_place: bool = False) -> Tensor:
        """One layer (paper Eq. 3, 4).

        Args:
            x (Tensor): Cost embedding, (B, T, H, W, C).
            guidance (Tensor, optional): Projected text guidance, (B, T, C_g).
            pool_size (tuple[int, int]): Average pooling over (H, W) before attention; the
                result is upsampled back (bilinear, align_corners=True) and added to ``x``.
            pixels_per_step (int, optional): Pixels (of the pooled grid) attended at a time, to
                bound memory for very long vocabularies; None: all at once.
            plan (ExecutionPlan): How to run it. Defaults to the plain plan.
            in_place (bool): Overwrite x with the result step by step (no autograd, no
                pooling), for a caller that owns x: a step reads only its own pixels.

        Returns:
            Tensor: (B, T, H, W, C).
        """
        pooled = self._pool(x, pool_size)
        tokens = pooled.flatten(2, 3)                                      # (B, T, h*w, C)
        text = guidance[:, :, None] if guidance is not None else None     # (B, T, 1, C_g)
        steps = class_chunks(tokens.shape[2], pixels_per_step)
        # tokens must be a view of x for its steps to land in x.
        if in_place and not torch.is_grad_enabled() and pooled is x and x.is_contiguous():
            for step in steps:
                tokens[:, :, step] += self._attend(tokens[:, :, step], text, plan)
            return x
        updated = concat_classes([self._attend(tokens[:, :, step], text, plan)
                                  for step in steps], dim=2)
        return x + self._unpool(updated.view(pooled.shape), x.shape[2:4])

    @staticmethod
    def _pool(x: Tensor, pool_size: Tuple[int, int]) -> Tensor:
        if tuple(pool_size) == (1, 1):
            return x
        batch, classes = x.shape[:2]
        pooled = F.avg_pool2d(x.permute(0, 1, 4, 2, 3).flatten(0, 1), pool_size)
        return pooled.unflatten(0, (batch, classes)).permute(0, 1, 3, 4, 2)

    @staticmethod
    def _unpool(x: Tensor, size: Tuple[int, int]) -> Tensor:
        """Pooled (B, T, h, w, C) back to ``size`` (bilinear, align_corners=True)."""
        if tuple(x.shape[2:4]) == tuple(size):
            return x
        batch, classes = x.shape[:2]
        x = F.interpolate(x.permute(0, 1, 4, 2, 3).flatten(0, 1), size, mode='bilinear',
                          align_corners=True)
        return x.unflatten(0, (batch, classes)).permute(0, 1, 3, 4, 2)

    def _attend(self, tokens: Tensor, text: Optional[Tensor], plan: ExecutionPlan) -> Tensor:
        """Attention across classes, then the MLP, for the tokens of a few pixels.

        Args:
            tokens (Tensor): (B, T, P, C), every class of P pixels.
            text (Tensor, optional): Text guidance, (B, T, 1, C_g).
            plan (ExecutionPlan): How to run it.

        Returns:
            Tensor: The updated tokens, residuals included, (B, T, P, C). The release adds the
            whole updated sequence, residuals included, to the layer input.
        """
        feature_map = elu_plus_one if plan.exp_elu else (lambda t: F.elu(t) + 1)
        attention = linear_attention
        if self.attention_type == 'full':
            feature_map, attention = (lambda t: t), full_attention
        y = self.norm1(tokens)
        q = feature_map(self._heads(self.attn.q(y, text)))                 # (B, T, P, h, d)
        k = feature_map(self._heads(self.attn.k(y, text)))
        v = self._heads(self.attn.v(y))
        classes = tokens.shape[1]
        if plan.any_class_count:
            # T is traced: no comparison with it; the padding term weighs 0 when T >= pad_len.
            # A float tensor: ONNX divides integer tensors as integers.
            length = torch.as_tensor(classes).clamp(min=self.pad_len).to(tokens.dtype)
            padding = self._padding_key_value(feature_map) if self.pad_len else None
        else:
            length = max(self.pad_len, classes)
            padding = self._padding_key_value(feature_map) if length > classes else None
        tokens = tokens + attention(q, k, v, padding, length).flatten(-2)
        y = self.norm2(tokens)
        if plan.mlp_rows_per_step:
            return tokens + feed_forward(y, *self.mlp, plan.mlp_rows_per_step)
        return tokens + self.mlp(y)

    def _heads(self, t: Tensor) -> Tensor:
        return t.unflatten(-1, (self.num_heads, -1))

    def _padding_key_value(self, feature_map) -> Tuple[Tensor, Tensor]:
        """Feature-mapped key and value of the (identical) padding slots, each (heads, d)."""
        y = self.norm1(self.padding_tokens[0, 0])
        k = self.attn.k(y, self.padding_guidance[0, 0] if self.padding_guidance is not None
                        else None)
        return feature_map(self._heads(k)), self._heads(self.attn.v(y))
