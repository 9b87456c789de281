"""Prepare PC-459 and PC-59 (PASCAL-Context) from the VOC2010 and PASCAL-Context downloads.

    python tools/dataset_converters/pascal_context.py data/VOCdevkit/VOC2010 \
        [--context DIR] [--benchmarks pc459 pc59] [--splits val] [--categories FILE]

Inputs: VOC2010 (``JPEGImages``, ``ImageSets/Main/{train,val}.txt``; val holds the 5105
PASCAL-Context validation images) and the PASCAL-Context ``trainval.tar.gz`` unpacked in
``--context`` (default: VOC2010 itself): ``trainval/<image id>.mat`` with a ``LabelMap`` of label
ids and ``labels.txt`` with one ``<id>: <name>`` line per class.

Vocabularies, both from ``labels.txt``:
- PC-459: every class, in id order (``--categories FILE`` takes an explicit JSON list of
  ``{"name", "id"}`` instead); the class count and a checksum of the names are printed.
- PC-59: the classes of mmseg's ``PascalContextDataset59``, looked up by name in ``labels.txt``;
  every other label becomes background.

Outputs, inside VOC2010:
- PC-459: ``SegmentationClassContext459/<id>.png`` (16-bit class positions, 65535 = ignore),
  ``ImageSets/SegmentationContext459/<split>.txt`` and ``pc459_categories.json``: the layout of
  ``PascalContext459Dataset``.
- PC-59: ``SegmentationClassContext/<id>.png`` (8-bit, 0 = background, k = k-th class) and
  ``ImageSets/SegmentationContext/<split>.txt``: mmseg's layout for ``PascalContextDataset59``.
"""
import argparse
import re
import sys
from pathlib import Path
from typing import Dict, List

import cat_seg  # noqa: F401,I001  (first: cat_seg.compat must run before mmseg is imported)
import numpy as np
import scipy.io
from cat_seg.datasets import (Category, load_categories, names_checksum, remap_to_label_order,
                              save_categories)
from cat_seg.cli import main_guard
from mmseg.datasets import PascalContextDataset59
from PIL import Image
from tqdm import tqdm

LABEL_LINE = re.compile(r'^\s*(\d+)\s*:\s*(\S.*?)\s*$')
# benchmark -> (label directory, split directory) inside VOC2010
LAYOUTS = {'pc459': ('SegmentationClassContext459', 'ImageSets/SegmentationContext459'),
           'pc59': ('SegmentationClassContext', 'ImageSets/SegmentationContext')}
PC459_CATEGORIES_FILE = 'pc459_categories.json'


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('voc2010', type=Path, help='the VOCdevkit/VOC2010 directory')
    parser.add_argument('--context', type=Path, help='directory with trainval/ and labels.txt '
                        '(default: VOC2010)')
    parser.add_argument('--benchmarks', nargs='+', choices=list(LAYOUTS),
                        default=list(LAYOUTS), help='layouts to write (default: both)')
    parser.add_argument('--splits', nargs='+', choices=['train', 'val'], default=['val'],
                        help='VOC2010 ImageSets/Main splits to convert (default: val)')
    parser.add_argument('--categories', type=Path, help='PC-459: JSON list of {"name", "id"} '
                        'to use instead of labels.txt')
    parser.add_argument('--debug', action='store_true', help='show tracebacks')
    return parser.parse_args(argv)


def read_labels_txt(path: Path) -> List[Category]:
    """``<id>: <name>`` lines -> categories in id order."""
    if not path.is_file():
        raise FileNotFoundError(f'{path} does not exist (it comes with PASCAL-Context '
                                'trainval.tar.gz); pass --context')
    categories = []
    for number, line in enumerate(path.read_text(encoding='utf-8').splitlines(), 1):
        if not line.strip():
            continue
        match = LABEL_LINE.match(line)
        if not match:
            raise ValueError(f'{path}, line {number}: expected "<id>: <name>", got {line!r}')
        categories.append(Category(name=match.group(2), id=int(match.group(1))))
    if not categories:
        raise ValueError(f'{path} lists no classes')
    return sorted(categories, key=lambda c: c['id'])


def pc59_categories(labels: List[Category]) -> List[Category]:
    """mmseg's 59 class names, with their ids in ``labels.txt``."""
    ids = {c['name']: c['id'] for c in labels}
    names = PascalContextDataset59.METAINFO['classes']
    missing = [n for n in names if n not in ids]
    if missing:
        raise ValueError(f'labels.txt lacks the PC-59 classes {missing}: is it the PASCAL-Context '
                         '459-class labels.txt?')
    return [Category(name=n, id=ids[n]) for n in names]


def main(argv=None) -> int:
    args = parse_args(argv)
    with main_guard(args.debug):
        context = args.context or args.voc2010
        labels = read_labels_txt(context / 'labels.txt')
        vocabularies: Dict[str, List[Category]] = {}
        if 'pc459' in args.benchmarks:
            vocabularies['pc459'] = (load_categories(args.categories) if args.categories
                                     else labels)
            save_categories(vocabularies['pc459'], args.voc2010 / PC459_CATEGORIES_FILE)
        if 'pc59' in args.benchmarks:
            vocabularies['pc59'] = pc59_categories(labels)
        for name, categories in vocabularies.items():
            print(f'{name.upper().replace("PC", "PC-")} vocabulary: {len(categories)} classes, '
                  f'names checksum {names_checksum([c["name"] for c in categories])}')
            (args.voc2010 / LAYOUTS[name][0]).mkdir(exist_ok=True)
            (args.voc2010 / LAYOUTS[name][1]).mkdir(parents=True, exist_ok=True)
        for split in args.splits:
            split_file = args.voc2010 / 'ImageSets' / 'Main' / f'{split}.txt'
            if not split_file.is_file():
                raise FileNotFoundError(f'split file {split_file} does not exist')
            image_ids = [line.strip() for line in split_file.read_text().splitlines()
                         if line.strip()]
            converted, missing = [], []
            for image_id in tqdm(image_ids, desc=f'converting {split}'):
                mat = context / 'trainval' / f'{image_id}.mat'
                if not mat.is_file():
                    missing.append(image_id)
                    continue
                label_map = scipy.io.loadmat(str(mat))['LabelMap']
                for name, categories in vocabularies.items():
                    positions = remap_to_label_order(label_map, categories)
                    if name == 'pc59':   # mmseg's PC-59 files: 0 = background, k + 1 = class k
                        positions = np.where(positions == 65535, 0, positions + 1).astype(np.uint8)
                    # PC-459 stays 16-bit whatever the class count: its ignore value is 65535.
                    Image.fromarray(positions).save(
                        args.voc2010 / LAYOUTS[name][0] / f'{image_id}.png')
                converted.append(image_id)
            if not converted:
                raise FileNotFoundError(f'none of the {len(image_ids)} images of {split_file} '
                                        f'has a label file in {context / "trainval"}')
            for name in vocabularies:
                (args.voc2010 / LAYOUTS[name][1] / f'{split}.txt').write_text(
                    '\n'.join(converted) + '\n')
            print(f'{split}: wrote {len(converted)} label maps for {", ".join(vocabularies)}')
            if missing:
                print(f'warning: {split}: {len(missing)} images have no .mat file and were '
                      f'skipped, e.g. {missing[:3]}', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
