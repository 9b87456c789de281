"""Pictures of a segmentation: coloured overlay with a legend."""
import colorsys
from typing import Dict, List

import numpy as np
from PIL import Image, ImageDraw, ImageFont

BLEND_ROWS = 256


def class_palette(num_classes: int) -> np.ndarray:
    """Distinct, stable colours (T, 3) uint8: hues spread by the golden ratio."""
    hues = (np.arange(num_classes) * 0.618033988749895) % 1.0
    rows = [colorsys.hsv_to_rgb(h, 0.75 if i % 2 else 0.95, 0.95 if i % 3 else 0.8)
            for i, h in enumerate(hues)]
    return (np.array(rows).reshape(-1, 3) * 255).astype(np.uint8)


def region_boundaries(label_map: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels whose right or lower neighbour has another class."""
    edges = np.zeros(label_map.shape, dtype=bool)
    edges[:, :-1] |= label_map[:, 1:] != label_map[:, :-1]
    edges[:-1] |= label_map[1:] != label_map[:-1]
    return edges


def legend_font(image_height: int) -> ImageFont.ImageFont:
    """A font that stays legible relative to the picture: about 1/32 of its height, >= 12 px
    (Pillow's scalable default font; its bitmap font where FreeType is missing)."""
    size = max(12, round(image_height / 32))
    try:
        return ImageFont.load_default(size=size)
    except (ImportError, TypeError):
        return ImageFont.load_default()


def overlay_with_legend(rgb: np.ndarray, label_map: np.ndarray, present: List[Dict],
                        num_classes: int, opacity: float = 0.5) -> Image.Image:
    """The image blended with class colours, region outlines in white, and a legend of the
    classes present (colour, name, pixel share), largest first.

    Args:
        rgb (np.ndarray): (H, W, 3) uint8.
        label_map (np.ndarray): (H, W) class indices.
        present (list[dict]): ``Segmentation.present_classes()`` entries (name, index, share).
        num_classes (int): T, for the palette.
        opacity (float): Weight of the class colours, in [0, 1].
    """
    palette = class_palette(num_classes)
    blended = np.empty_like(rgb)
    for top in range(0, rgb.shape[0], BLEND_ROWS):   # bands: a large photo needs no float copy
        rows = slice(top, top + BLEND_ROWS)
        blended[rows] = (rgb[rows] * (1 - opacity) + palette[label_map[rows]] * opacity)
    if opacity > 0:
        blended[region_boundaries(label_map)] = 255
    picture = Image.fromarray(blended)
    font = legend_font(picture.height)
    size = int(font.size) if hasattr(font, 'size') else 11
    row, pad = size + size // 2, size // 2
    entries = [f"{c['name']}  {c['share']:.1%}" for c in present]
    text_width = max((int(font.getlength(e)) for e in entries), default=60)
    legend_width = 2 * pad + size + pad + text_width
    canvas = Image.new('RGB', (picture.width + legend_width,
                               max(picture.height, row * len(present) + 2 * pad)), 'white')
    canvas.paste(picture, (0, 0))
    draw = ImageDraw.Draw(canvas)
    x = picture.width + pad
    for i, (entry, text) in enumerate(zip(present, entries)):
        y = pad + i * row
        draw.rectangle([x, y, x + size, y + size], outline='black',
                       fill=tuple(int(c) for c in palette[entry['index']]))
        draw.text((x + size + pad, y), text, fill='black', font=font)
    return canvas
