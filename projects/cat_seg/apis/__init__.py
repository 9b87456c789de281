"""User-facing inference: the inferencer, image reading and pictures of results."""
from .image_io import ImageReadError, expand_inputs, load_rgb
from .inferencer import CATSegInferencer, ImageFailure, Segmentation, save_segmentation

__all__ = ['CATSegInferencer', 'ImageFailure', 'ImageReadError', 'Segmentation', 'expand_inputs',
           'load_rgb', 'save_segmentation']
