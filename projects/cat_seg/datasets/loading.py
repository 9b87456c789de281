"""Label maps with more than 256 classes (A-847, PC-459 are stored as 16-bit PNGs)."""
from pathlib import Path
from typing import Union

import mmcv
import numpy as np
from mmengine import fileio
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import TRANSFORMS
from PIL import Image


@TRANSFORMS.register_module()
class LoadCATSegAnnotations(LoadAnnotations):
    """mmseg's ``LoadAnnotations`` without its cast to uint8, which folds 16-bit class ids.

    The ignore value is the largest value of the file's integer type (255 for 8-bit files,
    65535 for 16-bit ones; use it as the metric's ``ignore_index``). With ``reduce_zero_label``
    id 0 becomes the ignore value and every other id moves down by one, as in mmseg.
    """

    def _load_seg_map(self, results: dict) -> None:
        data = fileio.get(results['seg_map_path'], backend_args=self.backend_args)
        raw = mmcv.imfrombytes(data, flag='unchanged', backend=self.imdecode_backend).squeeze()
        if not np.issubdtype(raw.dtype, np.unsignedinteger):
            raise ValueError(f'label file {results["seg_map_path"]!r} holds {raw.dtype} values; '
                             'expected an 8- or 16-bit unsigned image')
        ignore = np.iinfo(raw.dtype).max
        label = raw.astype(np.int64)
        if results.get('reduce_zero_label', False):
            label = np.where((label == 0) | (label == ignore), ignore, label - 1)
        if results.get('label_map') is not None:
            original = label.copy()
            for old_id, new_id in results['label_map'].items():
                label[original == old_id] = new_id
        results['gt_seg_map'] = label
        results['seg_fields'].append('gt_seg_map')


def save_label_map(label_map: np.ndarray, num_classes: int, path: Union[str, Path]) -> None:
    """PNG of class indices (H, W): 8-bit up to 256 classes, 16-bit beyond, so that
    ``LoadCATSegAnnotations`` reads back the same ids."""
    dtype = np.uint8 if num_classes <= 256 else np.uint16
    if label_map.size and not 0 <= label_map.min() <= label_map.max() <= np.iinfo(dtype).max:
        raise ValueError(f'label map for {str(path)!r} holds ids {label_map.min()}..'
                         f'{label_map.max()}, which do not fit a {np.dtype(dtype).name} PNG')
    Image.fromarray(label_map.astype(dtype)).save(path)
