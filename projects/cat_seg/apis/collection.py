"""An image collection labelled in shards that survive interruption: listing and sharding the
images, and each image's outputs, written atomically and read back to decide what is done."""
import json
import os
from pathlib import Path, PurePath
from typing import List, NamedTuple, Optional, Sequence

import numpy as np
from PIL import Image

from ..vocabulary import json_vocabulary
from .image_io import IMAGE_SUFFIXES
from .inferencer import Segmentation, save_segmentation

# The files ``save_segmentation`` writes for one image named <stem>, in the order they are
# committed: the summary last, so that it marks the image complete.
OUTPUT_SUFFIXES = {'labels': '_labels.png', 'overlay': '_overlay.png', 'probs': '_probs.npz',
                   'summary': '.json'}
OPTIONAL_OUTPUTS = ('overlay', 'probs')
# The run's summary in the output directory (``collection_ranks.write_summary``).
SUMMARY_FILE = 'summary.json'
# Inputs read as lists of image paths, one a line.
LIST_SUFFIXES = ('.txt',)


class CollectionImage(NamedTuple):
    """One image of the collection.

    Attributes:
        path (Path): The file to read (it may be missing or unreadable: it then fails alone).
        relative (PurePath): Its place in the output tree, e.g. ``street/0001.jpg`` for
            ``photos/street/0001.jpg`` read from the input directory ``photos``.
    """

    path: Path
    relative: PurePath


def walk_images(root: Path) -> List[CollectionImage]:
    """The files named like images anywhere below ``root``, by relative path."""
    found = [Path(parent, name) for parent, _, names in os.walk(root) for name in names
             if Path(name).suffix.lower() in IMAGE_SUFFIXES]
    return sorted((CollectionImage(p, p.relative_to(root)) for p in found),
                  key=lambda image: image.relative.as_posix())


def expand_entry(path: Path, relative: PurePath, out_dir: Path) -> List[CollectionImage]:
    """A directory's images placed below ``relative``, or the file itself at ``relative``."""
    if not path.is_dir():
        return [CollectionImage(path, relative)]
    if out_dir == path.resolve() or path.resolve() in out_dir.parents:
        raise ValueError(f'--out {str(out_dir)!r} is inside the input directory {str(path)!r}: '
                         'a rerun would read the labels as images; choose an output directory '
                         'outside it')
    return [CollectionImage(image.path, relative / image.relative)
            for image in walk_images(path)]


def read_file_list(path: Path, out_dir: Path) -> List[CollectionImage]:
    """The entries of a list, one path a line (blank lines skipped): relative paths are read
    from the list's directory and keep their place below it in the output tree, absolute ones
    are placed by their name."""
    images = []
    for line in path.read_text(encoding='utf-8').splitlines():
        if line.strip():
            entry = Path(line.strip())
            images += (expand_entry(entry, PurePath(entry.name), out_dir) if entry.is_absolute()
                       else expand_entry(path.parent / entry, entry, out_dir))
    return images


def list_collection(inputs: Sequence[str], out_dir: Path) -> List[CollectionImage]:
    """The images of ``inputs`` in a fixed order: every rank lists the same collection.

    Args:
        inputs (Sequence[str]): Directories (walked, their trees mirrored), ``.txt`` lists of
            paths, and image files (outputs named after the file alone).
        out_dir (Path): The output directory, which must lie outside every input directory.

    Raises:
        ValueError: No images; ``out_dir`` inside an input directory; two images whose outputs
            would share a name (naming both), or one whose outputs would be the run's summary.
    """
    images, out_dir = [], out_dir.resolve()
    for item in map(Path, inputs):
        if item.suffix.lower() in LIST_SUFFIXES and item.is_file():
            images += read_file_list(item, out_dir)
        else:
            images += expand_entry(item, PurePath() if item.is_dir() else PurePath(item.name),
                                   out_dir)
    if not images:
        raise ValueError(f'no images found in {list(inputs)}')
    owners = {}
    for image in images:
        stem = image.relative.with_suffix('').as_posix()
        if f'{stem}{OUTPUT_SUFFIXES["summary"]}' == SUMMARY_FILE:
            raise ValueError(f'{str(image.path)!r} would write {SUMMARY_FILE}, the name of the '
                             'run\'s summary in the output directory; move it into a '
                             'subdirectory or rename it')
        if stem in owners:
            raise ValueError(f'{str(owners[stem])!r} and {str(image.path)!r} would write the same '
                             f'outputs ({stem}{OUTPUT_SUFFIXES["labels"]}, ...); rename one or '
                             'segment them into different output directories')
        owners[stem] = image.path
    return images


