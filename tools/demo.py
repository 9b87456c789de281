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
import sys
from pathlib import Path
from typing import List

from tqdm import tqdm

import cat_seg  # noqa: F401  (first: registers CAT-Seg and applies cat_seg.compat)
from cat_seg.apis import ImageFailure, expand_inputs
from cat_seg.cli import (add_inference_arguments, add_model_arguments, add_vocabulary_arguments,
                         build_inferencer, check_inference_arguments, check_writable, main_guard)
from cat_seg.vocabulary import read_vocabulary


def collect_images(inputs: List[str]) -> List[Path]:
    images = [Path(p) for p in expand_inputs(inputs)]   # missing files fail one by one later
    if not images:
        raise ValueError(f'no images found in {inputs}')
    return images


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('inputs', nargs='+', help='image files and/or directories')
    add_vocabulary_arguments(parser)
    add_model_arguments(parser)
    parser.add_argument('--out', default='demo_out', help='output directory')
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
    add_inference_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    with main_guard(args.debug):
        checkpoint = check_inference_arguments(args)
        vocabulary = read_vocabulary(args.vocab, args.vocab_file, args.dataset)
        images = collect_images(args.inputs)
        out = Path(args.out)
        check_writable(out)
        inferencer = build_inferencer(args, checkpoint)

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
