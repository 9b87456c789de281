"""User-facing inference: the inferencer, image reading and pictures of results."""
from .image_io import ImageReadError, expand_inputs, load_rgb
from .inferencer import (CATSegInferencer, ImageFailure, PreparedImage, Segmentation,
                         save_segmentation)
from .text_cache import TextEmbeddingCache

__all__ = ['CATSegInferencer', 'ImageFailure', 'ImageReadError', 'PreparedImage', 'Segmentation',
           'TextEmbeddingCache', 'expand_inputs', 'load_rgb', 'save_segmentation']
