"""From the model's logits to what ``CATSeg.predict`` returns: class probabilities, resized to
the original image, and their argmax.

Maps travel in :class:`ClassMaps` groups: a group names its classes, so the classes the release
drops beyond ``pad_len`` (whose logit is one known constant in every view) share one map and are
never upsampled or merged one by one.
"""
from typing import Iterable, List, NamedTuple, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..head.cost_volume import ClassLogits


class ClassMaps(NamedTuple):
    """Maps of some classes of the vocabulary.

    Attributes:
        classes (Tensor): Vocabulary indices, (t,) int64, ascending.
        maps (Tensor): (..., t, h, w), one map per class, or (..., 1, h, w), one map shared by
            all of ``classes``.
    """

    classes: Tensor
    maps: Tensor


def class_probabilities(logits: Tensor) -> Tensor:
    """Per-class probabilities of logits (..., T, H, W): each class is an independent binary
    (sigmoid) score, as ``CATSegBCELoss`` trains it; they need not sum to 1."""
    return logits.sigmoid()


def image_class_maps(logits: ClassLogits, index: int) -> List[ClassMaps]:
    """Image ``index``'s logits in groups: the kept classes in ascending order, then one shared
    map of the fill value for every class not kept (if any)."""
    maps = logits.logits[index]                                            # (K, h, w)
    if logits.kept is None:
        return [ClassMaps(torch.arange(maps.shape[0], device=maps.device), maps)]
    kept, order = logits.kept[index].sort()
    constant = maps.new_full((1, *maps.shape[1:]), logits.fill_value)
    return [ClassMaps(kept, maps[order]),
            *shared_group(kept, logits.num_classes, constant)]


def shared_group(kept: Tensor, num_classes: int, shared_map: Tensor) -> List[ClassMaps]:
    """``[ClassMaps(classes not in kept, shared_map)]``, or ``[]`` when every class is kept."""
    dropped = torch.ones(num_classes, dtype=torch.bool, device=kept.device)
    dropped[kept] = False
    classes = dropped.nonzero()[:, 0]
    return [ClassMaps(classes, shared_map)] if len(classes) else []


def dense_maps(groups: Sequence[ClassMaps], num_classes: int) -> Tensor:
    """The maps of every class, (..., T, h, w), from groups covering the vocabulary."""
    if len(groups) == 1:            # every class, in order
        return groups[0].maps
    first = groups[0].maps
    out = first.new_empty((*first.shape[:-3], num_classes, *first.shape[-2:]))
    for classes, maps in groups:
        out[..., classes, :, :] = maps                                    # a shared map broadcasts
    return out


def to_original(prob: Tensor, meta: dict) -> Tensor:
    """Resize (T, h, w) probabilities straight to ``ori_shape`` and undo a test-time flip."""
    prob = F.interpolate(prob[None], size=tuple(meta['ori_shape'][:2]), mode='bilinear',
                         align_corners=False)[0]
    if meta.get('flip', False):
        prob = prob.flip(-1 if meta.get('flip_direction') == 'horizontal' else -2)
    return prob


def argmax_at_original(groups: Iterable[ClassMaps], meta: dict, num_classes: int,
                       max_bytes: int = 0) -> Tuple[Tensor, Tensor]:
    """``to_original(probs).argmax(0)`` (1, H, W) and the classes' mean probabilities (T,) of
    probabilities (t, h, w) given in groups, upsampling as many classes at a time as fit in
    ``max_bytes`` (at least one): memory is that plus two maps at ``ori_shape``, whatever T.

    Groups of one map per class must come in ascending class order, a shared group last (as
    :func:`image_class_maps` and ``patch_inference.fused_chunks`` yield them): ties then go to
    the smaller class index, as in one argmax.
    """
    height, width = meta['ori_shape'][:2]
    group_size = max(1, max_bytes // (height * width * 4))
    best, label, indices, means = None, None, [], []
    for classes, maps in groups:
        shared = maps.shape[0] < len(classes)
        for start in range(0, maps.shape[0], group_size):
            value = to_original(maps[start:start + group_size], meta)         # (g, H, W)
            index = classes if shared else classes[start:start + group_size]
            indices.append(index)
            means.append(value.flatten(1).mean(1).expand(len(index)))
            if best is None:
                best = value.new_full(value.shape[1:], float('-inf'))
                label = torch.zeros(best.shape, dtype=torch.long, device=best.device)
            if value.shape[0] == 1:
                better = value[0] > best
                if shared:   # equal maps: the first of the classes stands for them all
                    better |= (value[0] == best) & (label > index[0])
                label.masked_fill_(better, index[0])
                torch.maximum(best, value[0], out=best)
            else:   # ascending classes: strictly greater keeps the earlier class on ties
                group_best, position = value.max(0)        # the first of equal maxima
                torch.where(group_best > best, index[position], label, out=label)
                torch.maximum(best, group_best, out=best)
    scores = best.new_empty(num_classes)
    scores[torch.cat(indices)] = torch.cat(means)
    return label[None], scores
