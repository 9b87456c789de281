"""Patch inference (paper App. A.3): overlapping crops of a resized image plus one global view.

The official evaluation (fixture README §9) resizes the image to 640x640, runs 384x384 windows at
stride 256 and the whole image resized to 384x384, turns each view's logits into probabilities at
crop resolution, averages the overlapping windows and finally averages local and global maps.
"""
from typing import Callable, Iterator, List, NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .postprocessing import class_probabilities


def window_offsets(size: Tuple[int, int], crop_size: Tuple[int, int],
                   stride: Tuple[int, int]) -> List[Tuple[int, int]]:
    """Top-left (y, x) corners of the windows covering ``size``, row-major.

    The last window in each direction is aligned to the border, as mmseg's ``slide_inference``
    does; for 640 / 384 / 256 this is the official 2x2 grid (0, 256).
    """
    def starts(length: int, crop: int, step: int) -> List[int]:
        if crop > length:
            raise ValueError(f'crop_size {crop} is larger than the resized image side {length}; '
                             'use a test_cfg.resize_to at least as large as crop_size')
        count = -(-(length - crop) // step) + 1
        return [min(i * step, length - crop) for i in range(count)]

    return [(y, x) for y in starts(size[0], crop_size[0], stride[0])
            for x in starts(size[1], crop_size[1], stride[1])]


class PatchLogits(NamedTuple):
    """The views' logits of a batch and how to merge them.

    Attributes:
        logits (Tensor): (V, B, T, h, w), views in window order, the global view last.
        offsets (list): Top-left (y, x) of each window in the resized image.
        count (Tensor): (1, 1, *resize_to), windows covering each pixel.
        crop_size, resize_to (tuple[int, int]): As given to :func:`patch_logits`.
        with_global_view (bool): Whether the last view is the global one.
    """

    logits: Tensor
    offsets: List[Tuple[int, int]]
    count: Tensor
    crop_size: Tuple[int, int]
    resize_to: Tuple[int, int]
    with_global_view: bool


def patch_logits(images: Tensor,
                 logits_fn: Callable[[Tensor], Tensor],
                 crop_size: Tuple[int, int],
                 stride: Tuple[int, int],
                 resize_to: Tuple[int, int],
                 with_global_view: bool = True) -> PatchLogits:
    """Logits of every view of a batch, in one call of ``logits_fn``.

    Args:
        images (Tensor): Normalised images, (B, 3, H, W), any H, W.
        logits_fn (Callable): Maps views (N, 3, h_c, w_c) to logits (N, T, h, w).
        crop_size (tuple[int, int]): Window size (h_c, w_c), e.g. (384, 384).
        stride (tuple[int, int]): Window stride, e.g. (256, 256).
        resize_to (tuple[int, int]): Size the image is resized to before windowing, e.g. (640, 640).
        with_global_view (bool): Add the whole image resized to ``crop_size`` as one more view and
            average its map with the windows' map. Defaults to True.
    """
    batch_size = images.shape[0]
    resized = F.interpolate(images, size=resize_to, mode='bilinear', align_corners=False)
    offsets = window_offsets(resize_to, crop_size, stride)
    views = [resized[:, :, y:y + crop_size[0], x:x + crop_size[1]] for y, x in offsets]
    if with_global_view:
        views.append(F.interpolate(images, size=crop_size, mode='bilinear', align_corners=False))
    # One call for all views of all images: (V * B, 3, h_c, w_c), view-major.
    logits = logits_fn(torch.cat(views))
    logits = logits.view(len(views), batch_size, *logits.shape[1:])
    count = logits.new_zeros((1, 1, *resize_to))
    for y, x in offsets:
        count[:, :, y:y + crop_size[0], x:x + crop_size[1]] += 1
    return PatchLogits(logits, offsets, count, tuple(crop_size), tuple(resize_to),
                       with_global_view)


def fused_chunks(patches: PatchLogits,
                 class_chunk_size: Optional[int] = None) -> Iterator[Tensor]:
    """Fused probabilities (B, t, *resize_to) of ``class_chunk_size`` classes at a time (None:
    all), so the crop-resolution maps of every view, or the fused maps of every class, need
    not exist at once."""
    logits = patches.logits.float()
    class_chunk_size = class_chunk_size or logits.shape[2]
    for start in range(0, logits.shape[2], class_chunk_size):
        yield _merge_views(logits[:, :, start:start + class_chunk_size], patches.offsets,
                           patches.count.float(), patches.crop_size, patches.resize_to,
                           patches.with_global_view)


def patch_inference(images: Tensor,
                    logits_fn: Callable[[Tensor], Tensor],
                    crop_size: Tuple[int, int],
                    stride: Tuple[int, int],
                    resize_to: Tuple[int, int],
                    with_global_view: bool = True,
                    class_chunk_size: Optional[int] = None) -> Tensor:
    """Class probabilities of a batch by overlapping windows (+ a global view): the arguments
    of :func:`patch_logits`, merged by :func:`fused_chunks`.

    Returns:
        Tensor: Probabilities in [0, 1], (B, T, *resize_to).
    """
    patches = patch_logits(images, logits_fn, crop_size, stride, resize_to, with_global_view)
    return torch.cat(list(fused_chunks(patches, class_chunk_size)), dim=1)


def _merge_views(logits: Tensor, offsets: List[Tuple[int, int]], count: Tensor,
                 crop_size: Tuple[int, int], resize_to: Tuple[int, int],
                 with_global_view: bool) -> Tensor:
    """Logits (V, B, t, h, w) of the views -> fused probabilities (B, t, *resize_to)."""
    probs = class_probabilities(F.interpolate(logits.flatten(0, 1), size=crop_size,
                                              mode='bilinear', align_corners=False))
    probs = probs.view(*logits.shape[:3], *crop_size)
    local = probs.new_zeros((*probs.shape[1:3], *resize_to))
    for view_probs, (y, x) in zip(probs, offsets):
        local[:, :, y:y + crop_size[0], x:x + crop_size[1]] += view_probs
    local /= count
    if not with_global_view:
        return local
    global_probs = F.interpolate(probs[-1], size=resize_to, mode='bilinear', align_corners=False)
    return (local + global_probs) / 2
