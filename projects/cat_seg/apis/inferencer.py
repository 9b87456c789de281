"""Segment images with any vocabulary: build a model from a config and a checkpoint, predict."""
import hashlib
import json
import logging
from pathlib import Path
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmseg.registry import MODELS, TRANSFORMS
from mmseg.structures import SegDataSample
from mmseg.utils import register_all_modules

from ..checkpoint import fetch_checkpoint, load_checkpoint_into
from ..configs import sliding_test_cfg
from ..datasets.loading import save_label_map
from ..weights import released_weights_url
from .image_io import ImageInput, ImageReadError, check_rgb_array, expand_inputs, load_rgb
from .visualization import overlay_with_legend

DEFAULT_TEXT_CACHE = Path.home() / '.cache' / 'cat_seg' / 'text_embeddings'


def weights_fingerprint(module: torch.nn.Module) -> str:
    """SHA-256 of a module's state (names, shapes and values)."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(f'{name}{tuple(tensor.shape)}'.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class Segmentation(NamedTuple):
    """Result for one image.

    Attributes:
        label_map (np.ndarray): Class index per pixel, (H, W), int64.
        class_scores (np.ndarray): Mean probability of each class over the image, (T,).
        vocabulary (list): The T classes (names, or lists of synonyms).
        source (str, optional): The image's path, or ``array_<k>`` for the k-th input.
    """

    label_map: np.ndarray
    class_scores: np.ndarray
    vocabulary: List[str]
    source: Optional[str] = None

    def present_classes(self) -> List[Dict]:
        """Classes that label at least one pixel, largest first, with their pixel share."""
        counts = np.bincount(self.label_map.ravel(), minlength=len(self.vocabulary))
        order = np.argsort(-counts, kind='stable')
        return [dict(index=int(i), name=class_label(self.vocabulary[i]), pixels=int(counts[i]),
                     share=float(counts[i] / self.label_map.size))
                for i in order if counts[i] > 0]


class ImageFailure(NamedTuple):
    """An input that could not be segmented, and why (``str()``: ``failed: <path>: <reason>``)."""

    source: str
    reason: str

    def __str__(self) -> str:
        return f'failed: {self.source}: {self.reason}'


def class_label(entry) -> str:
    """Display name of a class: the name, or its synonyms joined by '; '."""
    return entry if isinstance(entry, str) else '; '.join(entry)


# The official test-time resize (detectron2 MIN_SIZE_TEST 640, MAX_SIZE_TEST 2560), used when a
# config has no test pipeline: it also bounds the memory an 8000x6000 photo needs.
DEFAULT_RESIZE = [dict(type='ResizeShortestEdge', scale=640, max_size=2560)]


def resize_transforms(cfg: Config) -> list:
    """The resizing steps of the config's test pipeline (e.g. shortest edge 640), so the
    inferencer sees images as ``tools/test.py`` does; loading and packing are its own."""
    pipeline = cfg.get('test_pipeline') or cfg.get('test_dataloader', {}).get(
        'dataset', {}).get('pipeline') or DEFAULT_RESIZE
    return [TRANSFORMS.build(step) for step in pipeline if 'Resize' in step['type']]


def save_segmentation(out_dir: Path, name: str, rgb: np.ndarray, result: Segmentation,
                      opacity: float = 0.5, source: Optional[Path] = None) -> dict:
    """Write ``<name>_overlay.png`` (colours, outlines and a legend of the classes present),
    ``<name>_labels.png`` (class index per pixel, 16-bit beyond 256 classes) and ``<name>.json``
    (image, size, vocabulary, classes present with pixel shares), which it returns."""
    out_dir.mkdir(parents=True, exist_ok=True)
    vocabulary = result.vocabulary
    present = result.present_classes()
    overlay_with_legend(rgb, result.label_map, present, len(vocabulary),
                        opacity).save(out_dir / f'{name}_overlay.png')
    save_label_map(result.label_map, len(vocabulary), out_dir / f'{name}_labels.png')
    summary = dict(image=str(source) if source else None, height=rgb.shape[0],
                   width=rgb.shape[1],
                   vocabulary=[c if isinstance(c, str) else list(c) for c in vocabulary],
                   present=present)
    (out_dir / f'{name}.json').write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    return summary


class CATSegInferencer:
    """Open-vocabulary segmentation of images, one model for any number of vocabularies.

    Args:
        config (str | Config): Model config (path or loaded), e.g. ``configs/catseg_vitb.py``.
        checkpoint (str, optional): Our checkpoint or an official CAT-Seg one, as a path or a
            URL (downloaded once, see ``fetch_checkpoint``). Defaults to the config's released
            weights (``released_weights_url``: ``$CATSEG_WEIGHTS_URL``, or its entry in
            ``configs/metafile.yaml``).
        device (str): 'cpu' or 'cuda'. Defaults to 'cpu'.
        mode (str, optional): 'whole' or 'slide' inference; default: the config's.
        text_cache_dir (str, optional): Directory where text embeddings are kept between runs,
            keyed by the text weights, templates and names, so a repeated vocabulary skips the
            text encoder. None disables it. Defaults to ``~/.cache/cat_seg/text_embeddings``.

    Examples:
        >>> inferencer = CATSegInferencer('configs/catseg_vitb.py')   # the released weights
        >>> result = inferencer(['street.jpg'], vocabulary=['road', 'car', 'sky'])[0]
        >>> result.label_map.shape, result.present_classes()[0]['name']
    """

    def __init__(self, config: Union[str, Config], checkpoint: Optional[str] = None,
                 device: str = 'cpu', mode: Optional[str] = None,
                 text_cache_dir: Optional[str] = str(DEFAULT_TEXT_CACHE)):
        register_all_modules()
        cfg = Config.fromfile(config) if isinstance(config, (str, Path)) else config
        checkpoint = checkpoint or released_weights_url(cfg.filename)
        fetch_checkpoint(checkpoint)   # a download fails before the model is built, not after
        if mode is not None:
            cfg.model.test_cfg = sliding_test_cfg() if mode == 'slide' else dict(mode='whole')
        # Only the argmax and class means are needed: no (T, H, W) probabilities at full size.
        cfg.model.test_cfg = dict(cfg.model.test_cfg, return_probs=False)
        self.model = MODELS.build(cfg.model)
        self.resize = resize_transforms(cfg)
        load_checkpoint_into(self.model, checkpoint)
        self.model.to(device).eval().requires_grad_(False)
        self.device = device
        self.text_cache_dir = Path(text_cache_dir) if text_cache_dir else None
        self._text_fingerprint = weights_fingerprint(self.model.text_encoder)

    def text_cache_file(self, vocabulary: Sequence) -> Path:
        """Where the embeddings of ``vocabulary`` are kept for these text weights."""
        encoder = self.model.text_encoder
        key = json.dumps([self._text_fingerprint, list(encoder.templates), encoder.synonym_rule,
                          [[n] if isinstance(n, str) else list(n) for n in vocabulary]])
        return self.text_cache_dir / f'{hashlib.sha256(key.encode()).hexdigest()}.pt'

    def _prime_text_cache(self, vocabulary: Sequence) -> None:
        """Load the vocabulary's embeddings from disk, or compute and store them."""
        if self.text_cache_dir is None:
            return
        path = self.text_cache_file(vocabulary)
        encoder = self.model.text_encoder
        if path.is_file():
            embeds = torch.load(path, map_location=self.device, weights_only=True)
            encoder.remember(vocabulary, embeds)
            return
        embeds = encoder(vocabulary)
        self.text_cache_dir.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix('.tmp')
        torch.save(embeds.cpu(), temporary)
        temporary.replace(path)   # atomic: a concurrent reader never sees half a file

    @torch.no_grad()
    def segment_each(self, images: Union[ImageInput, Sequence[ImageInput]], vocabulary: Sequence,
                     out_dir: Optional[str] = None,
                     opacity: float = 0.5) -> Iterator[Union[Segmentation, ImageFailure]]:
        """Segment images one by one over ``vocabulary``; an image that fails does not stop the
        others.

        Args:
            images: A path, a directory (its images, by name), an RGB uint8 array (H, W, 3), or
                a list of them.
            vocabulary (Sequence): Class names, or lists of synonyms.
            out_dir (str, optional): Also write each image's overlay, label map and JSON summary
                here (``save_segmentation``); arrays are named ``array_<k>``.
            opacity (float): Weight of the class colours in the overlay. Defaults to 0.5.

        Yields:
            Segmentation | ImageFailure: Per input, in order: its result, or why it failed
            (unreadable image, over the pixel limit, outputs not writable, out of memory, ...).
        """
        vocabulary = list(vocabulary)
        self._prime_text_cache(vocabulary)
        for index, image in enumerate(expand_inputs(images)):
            is_array = isinstance(image, np.ndarray)
            source = f'array_{index}' if is_array else str(image)
            try:
                rgb = check_rgb_array(image, source) if is_array else load_rgb(image)
                result = self._segment(rgb, vocabulary)._replace(source=source)
                if out_dir is not None:
                    save_segmentation(Path(out_dir), source if is_array else Path(image).stem,
                                      rgb, result, opacity, None if is_array else Path(image))
            except ImageReadError as error:
                yield ImageFailure(source, error.reason)
            # Writing its outputs, or the model on this image (e.g. out of memory at its size).
            except (OSError, RuntimeError, MemoryError, ValueError) as error:
                yield ImageFailure(source, f'{type(error).__name__}: {error}')
            else:
                yield result

    def __call__(self, images: Union[ImageInput, Sequence[ImageInput]], vocabulary: Sequence,
                 out_dir: Optional[str] = None,
                 opacity: float = 0.5) -> List[Optional[Segmentation]]:
        """Segment images over ``vocabulary`` (arguments of ``segment_each``).

        Returns:
            list: One ``Segmentation`` per input (directories expanded), None where the input
            failed; each failure is logged as ``failed: <path>: <reason>``.
        """
        results = []
        for outcome in self.segment_each(images, vocabulary, out_dir, opacity):
            if isinstance(outcome, ImageFailure):
                print_log(str(outcome), logger='current', level=logging.WARNING)
                outcome = None
            results.append(outcome)
        return results

    def _segment(self, rgb: np.ndarray, vocabulary: list) -> Segmentation:
        height, width = rgb.shape[:2]
        # mmseg pipelines deliver BGR; the preprocessor converts back (bgr_to_rgb=True).
        results = dict(img=np.ascontiguousarray(rgb[..., ::-1]), img_shape=(height, width),
                       ori_shape=(height, width))
        for transform in self.resize:
            results = transform(results)
        bgr = torch.from_numpy(np.ascontiguousarray(results['img'])).permute(2, 0, 1)
        sample = SegDataSample(metainfo=dict(ori_shape=(height, width),
                                             img_shape=tuple(results['img'].shape[:2])))
        data = self.model.data_preprocessor(dict(inputs=[bgr], data_samples=[sample]), False)
        prediction = self.model.predict(data['inputs'], data['data_samples'],
                                        vocabulary=vocabulary)[0]
        return Segmentation(prediction.pred_sem_seg.data[0].cpu().numpy(),
                            prediction.pred_class_scores.cpu().numpy(), vocabulary)
