"""Prepare A-847 (ADE20K-Full, 847 classes) from the ADE20K_2021_17_01 download.

    python tools/dataset_converters/ade20k_847.py data/ade/ADE20K_2021_17_01 \
        [--out data/ade/ADE20K_847] [--categories FILE] [--splits validation] [--nproc 8]

Input: the directory holding ``index_ade20k.pkl`` and ``images/ADE/{training,validation}/...``
with each image's ``*_seg.png`` (object class k + 1 encoded as R / 10 * 256 + G; 0 = unlabeled).

The vocabulary: the standard A-847 is the set of ADE20K-Full object classes that occur in both the
training and the validation split (MaskFormer, Cheng et al. 2021, appendix). Without
``--categories`` this script applies that rule to the segmentation masks themselves, names each
class by the index's ``objectnames``, orders classes by the number of training images they occur
in, and prints the class count and a checksum of the names; ``--categories FILE`` takes an explicit
JSON list of ``{"name", "id"}`` (id = mask value) instead.

Output (``--out``): ``images/<split>/*.jpg``, ``annotations/<split>/*.png`` (16-bit class
positions, 65535 = ignore) and ``ade847_categories.json``, the layout of ``ADE20K847Dataset``.
Images whose shorter side exceeds 512 are shrunk to 512 (bilinear; nearest for labels) and every
image is re-encoded with PIL's default JPEG settings, as the official CAT-Seg preparation does:
the published A-847 numbers were measured on those pixels.
"""
import argparse
import pickle
import sys
from collections import Counter
from multiprocessing import Pool
from pathlib import Path
from typing import Dict, List, Sequence, Set, Tuple

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from cat_seg.datasets import (Category, load_categories, names_checksum, remap_to_label_order,
                              save_categories)
from cat_seg.cli import main_guard

SPLITS = ('training', 'validation')
CATEGORIES_FILE = 'ade847_categories.json'
MAX_SHORT_SIDE = 512


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('root', type=Path, help='the ADE20K_2021_17_01 directory')
    parser.add_argument('--out', type=Path, help='output directory (default: ADE20K_847 next '
                        'to ROOT)')
    parser.add_argument('--categories', type=Path, help='JSON list of {"name", "id"} to use '
                        'instead of deriving the classes present in both splits')
    parser.add_argument('--splits', nargs='+', choices=SPLITS, default=['validation'],
                        help='splits to convert (zero-shot evaluation needs validation only)')
    parser.add_argument('--nproc', type=int, default=1, help='worker processes')
    parser.add_argument('--debug', action='store_true', help='show tracebacks')
    return parser.parse_args(argv)