def shard(num_images: int, rank: int, world_size: int) -> range:
    """The indices of the images of ``rank``: the i-th image of the collection (in the order
    of ``list_collection``) goes to rank i % world_size."""
    return range(rank, num_images, world_size)


def durable_replace(temporary: Path, final: Path) -> None:
    """Move a written file to its final name once its bytes are on disk: a reader finds either
    the whole file or none."""
    with open(temporary, 'rb') as written:
        os.fsync(written.fileno())
    os.replace(temporary, final)


class ImageOutputs:
    """The output files of one image under the output directory.

    Args:
        out_dir (Path): The collection's output directory.
        image (CollectionImage): The image.
        vocabulary (Sequence): The T classes of this run.
        extras (Sequence[str]): The ``OPTIONAL_OUTPUTS`` this run writes. Defaults to none.
    """

    def __init__(self, out_dir: Path, image: CollectionImage, vocabulary: Sequence,
                 extras: Sequence[str] = ()):
        self.directory = out_dir / image.relative.parent
        self.stem = image.relative.stem
        self.vocabulary = json_vocabulary(vocabulary)
        self.kinds = [k for k in OUTPUT_SUFFIXES if k in extras or k not in OPTIONAL_OUTPUTS]

    def path(self, kind: str, stem: Optional[str] = None) -> Path:
        return self.directory / f'{stem or self.stem}{OUTPUT_SUFFIXES[kind]}'

    def write(self, result: Segmentation, source: Path,
              overlay: Optional[Image.Image] = None) -> np.ndarray:
        """Write the outputs under temporary names in their directory (hidden, one per image:
        a rerun overwrites what a kill left), then rename each, the summary last.

        Args:
            result (Segmentation): The image's result, with ``probs`` if they are an output.
            source (Path): The image file, named in the summary.
            overlay (Image, optional): The picture, if it is an output.

        Returns:
            np.ndarray: Pixels per class, (T,) int64.
        """
        temporary = f'.{self.stem}.partial'
        save_segmentation(self.directory, temporary, result, overlay, source)
        for kind in self.kinds:
            durable_replace(self.path(kind, temporary), self.path(kind))
        return np.bincount(result.label_map.ravel(), minlength=len(self.vocabulary))

    def read_back(self) -> Optional[np.ndarray]:
        """Pixels per class (T,) int64 if every output is complete and belongs to this run's
        vocabulary, else None: missing, damaged (truncated, not decodable) or inconsistent
        outputs mean the image is to be segmented (again)."""
        num_classes = len(self.vocabulary)
        try:
            summary = json.loads(self.path('summary').read_text(encoding='utf-8'))
            with Image.open(self.path('labels')) as png:
                labels = np.asarray(png)   # decodes every row: a truncated file raises
            size = (summary['height'], summary['width'])
            if summary['vocabulary'] != self.vocabulary or labels.shape != size:
                return None
            if 'overlay' in self.kinds:
                with Image.open(self.path('overlay')) as picture:
                    picture.load()
            if 'probs' in self.kinds:
                with np.load(self.path('probs')) as saved:
                    if saved['probs'].shape != (num_classes, *size):
                        return None
            counts = np.bincount(labels.ravel(), minlength=num_classes)
        except Exception:  # json, PIL, zipfile and numpy raise many types: all mean "not done"
            return None
        return counts if len(counts) == num_classes else None
