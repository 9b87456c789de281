"""A small synthetic dataset in mmseg's on-disk layout, for smoke tests and the learning check.

Three visually distinct classes (sky blue, grass green, road grey) in horizontal bands of random
heights, with pixel noise: a model that learns anything separates them, one that does not stays
near chance.
"""
import random
from pathlib import Path
from typing import Tuple

import numpy as np
from PIL import Image

SYNTHETIC_CLASSES = ('sky', 'grass', 'road')
SYNTHETIC_COLOURS = ((70, 130, 230), (60, 170, 60), (110, 110, 110))   # RGB, in class order


def write_synthetic_dataset(root: Path, num_train: int = 4, num_val: int = 2,
                            size: Tuple[int, int] = (80, 96), seed: int = 0) -> Path:
    """Write ``img_dir/{train,val}/*.jpg`` and ``ann_dir/{train,val}/*.png`` (uint8 class ids).

    Returns:
        Path: ``root``, ready for ``BaseSegDataset(data_root=root, img_suffix='.jpg')``.
    """
    root = Path(root)
    rng = random.Random(seed)
    noise = np.random.RandomState(seed)
    colours = np.array(SYNTHETIC_COLOURS, dtype=np.int64)
    height, width = size
    for split, count in (('train', num_train), ('val', num_val)):
        (root / 'img_dir' / split).mkdir(parents=True, exist_ok=True)
        (root / 'ann_dir' / split).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            cuts = sorted(rng.sample(range(8, height - 8), 2))
            label = np.zeros(size, dtype=np.uint8)
            label[cuts[0]:cuts[1]], label[cuts[1]:] = 1, 2
            image = colours[label] + noise.randint(-12, 13, (height, width, 3))
            Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(
                root / 'img_dir' / split / f'{index:03d}.jpg')
            Image.fromarray(label).save(root / 'ann_dir' / split / f'{index:03d}.png')
    return root
