"""A straightforward CAT-Seg head forward, written for clarity, not speed, to check the optimized
``CATSegHead`` against: classes folded into the batch with the guidance repeated for every class
and concatenated, the shifted windows made by rolling the normalised tokens, softmax attention written out,
class padding materialised as pad_len - T copies of the padding token, linear attention in its
pairwise form, the decoder's guidance concatenated per class. Evaluation mode only (no pooling).
"""
import torch
import torch.nn.functional as F
from torch import Tensor

from cat_seg.models.catseg_head import DROPPED_CLASS_LOGIT, CATSegHead, CATSegHeadInputs


def linear_on_concat(layer, x: Tensor, guidance) -> Tensor:
    """The full (unsplit) weight applied to concat([x, guidance])."""
    if guidance is not None:
        x = torch.cat([x, guidance.expand(*x.shape[:-1], guidance.shape[-1])], dim=-1)
    return F.linear(x, layer.weight, layer.bias)


def window_regions(height: int, width: int, window: int, shift: int) -> Tensor:
    """Region id of every pixel of the rolled grid: windows only attend within one region."""
    ids = torch.zeros(height, width)
    for i, rows in enumerate((slice(0, height - window), slice(height - window, height - shift),
                              slice(height - shift, height))):
        for j, cols in enumerate((slice(0, width - window), slice(width - window, width - shift),
                                  slice(width - shift, width))):
            ids[rows, cols] = 3 * i + j
    return ids


def swin_block(block, tokens: Tensor, guidance) -> Tensor:
    """One (shifted) window block, tokens (N, H, W, C) with guidance (N, H, W, C_g)."""
    batch, height, width, channels = tokens.shape
    window = min(block.window_size, height, width)
    shift = block.shift if min(height, width) > block.window_size else 0
    y, g = block.norm1(tokens), guidance
    if shift:
        y = y.roll((-shift, -shift), dims=(1, 2))
        g = g.roll((-shift, -shift), dims=(1, 2)) if g is not None else None
    q = linear_on_concat(block.attn.q, y, g)
    k = linear_on_concat(block.attn.k, y, g)
    v = block.attn.v(y)
    regions = (window_regions(height, width, window, shift) if shift
               else torch.zeros(height, width))
    out = torch.zeros_like(q)
    heads, dims = block.num_heads, channels // block.num_heads
    for top in range(0, height, window):
        for left in range(0, width, window):
            area = (slice(None), slice(top, top + window), slice(left, left + window))
            qw, kw, vw = (t[area].reshape(batch, -1, heads, dims).transpose(1, 2)
                          for t in (q, k, v))
            ids = regions[area[1:]].flatten()
            logits = qw @ kw.transpose(-1, -2) / dims ** 0.5
            logits = logits + (ids[:, None] != ids[None, :]) * -100.0
            result = logits.softmax(-1) @ vw                       # (B, heads, N, d)
            out[area] = result.transpose(1, 2).reshape(batch, window, window, channels)
    if shift:
        out = out.roll((shift, shift), dims=(1, 2))
    tokens = tokens + block.attn.proj(out)
    return tokens + block.mlp(block.norm2(tokens))


