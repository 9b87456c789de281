"""Test data checked before evaluation: every image has its annotation and the reverse, and every
file decodes, so a metric is never computed over other data than the split lists.

mmseg's ``BaseSegDataset`` lists the images and derives each annotation's name: an annotation
whose image is missing is then left out without a word, and an image whose annotation is missing
(or a file that does not decode) stops the evaluation with a traceback midway.
"""
import logging
import os
import os.path as osp
from concurrent.futures import ThreadPoolExecutor
from typing import List, NamedTuple, Optional, Sequence, Union

from mmengine import fileio
from mmengine.logging import print_log
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS
from PIL import Image, UnidentifiedImageError

# EXIF orientations that swap height and width; mmseg's default (cv2) image decoding applies them.
TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)
SHOWN_UNPAIRED = 10


class Pairing(NamedTuple):
    """How the samples of a dataset config pair up.

    Attributes:
        samples (list[dict]): The samples the config selects (``load_data_list``, then
            ``indices``), with ``img_path`` and, if the dataset has annotations, ``seg_map_path``.
        selected (list[int]): Their indices in the full data list.
        unpaired (list[str]): Each file without its partner, as 'file (no partner file)'.
        paired (list[int]): Positions in ``samples`` whose files all exist.
        num_expected (int): The samples the data stands for: those listed, plus the
            annotations without a listed image.
    """

    samples: List[dict]
    selected: List[int]
    unpaired: List[str]
    paired: List[int]
    num_expected: int


def pair_up(dataset_cfg: dict) -> Pairing:
    """List the dataset's samples, as its ``load_data_list`` does, and find the unpaired files.

    Raises:
        FileNotFoundError: The image or annotation directory, or the split file, is missing.
        TypeError: The config builds a dataset that is not a ``BaseSegDataset``.
    """
    for key in ('img_path', 'seg_map_path'):
        folder = _data_path(dataset_cfg, dataset_cfg.get('data_prefix', {}).get(key))
        if folder is not None and not osp.isdir(folder):
            raise FileNotFoundError(f'test data: {key} directory {folder!r} does not exist')
    split = _data_path(dataset_cfg, dataset_cfg.get('ann_file'))
    if split is not None and not osp.isfile(split):
        raise FileNotFoundError(f'test data: split file (ann_file) {split!r} does not exist')
    dataset = DATASETS.build(dict(dataset_cfg, pipeline=[], lazy_init=True))
    if not isinstance(dataset, BaseSegDataset):
        raise TypeError(f'test data: {type(dataset).__name__} is not a BaseSegDataset, so its '
                        'images and annotations cannot be paired up before evaluation')
    data_list = dataset.load_data_list()
    selected = _selection(dataset_cfg.get('indices'), len(data_list))
    samples = [data_list[i] for i in selected]
    unpaired, paired = [], []
    for position, sample in enumerate(samples):
        problem = _missing_partner(sample['img_path'], sample.get('seg_map_path'))
        if problem:
            unpaired.append(problem)
        else:
            paired.append(position)
    orphans = ([] if split or dataset_cfg.get('indices') is not None
               else _annotations_without_images(dataset, samples))
    return Pairing(samples, selected, unpaired + orphans, paired, len(samples) + len(orphans))


def check_readable(samples: Sequence[dict], num_threads: Optional[int] = None) -> None:
    """Decode every image and annotation of ``samples`` in full (a truncated file included) and
    compare their sizes.

    Raises:
        ValueError: ``<file>: <reason>`` for the first sample (in order) that fails.
    """
    threads = num_threads or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(threads) as pool:
        for problem in pool.map(_sample_problem, samples):
            if problem:
                raise ValueError(problem)


