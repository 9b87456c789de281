"""Segment images with any vocabulary: build a model from a config and a checkpoint, predict."""
import json
import logging
from pathlib import Path
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.logging import print_log
from mmseg.registry import MODELS, TRANSFORMS
from mmseg.structures import SegDataSample
from mmseg.utils import register_all_modules
from PIL import Image
from torch import Tensor

from ..weights.download import fetch_checkpoint
from ..weights.loading import load_checkpoint_into
from ..configs import mode_test_cfg
from ..datasets.loading import save_label_map
from ..models.segmentor.patch_inference import patch_logits
from ..vocabulary import class_label, json_vocabulary
from ..weights.download import released_weights_url
from .onnx_backend import use_onnx
from .image_io import ImageInput, ImageReadError, check_rgb_array, expand_inputs, load_rgb
from .text_cache import DEFAULT_TEXT_CACHE, TextEmbeddingCache
from .visualization import overlay_with_legend

# What the model may raise on one image (unreadable, out of memory at its size, ...), and writing
# its outputs: the image fails, the others go on.
IMAGE_ERRORS = (OSError, RuntimeError, MemoryError, ValueError)


BACKENDS = ('torch', 'onnxruntime')


class Segmentation(NamedTuple):
    """Result for one image.

    Attributes:
        label_map (np.ndarray): Class index per pixel, (H, W), int64.
        class_scores (np.ndarray): Mean probability of each class over the image, (T,).
        vocabulary (list): The T classes (names, or lists of synonyms).
        source (str, optional): The image's path, or ``array_<k>`` for the k-th input.
        probs (np.ndarray, optional): Class probabilities (T, H, W), float16, when asked for
            (``return_probs=True``); ``label_map`` is their argmax.
        features (np.ndarray, optional): Dense CLIP image embeddings of the model's views
            (V, C, h, w), float32, when asked for (``with_features=True``; see
            ``CATSegInferencer.features``).
    """

    label_map: np.ndarray
    class_scores: np.ndarray
    vocabulary: List[str]
    source: Optional[str] = None
    probs: Optional[np.ndarray] = None
    features: Optional[np.ndarray] = None

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

    @classmethod
    def of(cls, source: str, error: Exception) -> 'ImageFailure':
        """The failure of ``source`` from the error it raised."""
        if isinstance(error, ImageReadError):
            return cls(source, error.reason)
        return cls(source, f'{type(error).__name__}: {error}')


class PreparedImage(NamedTuple):
    """An input read and run through the test pipeline (``CATSegInferencer.preprocess``).

    Attributes:
        source (str): The image's path, or ``array_<k>``.
        name (str): Stem of its output files.
        path (Path, optional): The file it was read from.
        rgb (np.ndarray): The image as read, (H, W, 3) uint8.
        data (dict): ``PackSegInputs`` output: ``inputs`` (3, H', W') BGR uint8 at the
            pipeline's size, ``data_samples`` with the image's metainfo.
    """

    source: str
    name: str
    path: Optional[Path]
    rgb: np.ndarray
    data: dict


# The official test-time resize (detectron2 MIN_SIZE_TEST 640, MAX_SIZE_TEST 2560), used when a
# config has no test pipeline: it also bounds the memory an 8000x6000 photo needs.
DEFAULT_TEST_PIPELINE = [dict(type='LoadImageFromFile'),
                         dict(type='ResizeShortestEdge', scale=640, max_size=2560),
                         dict(type='PackSegInputs')]


def array_test_pipeline(cfg: Config) -> Compose:
    """The config's test pipeline for images given as arrays, so the inferencer sees images as
    ``tools/test.py`` does: as ``MMSegInferencer._init_pipeline`` adapts it, file loading becomes
    ``LoadImageFromNDArray`` and annotation loading is dropped."""
    steps = (cfg.get('test_pipeline')
             or cfg.get('test_dataloader', {}).get('dataset', {}).get('pipeline')
             or DEFAULT_TEST_PIPELINE)
    # Built from mmseg's registry, whatever the default scope of the caller.
    return Compose([TRANSFORMS.build(dict(step, type='LoadImageFromNDArray')
                                     if step['type'] == 'LoadImageFromFile' else step)
                    for step in steps if step['type'] != 'LoadAnnotations'])


