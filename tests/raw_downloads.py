"""Tiny stand-ins for the public downloads, in their real raw formats, with known contents.

Class ids above 255 are used on purpose: they only survive the 16-bit label path.
"""
import pickle
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import scipy.io
from mmseg.datasets import PascalContextDataset59
from PIL import Image

# ADE20K-Full: mask value k is object class k (objectnames[k - 1]); 0 is unlabeled.
ADE_OBJECT_NAMES = ['-'] + [f'object {k}' for k in range(2, 301)]
ADE_OBJECT_NAMES[1], ADE_OBJECT_NAMES[4], ADE_OBJECT_NAMES[279] = 'wall', 'tree, woody plant', 'ship'
# (split, file name, size, mask values painted in vertical bands; 0 leaves pixels unlabeled)
ADE_IMAGES = [
    ('training', 'ADE_train_00000001.jpg', (48, 64), (5, 280, 7)),
    ('training', 'ADE_frame_00000002.jpg', (40, 40), (5, 2, 280)),
    ('validation', 'ADE_val_00000001.jpg', (520, 700), (2, 5, 0, 280)),
    ('validation', 'ADE_val_00000002.jpg', (56, 48), (280, 299, 5)),
]
# Present in both splits, ordered by the number of training images they occur in, then by id.
ADE_SHARED_IDS = [5, 280, 2]


def bands(size: Tuple[int, int], values) -> np.ndarray:
    """(H, W) int array of vertical bands, one per value, left to right."""
    label = np.zeros(size, dtype=np.int64)
    for i, cut in enumerate(np.array_split(np.arange(size[1]), len(values))):
        label[:, cut] = values[i]
    return label


def textured_image(label: np.ndarray, seed: int) -> np.ndarray:
    """(H, W, 3) uint8 with one flat colour per class plus noise."""
    rng = np.random.RandomState(seed)
    colours = rng.randint(0, 256, (int(label.max()) + 1, 3))
    image = colours[label] + rng.randint(-10, 11, label.shape + (3,))
    return image.clip(0, 255).astype(np.uint8)


def write_ade20k_full(parent: Path) -> Path:
    """``parent/ADE20K_2021_17_01`` with ``index_ade20k.pkl`` and RGB-encoded ``_seg.png`` masks.

    Returns:
        Path: the ADE20K_2021_17_01 directory.
    """
    root = parent / 'ADE20K_2021_17_01'
    index: Dict[str, List] = dict(filename=[], folder=[], objectnames=ADE_OBJECT_NAMES)
    for number, (split, name, size, values) in enumerate(ADE_IMAGES):
        folder = f'ADE20K_2021_17_01/images/ADE/{split}/scene_{number}'
        (parent / folder).mkdir(parents=True)
        label = bands(size, values)
        rgb = np.zeros(size + (3,), dtype=np.uint8)
        rgb[..., 0] = label // 256 * 10          # ADE's encoding: R / 10 * 256 + G
        rgb[..., 1] = label % 256
        rgb[..., 2] = 7                          # instance ids live in B; they must not matter
        Image.fromarray(textured_image(label, number)).save(parent / folder / name)
        Image.fromarray(rgb).save(parent / folder / name.replace('.jpg', '_seg.png'))
        index['filename'].append(name)
        index['folder'].append(folder)
    with open(root / 'index_ade20k.pkl', 'wb') as f:
        pickle.dump(index, f)
    return root


# PASCAL-Context: labels.txt ids 1..300; LabelMap values are those ids. mmseg's 59 PC-59 names
# sit at ids 101..159 in their order ('aeroplane' 101, 'sky' 147, 'wood' 159).
CONTEXT_NAMES = {k: f'thing {k}' for k in range(1, 301)}
CONTEXT_NAMES.update({100 + k: name for k, name in
                      enumerate(PascalContextDataset59.METAINFO['classes'], 1)})
CONTEXT_NAMES.update({1: 'accordion', 299: 'zebra crossing'})
# image id -> (size, LabelMap values in vertical bands); None: no .mat file for this image.
CONTEXT_IMAGES = {
    '2008_000001': ((36, 48), (101, 147, 299)),
    '2008_000002': ((40, 32), (147, 1)),
    '2008_000003': None,
}


def write_pascal_context(parent: Path) -> Path:
    """``parent/VOCdevkit/VOC2010`` with JPEGImages, ImageSets/Main/val.txt, and the
    PASCAL-Context ``trainval/*.mat`` + ``labels.txt``.

    Returns:
        Path: the VOC2010 directory.
    """
    voc = parent / 'VOCdevkit' / 'VOC2010'
    for sub in ('JPEGImages', 'ImageSets/Main', 'trainval'):
        (voc / sub).mkdir(parents=True)
    (voc / 'labels.txt').write_text(''.join(f'{k}: {n}\n' for k, n in CONTEXT_NAMES.items()))
    (voc / 'ImageSets' / 'Main' / 'val.txt').write_text('\n'.join(CONTEXT_IMAGES) + '\n')
    for number, (image_id, spec) in enumerate(CONTEXT_IMAGES.items()):
        size, values = spec or ((24, 24), (1,))
        label = bands(size, values)
        Image.fromarray(textured_image(label, number)).save(voc / 'JPEGImages' / f'{image_id}.jpg')
        if spec is not None:
            scipy.io.savemat(str(voc / 'trainval' / f'{image_id}.mat'),
                             {'LabelMap': label.astype(np.uint16)})
    return voc
