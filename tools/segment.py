"""Label an image collection with your own words, on as many processes as the launcher gives.

    python tools/segment.py photos/ --vocab "sky, tree, person" --config configs/catseg_vitb.py \
        --checkpoint catseg_vitb.pth --out labels
    tools/dist_segment.sh photos/ 4 --vocab "sky, tree, person" --out labels
    tools/slurm_segment.sh PARTITION JOB_NAME photos/ --vocab "sky, tree, person" --out labels

INPUTS are directories (walked; their trees are mirrored under --out), ``.txt`` lists of image
paths (one a line) and image files. The i-th image in sorted order goes to rank i % world size.
Per image, as tools/demo.py writes them: ``<name>_labels.png``, ``<name>.json``; with
--save-probs ``<name>_probs.npz`` and with --save-overlay ``<name>_overlay.png``. Each file is
written under a temporary name and renamed once on disk, so a rerun after a kill segments only
the images whose outputs are not all present and readable. At the end rank 0 writes
``summary.json``: failures and pixels per class over the collection. An image that fails is
reported (``failed: <path>: <reason>``) and skipped; the exit status is then 1, and 2 for
unusable arguments.
"""
import argparse
import sys
from pathlib import Path
from typing import Sequence

from mmengine.dist import barrier, get_dist_info, init_dist
from tqdm import tqdm

import cat_seg  # noqa: F401  (first: registers CAT-Seg and applies cat_seg.compat)
from cat_seg.apis import CATSegInferencer, ImageFailure, load_rgb
from cat_seg.apis.collection import (SUMMARY_FILE, CollectionImage, ImageOutputs,
                                     list_collection, shard)
from cat_seg.apis.collection_ranks import (OverallProgress, ShardReport, gather_summary,
                                           write_summary)
from cat_seg.apis.inferencer import IMAGE_ERRORS
from cat_seg.cli import (add_inference_arguments, add_model_arguments, add_vocabulary_arguments,
                         build_inferencer, check_inference_arguments, check_launcher_variables,
                         check_writable, exit_tool, main_guard)
from cat_seg.vocabulary import read_vocabulary


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('inputs', nargs='+', help='image directories, .txt lists of image '
                        'paths, image files')
    add_vocabulary_arguments(parser)
    add_model_arguments(parser)
    parser.add_argument('--out', required=True, help='output directory')
    parser.add_argument('--save-probs', action='store_true',
                        help='also write <name>_probs.npz (float16 (T, H, W): T x H x W x 2 '
                        'bytes per image)')
    parser.add_argument('--save-overlay', action='store_true',
                        help='also write <name>_overlay.png, the picture tools/demo.py draws')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none',
                        help='how the processes were started (the wrappers set it)')
    add_inference_arguments(parser)
    return parser.parse_args(argv)


def start_ranks(launcher: str) -> None:
    """Join the launcher's process group (gloo: the ranks exchange counts, not tensors).

    Raises:
        ValueError: ``--launcher slurm`` outside a Slurm task.
    """
    check_launcher_variables(launcher, 'tools/slurm_segment.sh')
    if launcher != 'none':
        init_dist(launcher, backend='gloo')


def segment_shard(inferencer: CATSegInferencer, images: Sequence[CollectionImage],
                  vocabulary: list, args: argparse.Namespace) -> ShardReport:
    """Segment this rank's images whose outputs are not complete yet; rank 0 shows the overall
    progress."""
    rank, world_size = get_dist_info()
    extras = [kind for kind, wanted in (('probs', args.save_probs),
                                        ('overlay', args.save_overlay)) if wanted]
    report, pending = ShardReport(len(vocabulary)), []
    for index in shard(len(images), rank, world_size):
        outputs = ImageOutputs(Path(args.out), images[index], vocabulary, extras)
        counts = outputs.read_back()
        if counts is None:
            pending.append((index, outputs))
        else:
            report.add(counts, before=True)
    progress = OverallProgress(len(images), report.done_before, len(pending))
    outcomes = zip(pending, inferencer.segment_each([images[i].path for i, _ in pending],
                                                    vocabulary, return_probs=args.save_probs))
    for _ in range(progress.steps):
        step = next(outcomes, None)
        if step is not None:
            (index, outputs), outcome = step
            record(outcome, images[index].path, outputs, inferencer, args, report, index)
        progress.step(int(step is not None))
    progress.close()
    return report


def record(outcome, path: Path, outputs: ImageOutputs, inferencer: CATSegInferencer,
           args: argparse.Namespace, report: ShardReport, index: int) -> None:
    """Write a segmented image's outputs, or report why it failed (reading, the model or the
    writing)."""
    if not isinstance(outcome, ImageFailure):
        try:
            overlay = (inferencer.visualize(load_rgb(path), outcome, args.opacity)
                       if args.save_overlay else None)
            report.add(outputs.write(outcome, path, overlay), before=False)
            return
        except IMAGE_ERRORS as error:
            outcome = ImageFailure.of(str(path), error)
    report.failures.append((index, outcome.source, outcome.reason))
    tqdm.write(str(outcome), file=sys.stderr)


def main(argv=None) -> int:
    args = parse_args(argv)
    with main_guard(args.debug):
        checkpoint = check_inference_arguments(args)
        vocabulary = read_vocabulary(args.vocab, args.vocab_file, args.dataset)
        out = Path(args.out)
        images = list_collection(args.inputs, out)
        check_writable(out)
        start_ranks(args.launcher)
        inferencer = build_inferencer(args, checkpoint)
        if inferencer.text_cache is not None and get_dist_info()[0] == 0:
            # Rank 0 encodes a new vocabulary once; the others then read it from the cache.
            inferencer.text_cache.prime(vocabulary, args.device)
        barrier()

    report = segment_shard(inferencer, images, vocabulary, args)
    summary = gather_summary(report, len(images), vocabulary)
    if summary is None:
        return 0
    write_summary(summary, out / SUMMARY_FILE)
    print(f'{summary["complete"]} of {len(images)} images labelled ({summary["segmented"]} by '
          f'this run, {summary["done_before"]} before); {len(summary["failed"])} failed; '
          f'summary in {out / SUMMARY_FILE}')
    return 1 if summary['failed'] else 0


if __name__ == '__main__':
    exit_tool(main)
