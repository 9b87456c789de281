"""Segment your images with your own words.

    python tools/demo.py photo.jpg more_photos/ --vocab "sky, tree, person" \
        --config configs/catseg_vitb.py --out demo_out
    python tools/demo.py photo.jpg --dataset ade847 --checkpoint catseg_vitb.pth

Without --checkpoint, the config's released weights (configs/metafile.yaml, or
$CATSEG_WEIGHTS_URL) are downloaded once. Writes per image: ``<name>_overlay.png`` (colours +
legend of the classes present with their pixel share), ``<name>_labels.png`` (class index per
pixel; 16-bit beyond 256 classes) and ``<name>.json`` (vocabulary and classes present); with
--save-probs ``<name>_probs.npz`` (class probabilities) and with --save-features
``<name>_features.npz`` (dense CLIP image embeddings). An image that fails is reported
(``failed: <path>: <reason>``) and skipped; the exit status is then 1, and 2 for unusable
arguments.
"""
import argparse
import json
import os
import sys
import warnings
from pathlib import Path
from typing import List, Tuple, Union

from PIL import Image
from tqdm import tqdm

import cat_seg  # noqa: F401  (first: registers CAT-Seg and applies cat_seg.compat)
from cat_seg.apis import CATSegInferencer, ImageFailure, expand_inputs
from cat_seg.apis.inferencer import DEFAULT_TEXT_CACHE
from cat_seg.benchmarks import VOCABULARY_NAMES, named_vocabulary
from cat_seg.cli import main_guard
from cat_seg.weights.download import WEIGHTS_URL_ENV, released_weights_url

VOCABULARY_FILE_SHAPES = ('one name per line, or a JSON list of names ["sky", ...], of synonym '
                          'lists [["person", "human"], ...] or of categories '
                          '[{"name": "sky", ...}, ...]')
JSON_KINDS = {dict: 'a JSON object', str: 'a JSON string', bool: 'a JSON boolean',
              type(None): 'JSON null'}


def parse_class(entry: Union[str, list]) -> Union[str, Tuple[str, ...]]:
    """A class: 'name', or synonyms written 'a; b' or as a list ['a', 'b']."""
    names = entry if isinstance(entry, list) else entry.split(';')
    names = tuple(n.strip() for n in names if n.strip())
    return names[0] if len(names) == 1 else names


def is_class_entry(entry) -> bool:
    """A name, a list of names, or a category {"name": ...}."""
    return (isinstance(entry, str)
            or isinstance(entry, list) and all(isinstance(n, str) for n in entry)
            or isinstance(entry, dict) and isinstance(entry.get('name'), str))


def read_vocabulary_file(path: str) -> list:
    """The entries of a --vocab-file (``VOCABULARY_FILE_SHAPES``; JSON if named ``.json`` or
    starting with ``[`` or ``{``): names or lists of names.

    Raises:
        ValueError: Naming the file, what it holds and the shapes it may have.
    """
    try:
        text = Path(path).read_text(encoding='utf-8')
    except UnicodeDecodeError as error:
        raise ValueError(f'vocabulary file {path!r} is not UTF-8 text ({error}); expected '
                         f'{VOCABULARY_FILE_SHAPES}') from error
    if Path(path).suffix.lower() != '.json' and not text.lstrip().startswith(('[', '{')):
        return text.splitlines()
    try:
        entries = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f'vocabulary file {path!r} is not valid JSON ({error}); expected '
                         f'{VOCABULARY_FILE_SHAPES}') from error
    if not isinstance(entries, list):
        kind = JSON_KINDS.get(type(entries), 'a JSON number')
        raise ValueError(f'vocabulary file {path!r} holds {kind}, not a list; expected '
                         f'{VOCABULARY_FILE_SHAPES}')
    for index, entry in enumerate(entries):
        if not is_class_entry(entry):
            raise ValueError(f'vocabulary file {path!r}: entry {index} '
                             f'({json.dumps(entry, ensure_ascii=False)[:60]}) is neither a name, '
                             f'a list of names nor a category; expected {VOCABULARY_FILE_SHAPES}')
    return [e['name'] if isinstance(e, dict) else e for e in entries]


