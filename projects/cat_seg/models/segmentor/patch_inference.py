"""Patch inference (paper App. A.3): overlapping crops of a resized image plus one global view.

The official evaluation (fixture README §9) resizes the image to 640x640, runs 384x384 windows at
stride 256 and the whole image resized to 384x384, turns each view's logits into probabilities at
crop resolution, averages the overlapping windows and finally averages local and global maps.
"""
from typing import Callable, Iterator, List, NamedTuple, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from ..head.cost_volume import ClassLogits
from .postprocessing import ClassMaps, class_probabilities, dense_maps, shared_group


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
        logits (Tensor): (V, B, K, h, w), views in window order, the global view last.
        kept (Tensor, optional): (V, B, K) class of each row of ``logits``; None: K = T, every
            class in order. The classes not kept have the logit ``fill_value`` everywhere.
        fill_value (float): The logit of the classes not kept.
        num_classes (int): T.
        offsets (list): Top-left (y, x) of each window in the resized image.
        count (Tensor): (1, 1, *resize_to), windows covering each pixel.
        crop_size, resize_to (tuple[int, int]): As given to :func:`patch_logits`.
        with_global_view (bool): Whether the last view is the global one.
    """

    logits: Tensor
    kept: Optional[Tensor]
    fill_value: float
    num_classes: int
    offsets: List[Tuple[int, int]]
    count: Tensor
    crop_size: Tuple[int, int]
    resize_to: Tuple[int, int]
    with_global_view: bool


def patch_logits(images: Tensor,
                 logits_fn: Callable[[Tensor], Union[Tensor, ClassLogits]],
                 crop_size: Tuple[int, int],
                 stride: Tuple[int, int],
                 resize_to: Tuple[int, int],
                 with_global_view: bool = True) -> PatchLogits:
    """Logits of every view of a batch, in one call of ``logits_fn``.

    Args:
        images (Tensor): Normalised images, (B, 3, H, W), any H, W.
        logits_fn (Callable): Maps views (N, 3, h_c, w_c) to logits (N, T, h, w), or to the
            ``ClassLogits`` of the classes each view kept.
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
    out = logits_fn(torch.cat(views))
    out = ClassLogits(out) if isinstance(out, Tensor) else out
    logits = out.logits.view(len(views), batch_size, *out.logits.shape[1:])
    kept = None if out.kept is None else out.kept.view(len(views), batch_size, -1)
    count = logits.new_zeros((1, 1, *resize_to))
    for y, x in offsets:
        count[:, :, y:y + crop_size[0], x:x + crop_size[1]] += 1
    return PatchLogits(logits, kept, out.fill_value, out.num_classes or logits.shape[2],
                       offsets, count, tuple(crop_size), tuple(resize_to), with_global_view)


def fused_chunks(patches: PatchLogits,
                 class_chunk_size: Optional[int] = None) -> Iterator[ClassMaps]:
    """Fused probabilities (B, t, *resize_to) of ``class_chunk_size`` classes at a time (None:
    all), so the crop-resolution maps of every view, or the fused maps of every class, need
    not exist at once; in ascending class order.

    With ``patches.kept``, only the classes some view kept are merged class by class; every
    other class has the fill logit in every view, and one merged map, yielded last, serves
    them all.
    """
    logits = patches.logits.float()
    if patches.kept is None:
        classes = torch.arange(logits.shape[2], device=logits.device)
    else:
        classes = patches.kept.unique()                      # sorted
        logits = _rows_of(logits, patches.kept, classes, patches.fill_value)
    class_chunk_size = class_chunk_size or len(classes)
    for start in range(0, len(classes), class_chunk_size):
        yield ClassMaps(classes[start:start + class_chunk_size],
                        _merge(logits[:, :, start:start + class_chunk_size], patches))
    if patches.kept is not None:
        constant = logits.new_full((*logits.shape[:2], 1, *logits.shape[3:]),
                                   patches.fill_value)
        yield from shared_group(classes, patches.num_classes, _merge(constant, patches))


def _rows_of(logits: Tensor, kept: Tensor, classes: Tensor, fill_value: float) -> Tensor:
    """View logits (V, B, K) of the ``kept`` classes as rows of ``classes`` (A,), sorted:
    (V, B, A, h, w), ``fill_value`` where a view did not keep the class."""
    rows = logits.new_full((*logits.shape[:2], len(classes), *logits.shape[3:]), fill_value)
    position = torch.searchsorted(classes, kept)[..., None, None].expand_as(logits)
    return rows.scatter_(2, position, logits)


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
    return dense_maps(list(fused_chunks(patches, class_chunk_size)), patches.num_classes)


def _merge(logits: Tensor, patches: PatchLogits) -> Tensor:
    """Logits (V, B, t, h, w) of the views -> fused probabilities (B, t, *resize_to)."""
    crop_size, resize_to = patches.crop_size, patches.resize_to
    probs = class_probabilities(F.interpolate(logits.flatten(0, 1), size=crop_size,
                                              mode='bilinear', align_corners=False))
    probs = probs.view(*logits.shape[:3], *crop_size)
    local = probs.new_zeros((*probs.shape[1:3], *resize_to))
    for view_probs, (y, x) in zip(probs, patches.offsets):
        local[:, :, y:y + crop_size[0], x:x + crop_size[1]] += view_probs
    local /= patches.count.float()
    if not patches.with_global_view:
        return local
    global_probs = F.interpolate(probs[-1], size=resize_to, mode='bilinear', align_corners=False)
    return (local + global_probs) / 2
