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


def overlay_with_legend(rgb: np.ndarray, label_map: np.ndarray, present: List[Dict],
                        num_classes: int, opacity: float = 0.5) -> Image.Image:
    """The image blended with class colours, plus a legend of the classes present.

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
    picture = Image.fromarray(blended)
    font = ImageFont.load_default()
    row = 18
    legend_width = 24 + max((int(font.getlength(f"{c['name']}  {c['share']:.1%}"))
                             for c in present), default=60)
    canvas = Image.new('RGB', (picture.width + legend_width + 16,
                               max(picture.height, row * len(present) + 16)), 'white')
    canvas.paste(picture, (0, 0))
    draw = ImageDraw.Draw(canvas)
    x = picture.width + 8
    for i, entry in enumerate(present):
        y = 8 + i * row
        draw.rectangle([x, y, x + 12, y + 12], fill=tuple(int(c) for c in palette[entry['index']]),
                       outline='black')
        draw.text((x + 18, y), f"{entry['name']}  {entry['share']:.1%}", fill='black', font=font)
    return canvas