def read_object_classes(seg_png: Path) -> np.ndarray:
    """ADE's RGB class encoding -> (H, W) int32 mask values (object class index + 1)."""
    with Image.open(seg_png) as picture:
        rgb = np.asarray(picture.convert('RGB'))
    return (rgb[..., 0] // 10).astype(np.int32) * 256 + rgb[..., 1].astype(np.int32)


def split_of(file_name: str) -> str:
    """ADE_val_00000001.jpg -> 'validation'; every other name (ADE_train_, ADE_frame_) trains."""
    return 'validation' if file_name.split('_')[1] == 'val' else 'training'


def image_records(root: Path) -> Tuple[List[Tuple[str, Path]], List[str]]:
    """(split, image path) for every image of the index, and the index's object names."""
    index_file = root / 'index_ade20k.pkl'
    if not index_file.is_file():
        raise FileNotFoundError(f'{index_file} does not exist: ROOT must be the unpacked '
                                'ADE20K_2021_17_01 directory')
    # The index is a pickle written by the ADE20K authors; only open the official download.
    with open(index_file, 'rb') as f:
        index = pickle.load(f)
    missing = {'filename', 'folder', 'objectnames'} - set(index)
    if missing:
        raise ValueError(f'{index_file} lacks the entries {sorted(missing)}')
    records = []
    for folder, file_name in zip(index['folder'], index['filename']):
        # Folders are relative to the directory that contains ADE20K_2021_17_01.
        parts = Path(folder).parts
        relative = Path(*parts[1:]) if parts and parts[0] == root.name else Path(folder)
        records.append((split_of(file_name), root / relative / file_name))
    return records, list(index['objectnames'])


def classes_in(image: Path) -> Set[int]:
    seg_png = image.with_name(image.stem + '_seg.png')
    if not seg_png.is_file():
        raise FileNotFoundError(f'{seg_png} does not exist (every image of the index needs its '
                                'segmentation mask)')
    return set(np.unique(read_object_classes(seg_png)).tolist()) - {0}


def classes_in_both_splits(records: Sequence[Tuple[str, Path]], object_names: Sequence[str],
                           nproc: int) -> List[Category]:
    """Classes occurring in training and validation masks, most frequent in training first."""
    images = [image for _, image in records]
    with Pool(nproc) as pool:
        found = list(tqdm(pool.imap(classes_in, images, chunksize=16), total=len(images),
                          desc='scanning masks'))
    counts: Dict[str, Counter] = {split: Counter() for split in SPLITS}
    for (split, _), classes in zip(records, found):
        counts[split].update(classes)
    shared = set(counts['training']) & set(counts['validation'])
    ordered = sorted(shared, key=lambda k: (-counts['training'][k], k))
    return [Category(name=object_names[k - 1], id=k) for k in ordered]


def convert(job: Tuple[Path, Path, Path, List[Category]]) -> None:
    """One image: shrink as the official preparation does, write the JPEG and 16-bit labels."""
    image, image_out, label_out, categories = job
    rgb = np.asarray(Image.open(image).convert('RGB'))
    mask = read_object_classes(image.with_name(image.stem + '_seg.png'))
    height, width = rgb.shape[:2]
    if min(height, width) > MAX_SHORT_SIDE:
        scale = MAX_SHORT_SIDE / min(height, width)
        size = (round(width * scale), round(height * scale))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR)
        mask = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
    Image.fromarray(rgb).save(image_out)
    # Always 16-bit, whatever the class count: the ignore value is 65535.
    Image.fromarray(remap_to_label_order(mask, categories)).save(label_out)


def main(argv=None) -> int:
    args = parse_args(argv)
    with main_guard(args.debug):
        if args.nproc < 1:
            raise ValueError(f'--nproc must be at least 1, got {args.nproc}')
        out = args.out or args.root.parent / 'ADE20K_847'
        records, object_names = image_records(args.root)
        if args.categories:
            categories = load_categories(args.categories)
        else:
            categories = classes_in_both_splits(records, object_names, args.nproc)
        names = [c['name'] for c in categories]
        print(f'A-847 vocabulary: {len(categories)} classes, names checksum '
              f'{names_checksum(names)}')
        if not args.categories and len(categories) != 847:
            print(f'warning: {len(categories)} classes instead of the standard 847; pass '
                  '--categories FILE if you have the standard list', file=sys.stderr)
        out.mkdir(parents=True, exist_ok=True)
        save_categories(categories, out / CATEGORIES_FILE)
        jobs = []
        for split in args.splits:
            (out / 'images' / split).mkdir(parents=True, exist_ok=True)
            (out / 'annotations' / split).mkdir(parents=True, exist_ok=True)
            jobs += [(image, out / 'images' / split / f'{image.stem}.jpg',
                      out / 'annotations' / split / f'{image.stem}.png', categories)
                     for image_split, image in records if image_split == split]
        with Pool(args.nproc) as pool:
            for _ in tqdm(pool.imap_unordered(convert, jobs, chunksize=8), total=len(jobs),
                          desc='converting'):
                pass
        print(f'wrote {len(jobs)} images and labels of {", ".join(args.splits)} and '
              f'{CATEGORIES_FILE} to {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
