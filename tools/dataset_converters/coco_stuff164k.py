"""Prepare COCO-Stuff-164k (171 classes, the training set) from the COCO 2017 downloads.

    python tools/dataset_converters/coco_stuff164k.py data/coco_stuff164k [--nproc 8]

Input: ``images/{train2017,val2017}/*.jpg`` (COCO ``train2017.zip``, ``val2017.zip``) and
``annotations/{train2017,val2017}/*.png`` (``stuffthingmaps_trainval2017.zip``), whose pixels hold
COCO category id - 1 (0..181; 255 = unlabeled).

Output: ``annotations/<split>/<name>_labelTrainIds.png`` with the 171 classes of mmseg's
``COCOStuffDataset`` numbered 0..170 in category-id order (255 = ignore): the layout mmseg's
COCO-Stuff configs and ours read.
"""
import argparse
import sys
from multiprocessing import Pool
from pathlib import Path

import cat_seg  # noqa: F401,I001  (first: cat_seg.compat must run before mmseg is imported)
import numpy as np
from cat_seg.cli import main_guard
from mmseg.datasets import COCOStuffDataset
from PIL import Image
from tqdm import tqdm

# COCO category ids 1..182 (80 things in 1..90, 91 stuff classes in 92..182); these 11 thing ids
# are unused by COCO 2017 (cocodataset.org, "2017 Object Detection" categories).
UNUSED_CATEGORY_IDS = (12, 26, 29, 30, 45, 66, 68, 69, 71, 83, 91)
IGNORE = 255


def train_id_table() -> np.ndarray:
    """(256,) uint8: map value (category id - 1) -> train id, 255 for unused ids and 255."""
    used = [i - 1 for i in range(1, 183) if i not in UNUSED_CATEGORY_IDS]
    assert len(used) == len(COCOStuffDataset.METAINFO['classes']) == 171
    table = np.full(256, IGNORE, dtype=np.uint8)
    table[used] = np.arange(len(used))
    return table


TABLE = train_id_table()


def convert(png: Path) -> None:
    raw = np.asarray(Image.open(png))
    if raw.ndim != 2 or raw.dtype != np.uint8:
        raise ValueError(f'{png} is not an 8-bit single-channel stuffthingmaps PNG')
    Image.fromarray(TABLE[raw]).save(png.with_name(f'{png.stem}_labelTrainIds.png'))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('root', type=Path, help='the coco_stuff164k directory')
    parser.add_argument('--nproc', type=int, default=1, help='worker processes')
    parser.add_argument('--debug', action='store_true', help='show tracebacks')
    args = parser.parse_args(argv)
    with main_guard(args.debug):
        for split in ('train2017', 'val2017'):
            folder = args.root / 'annotations' / split
            if not folder.is_dir():
                raise FileNotFoundError(f'{folder} does not exist: unpack '
                                        'stuffthingmaps_trainval2017.zip into ROOT/annotations')
            pngs = sorted(p for p in folder.glob('*.png')
                          if not p.stem.endswith('_labelTrainIds'))
            with Pool(max(1, args.nproc)) as pool:
                for _ in tqdm(pool.imap_unordered(convert, pngs, chunksize=32),
                              total=len(pngs), desc=split):
                    pass
            print(f'{split}: wrote {len(pngs)} label maps (171 classes, 255 = ignore)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
