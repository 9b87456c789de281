"""Prepare PC-459 (PASCAL-Context, all 459 classes) from the VOC2010 and PASCAL-Context downloads.

    python tools/dataset_converters/pascal_context_459.py data/VOCdevkit/VOC2010 \
        [--context DIR] [--split-file FILE] [--categories FILE]

Inputs: VOC2010 (``JPEGImages``, ``ImageSets/Main/val.txt``: the 5105 PASCAL-Context validation
images) and the PASCAL-Context ``trainval.tar.gz`` unpacked in ``--context`` (default: VOC2010
itself): ``trainval/<image id>.mat`` with a ``LabelMap`` of label ids and ``labels.txt`` with one
``<id>: <name>`` line per class.

The vocabulary is read from ``labels.txt`` in id order (``--categories FILE`` takes an explicit
JSON list of ``{"name", "id"}`` instead); the class count and a checksum of the names are printed.

Output, inside VOC2010 beside mmseg's PC-59 layout: ``SegmentationClassContext459/<id>.png``
(16-bit class positions, 65535 = ignore), ``ImageSets/SegmentationContext459/val.txt`` listing the
converted images, and ``pc459_categories.json``: the layout of ``PascalContext459Dataset``.
"""
import argparse
import re
import sys
from pathlib import Path
from typing import List

import scipy.io
from PIL import Image
from tqdm import tqdm

from cat_seg.datasets import (Category, load_categories, names_checksum, remap_to_label_order,
                              save_categories)
from cat_seg.runtime import main_guard

CATEGORIES_FILE = 'pc459_categories.json'
LABEL_DIR = 'SegmentationClassContext459'
SPLIT_FILE = 'ImageSets/SegmentationContext459/val.txt'
LABEL_LINE = re.compile(r'^\s*(\d+)\s*:\s*(\S.*?)\s*$')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('voc2010', type=Path, help='the VOCdevkit/VOC2010 directory')
    parser.add_argument('--context', type=Path, help='directory with trainval/ and labels.txt '
                        '(default: VOC2010)')
    parser.add_argument('--split-file', type=Path, help='image ids to convert (default: '
                        'VOC2010/ImageSets/Main/val.txt)')
    parser.add_argument('--categories', type=Path, help='JSON list of {"name", "id"} to use '
                        'instead of labels.txt')
    parser.add_argument('--debug', action='store_true', help='show tracebacks')
    return parser.parse_args(argv)


def read_labels_txt(path: Path) -> List[Category]:
    """``<id>: <name>`` lines -> categories in id order."""
    if not path.is_file():
        raise FileNotFoundError(f'{path} does not exist (it comes with PASCAL-Context '
                                'trainval.tar.gz); pass --context or --categories')
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


def main(argv=None) -> int:
    args = parse_args(argv)
    with main_guard(args.debug):
        context = args.context or args.voc2010
        split_file = args.split_file or args.voc2010 / 'ImageSets' / 'Main' / 'val.txt'
        if not split_file.is_file():
            raise FileNotFoundError(f'split file {split_file} does not exist')
        categories = (load_categories(args.categories) if args.categories
                      else read_labels_txt(context / 'labels.txt'))
        names = [c['name'] for c in categories]
        print(f'PC-459 vocabulary: {len(categories)} classes, names checksum '
              f'{names_checksum(names)}')
        (args.voc2010 / LABEL_DIR).mkdir(exist_ok=True)
        save_categories(categories, args.voc2010 / CATEGORIES_FILE)
        converted, missing = [], []
        image_ids = [line.strip() for line in split_file.read_text().splitlines() if line.strip()]
        for image_id in tqdm(image_ids, desc='converting'):
            mat = context / 'trainval' / f'{image_id}.mat'
            if not mat.is_file():
                missing.append(image_id)
                continue
            label_map = scipy.io.loadmat(str(mat))['LabelMap']
            # Always 16-bit, whatever the class count: the ignore value is 65535.
            Image.fromarray(remap_to_label_order(label_map, categories)).save(
                args.voc2010 / LABEL_DIR / f'{image_id}.png')
            converted.append(image_id)
        if not converted:
            raise FileNotFoundError(f'none of the {len(image_ids)} images of {split_file} has a '
                                    f'label file in {context / "trainval"}')
        (args.voc2010 / SPLIT_FILE).parent.mkdir(parents=True, exist_ok=True)
        (args.voc2010 / SPLIT_FILE).write_text('\n'.join(converted) + '\n')
        print(f'wrote {len(converted)} label maps to {args.voc2010 / LABEL_DIR}, the split to '
              f'{args.voc2010 / SPLIT_FILE} and {CATEGORIES_FILE}')
        if missing:
            print(f'warning: {len(missing)} images have no .mat file and were skipped, e.g. '
                  f'{missing[:3]}', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
