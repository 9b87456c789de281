"""From the model's logits to what ``CATSeg.predict`` returns: class probabilities, resized to
the original image, and their argmax."""
from typing import Iterable, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


def class_probabilities(logits: Tensor) -> Tensor:
    """Per-class probabilities of logits (..., T, H, W): each class is an independent binary
    (sigmoid) score, as ``CATSegBCELoss`` trains it; they need not sum to 1."""
    return logits.sigmoid()


def to_original(prob: Tensor, meta: dict) -> Tensor:
    """Resize (T, h, w) probabilities straight to ``ori_shape`` and undo a test-time flip."""
    prob = F.interpolate(prob[None], size=tuple(meta['ori_shape'][:2]), mode='bilinear',
                         align_corners=False)[0]
    if meta.get('flip', False):
        prob = prob.flip(-1 if meta.get('flip_direction') == 'horizontal' else -2)
    return prob


def argmax_at_original(chunks: Iterable[Tensor], meta: dict,
                       max_bytes: int = 0) -> Tuple[Tensor, Tensor]:
    """``to_original(probs).argmax(0)`` (1, H, W) and the classes' mean probabilities (T,) of
    probabilities given in class chunks (t, h, w), upsampling as many classes at a time as fit
    in ``max_bytes`` (at least one): memory is that plus two maps at ``ori_shape``, whatever T.
    """
    height, width = meta['ori_shape'][:2]
    group = max(1, max_bytes // (height * width * 4))
    best, label, means, offset = None, None, [], 0
    for chunk in chunks:
        for start in range(0, chunk.shape[0], group):
            value = to_original(chunk[start:start + group], meta)          # (g, H, W)
            means.append(value.flatten(1).mean(1))
            if best is None:
                best = value.new_full(value.shape[1:], float('-inf'))
                label = torch.zeros(best.shape, dtype=torch.long, device=best.device)
            # Strictly greater: on ties the earlier class wins, as in a single argmax.
            if value.shape[0] == 1:   # one class: no reduction, its index fills the label
                label.masked_fill_(value[0] > best, offset)
                torch.maximum(best, value[0], out=best)
            else:
                group_best, group_label = value.max(0)   # the first of equal maxima
                torch.where(group_best > best, group_label + offset, label, out=label)
                torch.maximum(best, group_best, out=best)
            offset += value.shape[0]
    return label[None], torch.cat(means)