def check_test_data(dataset_cfg: dict, allow_unpaired: bool = False) -> dict:
    """The test dataset config, once its files pair up and decode.

    Args:
        dataset_cfg (dict): A ``BaseSegDataset`` config (``test_dataloader.dataset``).
        allow_unpaired (bool): Evaluate the complete pairs only (the config comes back with
            their ``indices``, and a warning says how many samples are left out) instead of
            refusing the data. Defaults to False.

    Raises:
        ValueError: Unpaired files (the first ten and their count), or ``<file>: <reason>``
            for a file that does not decode.
    """
    pairing = pair_up(dataset_cfg)
    if pairing.unpaired:
        listed = ', '.join(pairing.unpaired[:SHOWN_UNPAIRED])
        more = len(pairing.unpaired) - SHOWN_UNPAIRED
        listed += f' and {more} more' if more > 0 else ''
        summary = (f'{len(pairing.unpaired)} unpaired test files, so the metric would cover '
                   f'{len(pairing.paired)} of {pairing.num_expected} samples: {listed}')
        if not allow_unpaired:
            raise ValueError(f'{summary}; add the missing files, or pass --allow-unpaired to '
                             'evaluate the complete pairs only')
        print_log(f'--allow-unpaired: {summary}', logger='current', level=logging.WARNING)
        dataset_cfg = dict(dataset_cfg,
                           indices=[pairing.selected[p] for p in pairing.paired])
    check_readable([pairing.samples[p] for p in pairing.paired])
    return dataset_cfg


def _data_path(dataset_cfg: dict, path: Optional[str]) -> Optional[str]:
    """``path`` under the config's ``data_root``, as ``BaseDataset`` joins them."""
    if not path:
        return None
    return osp.join(dataset_cfg.get('data_root') or '', path)


def _selection(indices: Union[None, int, Sequence[int]], size: int) -> List[int]:
    """The positions ``BaseDataset(indices=...)`` keeps of ``size`` samples."""
    every = list(range(size))
    if indices is None:
        return every
    if isinstance(indices, int):
        return every[:indices] if indices >= 0 else every[indices:]
    return [every[i] for i in indices]


def _annotations_without_images(dataset: BaseSegDataset, samples: List[dict]) -> List[str]:
    """Annotation files of the annotation directory that no listed image names."""
    folder = dataset.data_prefix.get('seg_map_path')
    if not folder:
        return []
    named = {osp.normpath(s['seg_map_path']) for s in samples}
    files = fileio.list_dir_or_file(folder, list_dir=False, suffix=dataset.seg_map_suffix,
                                    recursive=True)
    return [f'{path} (no image)' for path in sorted(osp.join(folder, f) for f in files)
            if osp.normpath(path) not in named]


def _missing_partner(image: str, annotation: Optional[str]) -> Optional[str]:
    """'<file> (no <its partner>)' if a file of the sample is missing, else None."""
    has_image = osp.isfile(image)
    if annotation is None:
        return None if has_image else f'{image} (missing)'
    if osp.isfile(annotation):
        return None if has_image else f'{annotation} (no {image})'
    return f'{image} (no {annotation})' if has_image else f'{image} (missing, as is {annotation})'


def _sample_problem(sample: dict) -> Optional[str]:
    """Why the sample's files cannot be evaluated, as '<file>: <reason>', or None."""
    image_size = _decoded_size(sample['img_path'], apply_orientation=True)
    annotation = sample.get('seg_map_path')
    if isinstance(image_size, str) or annotation is None:
        return image_size if isinstance(image_size, str) else None
    annotation_size = _decoded_size(annotation, apply_orientation=False)
    if isinstance(annotation_size, str):
        return annotation_size
    if annotation_size != image_size:
        return (f'{annotation}: the annotation is {annotation_size[0]}x{annotation_size[1]} '
                f'(h x w) but its image {sample["img_path"]} is {image_size[0]}x{image_size[1]}')
    return None


def _decoded_size(path: str, apply_orientation: bool) -> Union[tuple, str]:
    """(h, w) of the fully decoded file, or '<path>: <reason>' if it does not decode."""
    try:
        with Image.open(path) as image:
            image.load()
            width, height = image.size
            orientation = image.getexif().get(0x0112) if apply_orientation else None
    except UnidentifiedImageError:
        return f'{path}: not an image (unknown format or damaged header)'
    except (OSError, ValueError, SyntaxError) as error:   # PIL's decoders raise these
        return f'{path}: cannot be decoded ({(str(error).splitlines() or [""])[0]})'
    return (width, height) if orientation in TRANSPOSING_ORIENTATIONS else (height, width)
