"""Read any common image as RGB uint8, the way a photo viewer shows it."""
from pathlib import Path
from typing import List, Sequence, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError


IMAGE_SUFFIXES = {'.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp'}
ImageInput = Union[str, Path, np.ndarray]


def expand_inputs(inputs: Union[ImageInput, Sequence[ImageInput]]) -> List[ImageInput]:
    """One input or a list of them, with each directory replaced by its image files (sorted by
    name). Missing files are kept: they fail, and are reported, one by one."""
    if isinstance(inputs, (str, Path, np.ndarray)):
        inputs = [inputs]
    expanded = []
    for item in inputs:
        if not isinstance(item, np.ndarray) and Path(item).is_dir():
            expanded += sorted(p for p in Path(item).iterdir()
                               if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            expanded.append(item)
    return expanded


def load_rgb(path: Union[str, Path]) -> np.ndarray:
    """An image file as RGB uint8 (H, W, 3).

    EXIF orientation is applied; grayscale and palette images become RGB; transparency is
    composited on white; 16-bit images are scaled to 8 bits.

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: The file is not a readable image (not an image, truncated, ...).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'image {str(path)!r} does not exist')
    try:
        with Image.open(path) as image:
            image.load()
            # In place: a second copy of a 48-megapixel photo costs 144 MB.
            ImageOps.exif_transpose(image, in_place=True)
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f'{str(path)!r} is not a readable image: {error}') from error
    if image.mode in ('I;16', 'I;16B', 'I;16L', 'I'):
        # 16-bit (or 32-bit integer) gray: keep the top 8 of 16 bits.
        array = np.asarray(image, dtype=np.int64)
        scale = 256 if array.max() > 255 else 1
        image = Image.fromarray((array // scale).clip(0, 255).astype(np.uint8))
    if image.mode in ('RGBA', 'LA', 'PA') or 'transparency' in image.info:
        rgba = image.convert('RGBA')
        background = Image.new('RGBA', rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image if image.mode == 'RGB' else image.convert('RGB'), dtype=np.uint8)
