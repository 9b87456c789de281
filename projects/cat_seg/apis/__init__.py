"""User-facing inference: the inferencer, image reading and pictures of results."""
from .image_io import expand_inputs, load_rgb
from .inferencer import CATSegInferencer, Segmentation, save_segmentation

__all__ = ['CATSegInferencer', 'Segmentation', 'expand_inputs', 'load_rgb', 'save_segmentation']