def read_vocabulary(args: argparse.Namespace) -> list:
    """Classes from --vocab, --vocab-file or --dataset; duplicates removed with a warning.

    Synonyms of one class: 'a; b' (or a JSON list of lists). A file line 'a, b' keeps the
    official benchmark convention: the class is prompted with its first name.
    """
    if args.vocab is not None:
        entries = args.vocab.split(',')
    elif args.vocab_file is not None:
        entries = read_vocabulary_file(args.vocab_file)
    else:
        try:
            entries = named_vocabulary(args.dataset)
        except FileNotFoundError as error:
            raise FileNotFoundError(f'--dataset {args.dataset} reads its vocabulary from a file '
                                    'its preparation script writes (README, "Datasets"): '
                                    f'{error}; or pass the file with --vocab-file') from error
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
    vocab.add_argument('--dataset', choices=VOCABULARY_NAMES,
                       help='the vocabulary of a benchmark or of the training set')
    parser.add_argument('--config', default='configs/catseg_vitb.py')
    parser.add_argument('--checkpoint', help='our or an official checkpoint: a path or a URL '
                        '(downloaded once into $TORCH_HOME/hub/checkpoints); default: the '
                        'released weights of --config (configs/metafile.yaml, or '
                        f'${WEIGHTS_URL_ENV})')
    parser.add_argument('--out', default='demo_out', help='output directory')
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--mode', choices=['slide', 'whole'], default='slide')
    parser.add_argument('--opacity', type=float, default=0.5)
    parser.add_argument('--save-probs', action='store_true',
                        help='also write <name>_probs.npz: "probs", the class probabilities at '
                        'the label map\'s size as float16 (T, H, W), and "vocabulary"; it takes '
                        'T x H x W x 2 bytes per image, in memory and on disk (847 classes at '
                        '640x853: 0.9 GB)')
    parser.add_argument('--save-features', action='store_true',
                        help='also write <name>_features.npz: "features", the dense CLIP image '
                        'embeddings (V, C, 24, 24) of the V views the model reads (whole: 1; '
                        'slide: the windows row by row, then the global view); one more CLIP '
                        'image pass per image')
    parser.add_argument('--text-cache', default=str(DEFAULT_TEXT_CACHE),
                        help='directory of text embeddings kept between runs ("" disables it)')
    parser.add_argument('--max-pixels', type=int, default=Image.MAX_IMAGE_PIXELS,
                        help='larger images are refused as possible decompression bombs '
                        '(default: PIL\'s limit, %(default)s)')
    parser.add_argument('--debug', action='store_true', help='show tracebacks')
    return parser.parse_args(argv)


def check_arguments(args: argparse.Namespace) -> str:
    """The checkpoint to load (a path or a URL), once the other arguments are known usable."""
    if not Path(args.config).is_file():
        raise FileNotFoundError(f'config file {args.config!r} does not exist')
    if not 0 <= args.opacity <= 1:
        raise ValueError(f'--opacity {args.opacity} must be in [0, 1]')
    if args.max_pixels < 1:
        raise ValueError(f'--max-pixels {args.max_pixels} must be a positive number of pixels')
    checkpoint = args.checkpoint or released_weights_url(args.config)
    if '://' not in checkpoint and not Path(checkpoint).is_file():
        raise FileNotFoundError(f'no checkpoint at {checkpoint!r}: give a file or a URL with '
                                '--checkpoint, or leave it out for the released weights')
    if not args.checkpoint:
        origin = (f'${WEIGHTS_URL_ENV}' if os.environ.get(WEIGHTS_URL_ENV)
                  else Path(args.config).parent / 'metafile.yaml')
        print(f'weights: {checkpoint} (no --checkpoint: the weights of {args.config} in {origin})')
    return checkpoint


def main(argv=None) -> int:
    args = parse_args(argv)
    with main_guard(args.debug):
        checkpoint = check_arguments(args)
        Image.MAX_IMAGE_PIXELS = args.max_pixels   # read by load_rgb for every image
        vocabulary = read_vocabulary(args)
        images = collect_images(args.inputs)
        out = Path(args.out)
        check_writable(out)
        inferencer = CATSegInferencer(args.config, checkpoint, args.device, args.mode,
                                      text_cache_dir=args.text_cache or None)

    failures = 0
    # A bar on terminals only: elsewhere its redraws would split the report's lines.
    progress = tqdm(total=len(images), unit='image', disable=True if len(images) < 2 else None)
    outcomes = inferencer.segment_each(images, vocabulary, str(out), args.opacity,
                                       return_probs=args.save_probs,
                                       with_features=args.save_features)
    for outcome in outcomes:
        if isinstance(outcome, ImageFailure):
            failures += 1
            progress.write(str(outcome), file=sys.stderr)
        else:
            top = ', '.join(f"{c['name']} {c['share']:.0%}"
                            for c in outcome.present_classes()[:3])
            progress.write(f'{outcome.source}: {top}')
        progress.update()
    progress.close()
    print(f'{len(images) - failures} of {len(images)} images segmented; outputs in {out}')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
