"""Read any common image as RGB uint8, the way a photo viewer shows it."""
import re
import warnings
from pathlib import Path
from typing import List, Sequence, Union

import numpy as np
from PIL import Image, ImageOps

IMAGE_SUFFIXES = {'.jpg', '.jpeg', '.png', '.bmp', '.gif', '.tif', '.tiff', '.webp'}
ImageInput = Union[str, Path, np.ndarray]


class ImageReadError(ValueError):
    """An input that is not a readable image.

    Attributes:
        source (str): The path (or ``array_<k>`` for an array input).
        reason (str): Why, without the path, e.g. ``'empty file (0 bytes)'``.
    """

    def __init__(self, source: Union[str, Path], reason: str):
        super().__init__(f'{str(source)!r}: {reason}')
        self.source, self.reason = str(source), reason


def expand_inputs(inputs: Union[ImageInput, Sequence[ImageInput]]) -> List[ImageInput]:
    """One input or a list of them, with each directory replaced by its entries named like
    images (sorted by name). Missing files, and directories named like images, are kept: they
    fail, and are reported, one by one."""
    if isinstance(inputs, (str, Path, np.ndarray)):
        inputs = [inputs]
    expanded = []
    for item in inputs:
        if not isinstance(item, np.ndarray) and Path(item).is_dir() \
                and Path(item).suffix.lower() not in IMAGE_SUFFIXES:
            expanded += sorted(p for p in Path(item).iterdir()
                               if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            expanded.append(item)
    return expanded


def pixel_limit_reason(error: Exception) -> str:
    """Why an image over ``PIL.Image.MAX_IMAGE_PIXELS`` is refused, and how to raise the limit."""
    found = re.search(r'\((\d+) pixels\)', str(error))   # PIL's message names the pixel count
    size = f'{found[1]} pixels' if found else 'more pixels than allowed'
    return (f'{size}, over the limit of {Image.MAX_IMAGE_PIXELS} pixels (a guard against '
            'decompression bombs); if you trust this image, raise the limit with --max-pixels '
            f'{found[1] if found else "N"} (in Python: PIL.Image.MAX_IMAGE_PIXELS)')


def load_rgb(path: Union[str, Path]) -> np.ndarray:
    """An image file as RGB uint8 (H, W, 3).

    EXIF orientation is applied; grayscale, CMYK and palette images become RGB; transparency is
    composited on white; 16-bit images keep their top 8 bits, float images in [0, 1] are scaled
    to [0, 255]; of an animation, the first frame is read. Images over PIL's pixel limit
    (``PIL.Image.MAX_IMAGE_PIXELS``) are refused before they are decoded.

    Raises:
        ImageReadError: The path is missing, a directory, empty, over the pixel limit, or not a
            readable image (unknown format, truncated, corrupt, ...).
    """
    path = Path(path)
    if path.is_dir():
        raise ImageReadError(path, 'a directory, not an image file')
    if not path.is_file():
        raise ImageReadError(path, 'no such file')
    if path.stat().st_size == 0:
        raise ImageReadError(path, 'empty file (0 bytes)')
    try:
        with warnings.catch_warnings():
            # PIL only warns between its limit and twice that; here the limit is the limit.
            warnings.simplefilter('error', Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                # In place: a second copy of a 48-megapixel photo costs 144 MB.
                ImageOps.exif_transpose(image, in_place=True)
                return to_rgb(image)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
        raise ImageReadError(path, pixel_limit_reason(error)) from error
    except Exception as error:  # PIL's decoders raise many types on bad data; all mean "unreadable"
        raise ImageReadError(path, f'not a readable image ({type(error).__name__}: {error})') \
            from error


def check_rgb_array(array: np.ndarray, source: str) -> np.ndarray:
    """``array`` itself if it is an RGB uint8 image (H, W, 3).

    Raises:
        ImageReadError: Another dtype, layout or an empty image.
    """
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3 or not array.size:
        raise ImageReadError(source, f'expected an RGB uint8 array (H, W, 3), got {array.dtype} '
                                     f'of shape {array.shape}')
    return array


def to_rgb(image: Image.Image) -> np.ndarray:
    """A decoded PIL image of any mode as RGB uint8 (H, W, 3)."""
    if image.mode in ('I', 'F') or image.mode.startswith('I;16'):
        values = np.nan_to_num(np.asarray(image, dtype=np.float64))
        if image.mode == 'F':
            values *= 255 if values.max(initial=0) <= 1 else 1
        elif values.max(initial=0) > 255:
            values = values // 256   # 16-bit: the top 8 bits
        image = Image.fromarray(values.clip(0, 255).astype(np.uint8))
    if image.mode in ('RGBA', 'LA', 'PA', 'RGBa', 'La') or 'transparency' in image.info:
        rgba = image.convert('RGBA')
        background = Image.new('RGBA', rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image if image.mode == 'RGB' else image.convert('RGB'), dtype=np.uint8)
