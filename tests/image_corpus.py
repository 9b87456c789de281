"""Images a user may hand the demo: exotic but valid ones, with the size and first pixel they
must load as, and broken files, with the reason they are refused."""
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from catseg_testing import REPO_ROOT


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` RGB pixels, with no pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack('>I', len(data)) + kind + data
                + struct.pack('>I', zlib.crc32(kind + data)))
    header = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header) + chunk(b'IEND', b'')


def exif_rotated(path, size=(40, 20)):
    """A JPEG stored ``size`` wide x high whose EXIF orientation 6 turns it by 90 degrees."""
    image = Image.new('RGB', size, 'blue')
    exif = image.getexif()
    exif[0x0112] = 6
    image.save(path, exif=exif)


def animated_gif(path):
    """Three frames, red first."""
    frames = [Image.new('RGB', (20, 10), colour) for colour in ('red', 'green', 'blue')]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)


EXOTIC = {   # name -> (writer, expected (H, W), expected RGB of the first pixel)
    'cmyk.jpg': (lambda p: Image.new('CMYK', (20, 10), (0, 255, 0, 0)).save(p),
                 (10, 20), (255, 0, 255)),
    'gray16.png': (lambda p: Image.fromarray(np.full((10, 20), 40000, np.uint16)).save(p),
                   (10, 20), (156, 156, 156)),                           # 40000 // 256
    'float.tif': (lambda p: Image.fromarray(np.full((10, 20), 0.5, np.float32)).save(p),
                  (10, 20), (127, 127, 127)),
    'palette.png': (lambda p: Image.new('RGB', (20, 10), (10, 200, 30)).convert(
        'P', palette=Image.Palette.ADAPTIVE).save(p), (10, 20), (10, 200, 30)),
    'animated.gif': (animated_gif, (10, 20), (255, 0, 0)),
    'rotated.jpg': (exif_rotated, (40, 20), (0, 0, 254)),
    'one.png': (lambda p: Image.new('RGB', (1, 1), (1, 2, 3)).save(p), (1, 1), (1, 2, 3)),
    'two_wide.png': (lambda p: Image.new('RGB', (2, 50), (4, 5, 6)).save(p), (50, 2), (4, 5, 6)),
    'gray_alpha.png': (lambda p: Image.new('LA', (3, 3), (0, 0)).save(p), (3, 3), (255, 255, 255)),
}


BROKEN = {   # name -> (writer, reason)
    'empty.jpg': (lambda p: p.write_bytes(b''), r'^empty file \(0 bytes\)$'),
    'random.png': (lambda p: p.write_bytes(np.random.RandomState(0).bytes(4000)),
                   r'^not a readable image \(UnidentifiedImageError: cannot identify'),
    'notes.jpg': (lambda p: p.write_text('a text file, renamed'),
                  r'^not a readable image \(UnidentifiedImageError'),
    'truncated.jpg': (lambda p: p.write_bytes((REPO_ROOT / 'demo' / 'astronaut.jpg')
                                              .read_bytes()[:3000]),
                      r'^not a readable image \(OSError: image file is truncated'),
    'bomb.png': (lambda p: p.write_bytes(png_header_only(40000, 40000)),
                 r'^1600000000 pixels, over the limit of \d+ pixels .*raise the limit with '
                 r'--max-pixels 1600000000'),
    'folder.jpg': (lambda p: p.mkdir(), r'^a directory, not an image file$'),
    'missing.jpg': (lambda p: None, r'^no such file$'),
}


def write_image_corpus(folder: Path) -> None:
    """Every EXOTIC and BROKEN file in ``folder`` (except the missing one)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, (writer, *_) in {**EXOTIC, **BROKEN}.items():
        writer(folder / name)