def class_layer(agg, x: Tensor, text) -> Tensor:
    """Linear attention across the (padded) classes at every pixel, x (B, T, H, W, C)."""
    batch, classes, height, width, channels = x.shape
    sequence, guidance = x, (text[:, :, None, None] if text is not None else None)
    if agg.pad_len and classes < agg.pad_len:
        pads = agg.pad_len - classes
        sequence = torch.cat([x, agg.padding_tokens.view(1, 1, 1, 1, -1).expand(
            batch, pads, height, width, channels)], dim=1)
        if guidance is not None:
            guidance = torch.cat([guidance, agg.padding_guidance.view(1, 1, 1, 1, -1).expand(
                batch, pads, 1, 1, -1)], dim=1)
    y = agg.norm1(sequence)
    heads, dims = agg.num_heads, channels // agg.num_heads

    def split(t):   # (B, S, H, W, C) -> (B, H, W, heads, S, d)
        return t.unflatten(-1, (heads, dims)).permute(0, 2, 3, 4, 1, 5)

    q = F.elu(split(linear_on_concat(agg.attn.q, y, guidance))) + 1
    k = F.elu(split(linear_on_concat(agg.attn.k, y, guidance))) + 1
    v = split(agg.attn.v(y))
    weights = q @ k.transpose(-1, -2)                                  # (B, H, W, h, S, S)
    out = (weights @ v) / (weights.sum(-1, keepdim=True) + 1e-6)
    out = out.permute(0, 4, 1, 2, 3, 5).flatten(-2)                    # (B, S, H, W, C)
    tokens = sequence + out
    tokens = tokens + agg.mlp(agg.norm2(tokens))
    return x + tokens[:, :classes]


def decoder(dec, x: Tensor, guidance) -> Tensor:
    """Every class through the stages with the guidance repeated and concatenated,
    (B, T, C, H, W) -> logits (B, T, H', W')."""
    batch, classes = x.shape[:2]
    y = x.flatten(0, 1)
    for stage, proj, level in zip(dec.stages, dec.guidance_projs, guidance):
        y = stage.up(y)
        if stage.guidance_channels:
            y = torch.cat([y, proj(level).repeat_interleave(classes, dim=0)], dim=1)
        y = stage.convs(y)
    return dec.cls_conv(y).view(batch, classes, *y.shape[-2:])


@torch.no_grad()
def reference_head_forward(head: CATSegHead, inputs: CATSegHeadInputs) -> Tensor:
    """What ``head(inputs)`` computes in eval mode, (B, T, H * 2**N_U, W * 2**N_U)."""
    feats, text_embeds, guidance = inputs
    num_classes = text_embeds.shape[1]
    image = F.normalize(feats, dim=1)
    texts = F.normalize(text_embeds, dim=-1)
    cost = torch.einsum('bchw,btpc->bpthw', image, texts)
    kept = None
    if head.pad_len and num_classes > head.pad_len and not head.keep_all_classes:
        scores = cost.amax(dim=(1, 3, 4))                                 # (B, T)
        kept = scores.topk(head.pad_len, dim=-1, sorted=False).indices
        texts = F.normalize(torch.stack([t[k] for t, k in zip(texts, kept)]), dim=-1)
        cost = torch.einsum('bchw,btpc->bpthw', image, texts)
    x = torch.stack([head.cost_embed.conv(cost[:, :, t]) for t in range(cost.shape[2])], dim=1)
    x = x.permute(0, 1, 3, 4, 2)                                          # (B, T, H, W, C)
    spatial = (head.spatial_guidance_proj(guidance.spatial).permute(0, 2, 3, 1)
               if head.spatial_guidance_proj is not None else None)
    text = (head.text_guidance_proj(F.normalize(texts.mean(dim=2), dim=-1))
            if head.text_guidance_proj is not None else None)
    batch, classes = x.shape[:2]
    for layer in head.layers:
        agg = layer.spatial_agg
        g = (agg.guidance_norm(spatial).repeat_interleave(classes, dim=0)
             if agg.guidance_norm is not None else None)
        tokens = x.flatten(0, 1)                                          # (B * T, H, W, C)
        for block in agg.blocks:
            tokens = swin_block(block, tokens, g)
        x = class_layer(layer.class_agg, tokens.unflatten(0, (batch, classes)), text)
    logits = decoder(head.decoder, x.permute(0, 1, 4, 2, 3), guidance.decoder)
    if kept is not None:
        full = logits.new_full((logits.shape[0], num_classes, *logits.shape[2:]),
                               DROPPED_CLASS_LOGIT)
        for b in range(logits.shape[0]):
            full[b, kept[b]] = logits[b]
        logits = full
    return logits
