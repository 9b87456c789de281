"""Segment your images with your own words.

    python tools/demo.py photo.jpg more_photos/ --vocab "sky, tree, person" \
        --config configs/catseg_vitb.py --checkpoint catseg_vitb.pth --out demo_out
    python tools/demo.py photo.jpg --dataset ade847 --checkpoint https://.../model_base.pth

Writes per image: ``<name>_overlay.png`` (colours + legend of the classes present with their
pixel share), ``<name>_labels.png`` (class index per pixel; 16-bit beyond 256 classes) and
``<name>.json`` (vocabulary and classes present). Bad images are reported and skipped; the exit
status is 1 when any image failed, 2 for unusable arguments.
"""
import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import List, Tuple, Union

from tqdm import tqdm

import cat_seg  # noqa: F401  (first: registers CAT-Seg and applies cat_seg.compat)
from cat_seg.apis import CATSegInferencer, expand_inputs, load_rgb, save_segmentation
from cat_seg.apis.inferencer import DEFAULT_TEXT_CACHE
from cat_seg.datasets import load_categories

# Written by the preparation scripts at the data roots of configs/benchmarks/{ade847,pc459}.py.
CATEGORY_FILES = {'ade847': ('data/ade/ADE20K_847/ade847_categories.json', 'ade20k_847.py'),
                  'pc459': ('data/VOCdevkit/VOC2010/pc459_categories.json',
                            'pascal_context.py')}
DATASETS = ['ade150', 'ade847', 'coco171', 'pc459', 'pc59', 'voc20']
WEIGHTS_HELP = ('download an official CAT-Seg checkpoint (model_base.pth / model_large.pth, '
                'linked from the README of github.com/cvlab-kaist/CAT-Seg) and pass it with '
                '--checkpoint PATH, or `make demo CHECKPOINT=PATH`; official checkpoints are '
                'converted on the fly')


def dataset_vocabulary(name: str) -> list:
    """Class names of a benchmark: from the dataset classes' own metainfo, or for A-847 and PC-459
    from the category file their preparation script wrote under ``data/`` (as in MMSeg)."""
    from mmseg.datasets import (ADE20KDataset, COCOStuffDataset, PascalContextDataset59,
                                PascalVOCDataset)
    tables = {'ade150': ADE20KDataset, 'coco171': COCOStuffDataset,
              'pc59': PascalContextDataset59, 'voc20': PascalVOCDataset}
    if name in CATEGORY_FILES:
        path, script = CATEGORY_FILES[name]
        if not Path(path).is_file():
            raise FileNotFoundError(f'--dataset {name} reads its vocabulary from {path}, which '
                                    f'does not exist: run tools/dataset_converters/{script} '
                                    '(README, "Datasets"), or pass the file with --vocab-file')
        return [c['name'] for c in load_categories(path)]
    if name not in tables:
        raise ValueError(f'--dataset {name!r} is not one of {DATASETS}')
    classes = list(tables[name].METAINFO['classes'])
    return classes[1:] if name == 'voc20' else classes   # VOC's 'background' is not a class


def parse_class(entry: Union[str, list]) -> Union[str, Tuple[str, ...]]:
    """A class: 'name', or synonyms written 'a; b' or as a JSON list ['a', 'b']."""
    names = entry if isinstance(entry, list) else entry.split(';')
    if not all(isinstance(n, str) for n in names):
        raise ValueError(f'a class must be a name or a list of names, got {entry!r}')
    names = tuple(n.strip() for n in names if n.strip())
    return names[0] if len(names) == 1 else names


