"""``CATSeg.test_cfg`` as one validated, typed object: every inference option and its default."""
from dataclasses import dataclass, fields
from typing import Mapping, Optional, Tuple

import torch

TEST_MODES = ('whole', 'slide')
# precision -> autocast dtype of the forward pass (None: float32 throughout).
PRECISIONS = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}
WHOLE_OUTPUTS = ('stretch_padded', 'crop_padding')
SLIDE_KEYS = ('crop_size', 'stride', 'resize_to')


@dataclass(frozen=True)
class InferenceSettings:
    """How ``CATSeg.predict`` runs (paper App. A.3 for the sliding windows).

    Attributes:
        mode (str): 'whole' (one view per image) or 'slide' (windows plus a global view).
        crop_size, stride, resize_to (tuple[int, int], optional): Slide windows (h, w), their
            stride, and the size the image is resized to first, e.g. (384, 384), (256, 256),
            (640, 640) in the official evaluation. Required for 'slide'.
        with_global_view (bool): Slide mode also averages in the whole image as one view.
        whole_output (str): 'stretch_padded' (release: the map of the padded image is
            stretched over the image) or 'crop_padding'.
        return_probs (bool): Keep the (T, H, W) probabilities at ``ori_shape``; False keeps
            the argmax and each class's mean probability only (benchmarks, inferencer).
        precision (str): 'fp32', or 'bf16' / 'fp16' to run the forward pass under autocast.
    """

    mode: str = 'whole'
    crop_size: Optional[Tuple[int, int]] = None
    stride: Optional[Tuple[int, int]] = None
    resize_to: Optional[Tuple[int, int]] = None
    with_global_view: bool = True
    whole_output: str = 'stretch_padded'
    return_probs: bool = True
    precision: str = 'fp32'

    @classmethod
    def from_cfg(cls, cfg: Optional[Mapping]) -> 'InferenceSettings':
        """Validate a ``test_cfg`` dict (None: the defaults); errors name the key and choices."""
        cfg = dict(cfg or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ValueError(f'test_cfg has unknown keys {unknown}; known: {sorted(known)}')
        for key in SLIDE_KEYS:
            if cfg.get(key) is not None:
                cfg[key] = positive_pair(f'test_cfg.{key}', cfg[key])
        settings = cls(**cfg)
        if settings.crop_size and settings.stride and any(
                s > c for s, c in zip(settings.stride, settings.crop_size)):
            # A stride beyond the window would leave pixels that no window covers.
            raise ValueError(f'test_cfg.stride={settings.stride} is larger than test_cfg.'
                             f'crop_size={settings.crop_size}; use a stride no larger than the '
                             'crop in each dimension, e.g. stride=(256, 256) for (384, 384)')
        for name, value, choices in (('mode', settings.mode, TEST_MODES),
                                     ('precision', settings.precision, list(PRECISIONS)),
                                     ('whole_output', settings.whole_output, WHOLE_OUTPUTS)):
            if value not in choices:
                raise ValueError(f'test_cfg.{name}={value!r} is not one of {list(choices)}')
        missing = [k for k in SLIDE_KEYS if getattr(settings, k) is None]
        if settings.mode == 'slide' and missing:
            raise ValueError(f'test_cfg.mode="slide" needs {missing}, e.g. crop_size=(384, 384), '
                             'stride=(256, 256), resize_to=(640, 640)')
        return settings


def positive_pair(key: str, value) -> Tuple[int, int]:
    """``value`` as an (h, w) pair of positive ints; the error names ``key`` and ``value``."""
    pair = tuple(value) if isinstance(value, (list, tuple)) else None
    if pair is None or len(pair) != 2 or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in pair):
        raise ValueError(f'{key}={value!r} must be a pair (h, w) of positive integers, '
                         'e.g. (384, 384)')
    return pair