def save_segmentation(out_dir: Path, name: str, result: Segmentation,
                      overlay: Optional[Image.Image], source: Optional[Path] = None) -> dict:
    """Write one image's outputs and return its summary.

    Files: ``<name>_overlay.png`` (if ``overlay``), ``<name>_labels.png`` (class index per pixel,
    16-bit beyond 256 classes), ``<name>.json`` (image, size, vocabulary, classes present with
    pixel shares: the summary); when the result has them, ``<name>_probs.npz`` (``probs``:
    float16 (T, H, W); ``vocabulary``: (T,) class names, synonyms joined by '; ') and
    ``<name>_features.npz`` (``features``: float32 (V, C, h, w), views in the model's order).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    vocabulary = result.vocabulary
    if overlay is not None:
        overlay.save(out_dir / f'{name}_overlay.png')
    save_label_map(result.label_map, len(vocabulary), out_dir / f'{name}_labels.png')
    if result.probs is not None:
        np.savez(out_dir / f'{name}_probs.npz', probs=result.probs,
                 vocabulary=np.array([class_label(c) for c in vocabulary]))
    if result.features is not None:
        np.savez(out_dir / f'{name}_features.npz', features=result.features)
    summary = dict(image=str(source) if source else None, height=result.label_map.shape[0],
                   width=result.label_map.shape[1],
                   vocabulary=json_vocabulary(vocabulary),
                   present=result.present_classes())
    (out_dir / f'{name}.json').write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    return summary


class CATSegInferencer:
    """Open-vocabulary segmentation of images, one model for any number of vocabularies.

    The stages are MMSegInferencer's: ``preprocess`` (read, test pipeline) -> ``forward`` (the
    model's ``predict``) -> ``postprocess`` (arrays) -> ``visualize`` (overlay; after
    postprocess, since its legend lists the classes present). It does not subclass mmengine's
    ``BaseInferencer``, whose ``__call__`` collates batches and stops at the first unreadable
    input (here each input succeeds or fails alone, ``segment_each``), whose model loading is
    not strict and knows no official CAT-Seg checkpoints (``load_checkpoint_into``), and whose
    visualizer takes class names once from the dataset metainfo, not per call.

    Args:
        config (str | Config): Model config (path or loaded), e.g. ``configs/catseg_vitb.py``.
        checkpoint (str, optional): Our checkpoint or an official CAT-Seg one, as a path or a
            URL (downloaded once, see ``fetch_checkpoint``). Defaults to the config's released
            weights (``released_weights_url``: ``$CATSEG_WEIGHTS_URL``, or its entry in
            ``configs/metafile.yaml``).
        device (str): 'cpu' or 'cuda'. Defaults to 'cpu'.
        mode (str, optional): 'whole' or 'slide' inference; default: the config's.
        precision (str, optional): 'fp32', 'bf16' or 'fp16' (``test_cfg.precision``): the
            forward pass in float32, or under autocast (bf16 for CPUs with bf16 units, where
            it is about twice as fast; fp16 for GPUs); default: the config's (fp32 for ours,
            which reproduces the official numbers).
        text_cache_dir (str, optional): Directory where text embeddings are kept between runs
            (``TextEmbeddingCache``), so a repeated vocabulary skips the text encoder. None
            disables it. Defaults to ``~/.cache/cat_seg/text_embeddings``.
        backend (str): 'torch' (default) or 'onnxruntime': the class logits of each view from
            the ONNX graph ``onnx`` (``tools/deployment/export_onnx.py``, exported for the same
            mode) on onnxruntime's CPU provider; the text encoder, views and post-processing
            stay in torch.
        onnx (str, optional): The ONNX file of backend 'onnxruntime'.

    Examples:
        >>> inferencer = CATSegInferencer('configs/catseg_vitb.py')   # the released weights
        >>> result = inferencer(['street.jpg'], vocabulary=['road', 'car', 'sky'])[0]
        >>> result.label_map.shape, result.present_classes()[0]['name']
        >>> probs = inferencer('street.jpg', ['road', 'sky'], return_probs=True)[0].probs
        >>> inferencer.features('street.jpg').shape    # (V, C, 24, 24)
    """

    def __init__(self, config: Union[str, Config], checkpoint: Optional[str] = None,
                 device: str = 'cpu', mode: Optional[str] = None,
                 text_cache_dir: Optional[str] = str(DEFAULT_TEXT_CACHE),
                 precision: Optional[str] = None, backend: str = 'torch',
                 onnx: Optional[str] = None):
        register_all_modules()
        if (backend == 'onnxruntime') != (onnx is not None) or backend not in BACKENDS:
            raise ValueError(f"backend={backend!r} with onnx={onnx!r}: use backend='torch', or "
                             "backend='onnxruntime' with onnx='model.onnx'")
        cfg = Config.fromfile(config) if isinstance(config, (str, Path)) else config
        checkpoint = checkpoint or released_weights_url(cfg.filename)
        fetch_checkpoint(checkpoint)   # a download fails before the model is built, not after
        if mode is not None:
            cfg.model.test_cfg = mode_test_cfg(mode)
        # By default only the argmax and class means: no (T, H, W) probabilities at full size.
        options = dict(return_probs=False)
        if precision is not None:
            options['precision'] = precision   # checked when the model is built
        cfg.model.test_cfg = dict(cfg.model.test_cfg, **options)
        self.model = MODELS.build(cfg.model)
        self.pipeline = array_test_pipeline(cfg)
        load_checkpoint_into(self.model, checkpoint)
        self.model.to(device).eval().requires_grad_(False)
        if onnx is not None:
            use_onnx(self.model, onnx)
        self.device = device
        self.text_cache = (TextEmbeddingCache(text_cache_dir, self.model.text_encoder)
                           if text_cache_dir else None)

    # ----------------------------------------------------------------- stages
    def preprocess(self, images: Union[ImageInput, Sequence[ImageInput]]
                   ) -> Iterator[Union[PreparedImage, ImageFailure]]:
        """Each input read (directories expanded) and run through the test pipeline, one at a
        time, or why it could not be."""
        for index, image in enumerate(expand_inputs(images)):
            is_array = isinstance(image, np.ndarray)
            source = f'array_{index}' if is_array else str(image)
            try:
                rgb = check_rgb_array(image, source) if is_array else load_rgb(image)
                # mmseg pipelines deliver BGR; the preprocessor converts back (bgr_to_rgb=True).
                data = self.pipeline(dict(img=np.ascontiguousarray(rgb[..., ::-1])))
            except IMAGE_ERRORS as error:
                yield ImageFailure.of(source, error)
                continue
            yield PreparedImage(source, source if is_array else Path(image).stem,
                                None if is_array else Path(image), rgb, data)

    @torch.no_grad()
    def forward(self, data: dict, vocabulary: Sequence,
                return_probs: bool = False) -> SegDataSample:
        """The model's prediction for one prepared image.

        Returns:
            SegDataSample: ``pred_sem_seg`` (1, H, W) at the image's size, and ``seg_logits``
            (T, H, W) probabilities if ``return_probs``, else ``pred_class_scores`` (T,).
        """
        if self.model.test_settings.return_probs != return_probs:
            # test_cfg is validated when assigned: a new dict, never one changed in place.
            self.model.test_cfg = dict(self.model.test_cfg, return_probs=return_probs)
        batch = self.model.data_preprocessor(
            dict(inputs=[data['inputs']], data_samples=[data['data_samples']]), False)
        return self.model.predict(batch['inputs'], batch['data_samples'],
                                  vocabulary=list(vocabulary))[0]

    @staticmethod
    def postprocess(prediction: SegDataSample, vocabulary: Sequence, source: str,
                    features: Optional[np.ndarray] = None) -> Segmentation:
        """The prediction as arrays: label map, class means, probabilities (float16) if any."""
        label_map = prediction.pred_sem_seg.data[0].cpu().numpy()
        if 'seg_logits' not in prediction:
            return Segmentation(label_map, prediction.pred_class_scores.cpu().numpy(),
                                list(vocabulary), source, features=features)
        probs = prediction.seg_logits.data
        return Segmentation(label_map, probs.flatten(1).mean(1).cpu().numpy(), list(vocabulary),
                            source, probs.half().cpu().numpy(), features)

    @staticmethod
    def visualize(rgb: np.ndarray, result: Segmentation, opacity: float = 0.5) -> Image.Image:
        """The image blended with class colours, with a legend of the classes present."""
        return overlay_with_legend(rgb, result.label_map, result.present_classes(),
                                   len(result.vocabulary), opacity)

    # ----------------------------------------------------------------- calls
    @torch.no_grad()
    def segment_each(self, images: Union[ImageInput, Sequence[ImageInput]], vocabulary: Sequence,
                     out_dir: Optional[str] = None, opacity: float = 0.5,
                     return_probs: bool = False,
                     with_features: bool = False) -> Iterator[Union[Segmentation, ImageFailure]]:
        """Segment images one by one over ``vocabulary``; an image that fails does not stop the
        others.

        Args:
            images: A path, a directory (its images, by name), an RGB uint8 array (H, W, 3), or
                a list of them.
            vocabulary (Sequence): Class names, or lists of synonyms.
            out_dir (str, optional): Also write each image's outputs here
                (``save_segmentation``); arrays are named ``array_<k>``.
            opacity (float): Weight of the class colours in the overlay. Defaults to 0.5.
            return_probs (bool): Also return (and write) the class probabilities at the image's
                size, float16 (T, H, W): T x H x W x 2 bytes per image (847 classes at 640x853:
                0.9 GB), and twice that in float32 while computing. Defaults to False.
            with_features (bool): Also return (and write) the dense CLIP image embeddings
                (``features``; one more CLIP image pass). Defaults to False.

        Yields:
            Segmentation | ImageFailure: Per input, in order: its result, or why it failed
            (unreadable image, over the pixel limit, outputs not writable, out of memory, ...).
        """
        vocabulary = list(vocabulary)
        if self.text_cache is not None:
            self.text_cache.prime(vocabulary, self.device)
        for prepared in self.preprocess(images):
            if isinstance(prepared, ImageFailure):
                yield prepared
                continue
            try:
                features = self._features(prepared.data) if with_features else None
                result = self.postprocess(
                    self.forward(prepared.data, vocabulary, return_probs), vocabulary,
                    prepared.source, features)
                if out_dir is not None:
                    save_segmentation(Path(out_dir), prepared.name, result,
                                      self.visualize(prepared.rgb, result, opacity),
                                      prepared.path)
            except IMAGE_ERRORS as error:
                yield ImageFailure.of(prepared.source, error)
            else:
                yield result

    def __call__(self, images: Union[ImageInput, Sequence[ImageInput]], vocabulary: Sequence,
                 out_dir: Optional[str] = None, opacity: float = 0.5, return_probs: bool = False,
                 with_features: bool = False) -> List[Optional[Segmentation]]:
        """Segment images over ``vocabulary`` (arguments of ``segment_each``).

        Returns:
            list: One ``Segmentation`` per input (directories expanded), None where the input
            failed; each failure is logged as ``failed: <path>: <reason>``.
        """
        results = []
        for outcome in self.segment_each(images, vocabulary, out_dir, opacity, return_probs,
                                         with_features):
            if isinstance(outcome, ImageFailure):
                print_log(str(outcome), logger='current', level=logging.WARNING)
                outcome = None
            results.append(outcome)
        return results

    def features(self, image: ImageInput) -> np.ndarray:
        """Dense CLIP image embeddings of one image, as the model sees it: the last block's
        ``ln_post`` + ``proj`` output of each view (``model.clip_features(views).dense``).

        Args:
            image: A path or an RGB uint8 array (H, W, 3).

        Returns:
            np.ndarray: (V, C, h, w) float32, e.g. (1, 512, 24, 24) for ViT-B/16 in whole mode;
            in slide mode the windows row-major, then the global view: (5, 512, 24, 24).

        Raises:
            ValueError: If ``image`` is not one readable image (naming the problem).
        """
        prepared = list(self.preprocess([image]))
        if len(prepared) != 1:
            raise ValueError(f'features() takes one image (a file or an array), got {image!r} '
                             f'with {len(prepared)} images')
        if isinstance(prepared[0], ImageFailure):
            raise ValueError(str(prepared[0]))
        return self._features(prepared[0].data)

    @torch.no_grad()
    def _features(self, data: dict) -> np.ndarray:
        batch = self.model.data_preprocessor(
            dict(inputs=[data['inputs']], data_samples=[data['data_samples']]), False)
        inputs, meta = batch['inputs'], batch['data_samples'][0].metainfo
        settings = self.model.test_settings
        if settings.mode == 'whole':
            return self._clip_dense(self.model.whole_views(inputs, [meta])).float().cpu().numpy()
        height, width = meta['img_shape'][:2]
        views = patch_logits(inputs[:, :, :height, :width], self._clip_dense,
                             crop_size=settings.crop_size, stride=settings.stride,
                             resize_to=settings.resize_to,
                             with_global_view=settings.with_global_view)
        return views.logits[:, 0].float().cpu().numpy()   # (V, 1, C, h, w) -> (V, C, h, w)

    def _clip_dense(self, views: Tensor) -> Tensor:
        """(N, 3, h_v, w_v) views -> (N, C, h, w) dense embeddings, at the CLIP resolution as
        ``CATSeg.class_logits`` reads them."""
        return self.model.clip_features(views).dense