def read_vocabulary(args: argparse.Namespace) -> list:
    """Classes from --vocab, --vocab-file or --dataset; duplicates removed with a warning.

    Synonyms of one class: 'a; b' (or a JSON list of lists). A file line 'a, b' keeps the
    official benchmark convention: the class is prompted with its first name.
    """
    if args.vocab is not None:
        entries = args.vocab.split(',')
    elif args.vocab_file is not None:
        text = Path(args.vocab_file).read_text(encoding='utf-8')
        entries = json.loads(text) if text.lstrip().startswith('[') else text.splitlines()
        entries = [e['name'] if isinstance(e, dict) and 'name' in e else e for e in entries]
    else:
        entries = dataset_vocabulary(args.dataset)
    classes = [c for c in map(parse_class, entries) if c]
    if not classes:
        raise ValueError('the vocabulary is empty: give at least one class name')
    unique = list(dict.fromkeys(classes))
    if len(unique) < len(classes):
        warnings.warn(f'duplicate class names removed: {len(classes) - len(unique)} repeats')
    return unique


def collect_images(inputs: List[str]) -> List[Path]:
    images = [Path(p) for p in expand_inputs(inputs)]   # missing files fail one by one later
    if not images:
        raise ValueError(f'no images found in {inputs}')
    return images


def check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / '.write_test'
        probe.write_bytes(b'')
        probe.unlink()
    except OSError as error:
        raise ValueError(f'output directory {str(out)!r} is not writable: {error}') from error


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('inputs', nargs='+', help='image files and/or directories')
    vocab = parser.add_mutually_exclusive_group(required=True)
    vocab.add_argument('--vocab', help='comma-separated class names, e.g. "sky, tree, person"')
    vocab.add_argument('--vocab-file', help='one name per line, a JSON list of names (or of '
                       'synonym lists), or a category file ([{"name": ..., "id": ...}, ...])')
    vocab.add_argument('--dataset', choices=DATASETS, help='a benchmark vocabulary')
    parser.add_argument('--config', default='configs/catseg_vitb.py')
    parser.add_argument('--checkpoint', default='', help='our or an official checkpoint: a path '
                        'or a URL (downloaded once into $TORCH_HOME/hub/checkpoints)')
    parser.add_argument('--out', default='demo_out', help='output directory')
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--mode', choices=['slide', 'whole'], default='slide')
    parser.add_argument('--opacity', type=float, default=0.5)
    parser.add_argument('--text-cache', default=str(DEFAULT_TEXT_CACHE),
                        help='directory of text embeddings kept between runs ("" disables it)')
    parser.add_argument('--debug', action='store_true', help='show tracebacks')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        if not args.checkpoint or ('://' not in args.checkpoint
                                   and not Path(args.checkpoint).is_file()):
            raise FileNotFoundError(f'no checkpoint at {args.checkpoint!r}: {WEIGHTS_HELP}')
        if not 0 <= args.opacity <= 1:
            raise ValueError(f'--opacity {args.opacity} must be in [0, 1]')
        vocabulary = read_vocabulary(args)
        images = collect_images(args.inputs)
        out = Path(args.out)
        check_writable(out)
        inferencer = CATSegInferencer(args.config, args.checkpoint, args.device, args.mode,
                                      text_cache_dir=args.text_cache or None)
    except (FileNotFoundError, ValueError, OSError) as error:
        if args.debug:
            raise
        print(f'error: {error}', file=sys.stderr)
        return 2

    failures = []
    progress = tqdm(images, unit='image', disable=len(images) < 2)
    for path in progress:
        try:
            rgb = load_rgb(path)
            result = inferencer([rgb], vocabulary)[0]
            summary = save_segmentation(out, path.stem, rgb, result, args.opacity, path)
            top = ', '.join(f"{c['name']} {c['share']:.0%}" for c in summary['present'][:3])
            progress.write(f'{path}: {top}')
        except (FileNotFoundError, ValueError, OSError) as error:
            failures.append((path, error))
            progress.write(f'{path}: skipped: {error}', file=sys.stderr)
    print(f'{len(images) - len(failures)} of {len(images)} images segmented; outputs in {out}')
    for path, error in failures:
        print(f'failed: {path}: {error}', file=sys.stderr)
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
