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


def argmax_at_original(chunks: Iterable[Tensor], meta: dict) -> Tuple[Tensor, Tensor]:
    """``to_original(probs).argmax(0)`` (1, H, W) and the classes' mean probabilities (T,) of
    probabilities given in class chunks (t, h, w), upsampling one class at a time: memory is two
    maps at ``ori_shape`` plus one chunk, whatever T."""
    best, label, means = None, None, []
    for chunk in chunks:
        for prob in chunk:
            value = to_original(prob[None], meta)[0]
            means.append(value.mean())
            if best is None:
                best = value
                label = torch.zeros(best.shape, dtype=torch.long, device=best.device)
                continue
            # Strictly greater: on ties the earlier class wins, as in a single argmax.
            label.masked_fill_(value > best, len(means) - 1)
            torch.maximum(best, value, out=best)
    return label[None], torch.stack(means)
