"""What the ranks labelling one collection share: the overall count behind rank 0's progress bar,
and the summary of the run (failures, per-class pixel totals), gathered on rank 0."""
import json
import sys
import threading
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.distributed as dist
from mmengine.dist import all_gather_object, all_reduce, get_dist_info
from tqdm import tqdm

from ..vocabulary import class_label, json_vocabulary
from .collection import durable_replace


class ShardReport:
    """One rank's account of its shard.

    Args:
        num_classes (int): T.

    Attributes:
        pixels (np.ndarray): Pixels per class over the shard's complete images, (T,) int64.
        done_before (int): Images whose outputs a previous run completed.
        segmented (int): Images segmented and written by this run.
        failures (list[tuple]): (collection index, image, reason) of each image that failed.
    """

    def __init__(self, num_classes: int):
        self.pixels = np.zeros(num_classes, dtype=np.int64)
        self.done_before = self.segmented = 0
        self.failures: List[Tuple[int, str, str]] = []

    def add(self, counts: np.ndarray, before: bool) -> None:
        """A complete image and its pixels per class (T,)."""
        self.pixels += counts
        if before:
            self.done_before += 1
        else:
            self.segmented += 1


class OverallProgress:
    """Rank 0's bar over the whole collection. Each rank reports after every image of its
    shard, through one all-reduce per step; the reduce is asynchronous and waited for one step
    later, so a rank runs at most one image ahead of the slowest.

    Args:
        total (int): Images in the collection.
        done (int): This rank's images complete before the run.
        pending (int): This rank's images to segment.

    Attributes:
        steps (int): Steps every rank takes (the largest shard's pending count); a rank whose
            shard is exhausted reports nothing new.
    """

    def __init__(self, total: int, done: int, pending: int):
        self.rank = get_dist_info()[0]
        self.distributed = dist.is_available() and dist.is_initialized()
        counts = torch.tensor([done, pending])
        done_total, steps = counts[:1].clone(), counts[1:].clone()
        all_reduce(done_total, 'sum')
        all_reduce(steps, 'max')
        self.steps, self.local = int(steps), 0
        self.done_before = self.shown = int(done_total)
        self.in_flight: Optional[Tuple[dist.Work, torch.Tensor]] = None
        if self.distributed:
            # tqdm's default lock is a multiprocessing one, whose semaphore a distributed run
            # would leak (and warn about) at its os._exit (cli.exit_tool).
            tqdm.set_lock(threading.RLock())
        interactive = sys.stderr.isatty()
        # In a log file (e.g. under Slurm) a redraw a minute, not ten a second.
        self.bar = tqdm(total=total, initial=int(done_total), unit='image',
                        disable=self.rank != 0, mininterval=0.5 if interactive else 60)

    def step(self, processed: int) -> None:
        """This rank took one step and processed ``processed`` (0 or 1) images."""
        self.local += processed
        if not self.distributed:
            self.bar.update(processed)
            return
        self._show_reduced()
        tensor = torch.tensor([self.local])
        self.in_flight = (dist.all_reduce(tensor, async_op=True), tensor)

    def close(self) -> None:
        self._show_reduced()
        self.bar.close()

    def _show_reduced(self) -> None:
        if self.in_flight is not None:
            work, tensor = self.in_flight
            work.wait()
            overall = self.done_before + int(tensor)
            self.bar.update(overall - self.shown)   # a disabled bar keeps no count of its own
            self.shown = overall
            self.in_flight = None


def gather_summary(report: ShardReport, total: int, vocabulary: Sequence) -> Optional[dict]:
    """The run's summary on rank 0 (None elsewhere), from every rank's report.

    Returns:
        dict: ``images``, ``complete`` (images whose outputs are all complete), ``done_before``,
        ``segmented`` (by this run), ``failed`` (``image``, ``reason``; in collection order),
        ``vocabulary`` and ``pixels``: per class ``name``, ``pixels`` and ``share`` of the
        pixels of the complete images.
    """
    pixels = torch.from_numpy(report.pixels.copy())
    all_reduce(pixels, 'sum')
    shards = all_gather_object((report.done_before, report.segmented, report.failures))
    if get_dist_info()[0] != 0:
        return None
    done_before = sum(shard[0] for shard in shards)
    segmented = sum(shard[1] for shard in shards)
    failures = sorted(failure for shard in shards for failure in shard[2])
    labelled = max(int(pixels.sum()), 1)
    return dict(images=total, complete=done_before + segmented, done_before=done_before,
                segmented=segmented,
                failed=[dict(image=image, reason=reason) for _, image, reason in failures],
                vocabulary=json_vocabulary(vocabulary),
                pixels=[dict(name=class_label(c), pixels=int(n), share=int(n) / labelled)
                        for c, n in zip(vocabulary, pixels.tolist())])


def write_summary(summary: dict, path: Path) -> None:
    """``summary`` as JSON at ``path``, complete or not at all."""
    temporary = path.with_name(f'.{path.name}.partial')
    temporary.write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding='utf-8')
    durable_replace(temporary, path)
