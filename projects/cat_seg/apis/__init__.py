"""User-facing inference: the inferencer, image reading and pictures of results."""
from .image_io import load_rgb
from .inferencer import CATSegInferencer, Segmentation

__all__ = ['CATSegInferencer', 'Segmentation', 'load_rgb']
