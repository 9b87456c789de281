"""CAT-Seg segmentor (Cho et al., "CAT-Seg: Cost Aggregation for Open-Vocabulary Semantic
Segmentation", CVPR 2024, arXiv:2303.11797)."""
import contextlib
import copy
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import ConfigType, OptConfigType, OptSampleList, SampleList, add_prefix
from torch import Tensor

from ..clip.finetune_policy import apply_finetune_policy
from ..compile import compile_options, compile_parts
from ..execution import ExecutionPlan, check_execution, execution_plan
from ..head.catseg_head import CATSegHeadInputs
from ..head.cost_volume import ClassLogits
from .patch_inference import PatchLogits, fused_chunks, patch_logits
from .postprocessing import (ClassMaps, argmax_at_original, class_probabilities, dense_maps,
                             image_class_maps, to_original)
from .inference_settings import InferenceSettings
from .precision import autocast_dtype


@MODELS.register_module()
class CATSeg(EncoderDecoder):
    """CAT-Seg: CLIP cost volume, cost aggregation and upsampling decoder (paper §3).

    The vocabulary is data: class names are encoded per call (cached by the text encoder), so one
    model predicts over any list of names without rebuilding. Every mode shares one feature path::

        loss():    whole_views() -> class_logits() -> decode_head.loss_by_feat()
        predict(): inference() -> postprocess_result()
        inference(): whole_views() | patch_logits() -> class_logits() -> probabilities at
                   model resolution, in class chunks
        postprocess_result(): probabilities at ori_shape -> SegDataSample(seg_logits=
                   probabilities, pred_sem_seg=argmax) (or, with test_cfg.return_probs=False,
                   argmax and class scores only)
        _forward(): whole_views() -> class_logits()

        class_logits(): backbone() -> guidance() -> text_encoder(vocabulary) -> decode_head()

    Args:
        backbone (ConfigType): CLIP image encoder, e.g. ``CATSegCLIPImageEncoder``.
        text_encoder (ConfigType): CLIP text encoder, e.g. ``CATSegCLIPTextEncoder``.
        guidance (ConfigType): Guidance source, e.g. ``CATSegCLIPGuidance``.
        decode_head (ConfigType): ``CATSegHead``.
        vocabulary (Sequence[str], optional): Class names predicted when a call gives none;
            ``CATSegVocabularyHook`` sets it from the evaluated dataset. Defaults to None.
        train_vocabulary (Sequence[str], optional): Class names of the training labels;
            ``CATSegVocabularyHook`` sets it from the training dataset. Defaults to None.
        finetune_policy (str | Sequence[str]): Which CLIP parameters train, a name of
            ``FINETUNE_POLICIES`` or patterns. Defaults to 'attention_qv' (release).
        pad_size_divisor (int): Images are zero-padded (in normalised space) to a multiple of
            this before the resize to the CLIP resolution, as the release does (fixture README
            §3); 0 or 1: no padding (official SIZE_DIVISIBILITY). Defaults to 32.
        execution (str): How the head and the post-processing run: 'plain' (the paper's
            operations, all classes and views batched: for GPUs), 'cpu' (the same function in
            cache-sized steps: for CPUs) or 'auto' (default): 'cpu' for CPU inputs, 'plain'
            on other devices, resolved at every call (``execution.resolve_execution``).
        compile (bool | dict): ``torch.compile`` the CLIP image encoder, guidance, head and
            loss in place (True, or a dict of ``torch.compile`` options); the sliding-window
            and post-processing Python stays eager (``compile.py``). Compiled models run the
            plain plan on every device. Defaults to False.
        train_cfg (dict, optional): Unused (mmseg's signature).
        test_cfg (dict, optional): Options of :class:`InferenceSettings`, validated whenever
            ``test_cfg`` is assigned (assign a new dict to change it): ``mode`` is 'whole' or
            'slide'; slide
            takes ``crop_size``, ``stride``, ``resize_to`` and ``with_global_view`` (paper App.
            A.3); whole takes ``whole_output``: 'stretch_padded' (release: the map of the padded
            image is stretched over the image, fixture README §8) or 'crop_padding'. Both take
            ``return_probs`` (default True): False skips the (T, H, W) probabilities at
            ``ori_shape`` and upsamples a few classes at a time into the argmax
            (``ExecutionPlan.argmax_chunk_bytes``), so memory does not grow with T
            (benchmarks, inferencer); the argmax is the same. ``precision``:
            'fp32' (default), or 'bf16' / 'fp16' to run the forward pass under autocast
            (bf16 on CPUs with AVX512-BF16/AMX, elsewhere fp32 with a warning; fp16 on GPUs:
            ``precision.autocast_dtype``); probabilities come back as float32 (deviation from
            fp32: README "Performance").
        data_preprocessor (dict, optional): ``SegDataPreProcessor`` with CLIP mean/std.
        init_cfg (dict, optional): Initialisation config.

    Examples:
        >>> # model = MODELS.build(cfg.model); model.predict(images, vocabulary=['sky', 'tree'])
    """

    def __init__(self,
                 backbone: ConfigType,
                 text_encoder: ConfigType,
                 guidance: ConfigType,
                 decode_head: ConfigType,
                 vocabulary: Optional[Sequence[str]] = None,
                 train_vocabulary: Optional[Sequence[str]] = None,
                 finetune_policy: Union[str, Sequence[str]] = 'attention_qv',
                 pad_size_divisor: int = 32,
                 execution: str = 'auto',
                 compile: Union[bool, dict] = False,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptConfigType = None):
        super().__init__(
            backbone=backbone,
            decode_head=decode_head,
            train_cfg=train_cfg,
            test_cfg=test_cfg,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        self.text_encoder = MODELS.build(text_encoder)
        self.guidance = MODELS.build(guidance)
        self.vocabulary = list(vocabulary) if vocabulary is not None else None
        self.train_vocabulary = list(train_vocabulary) if train_vocabulary is not None else None
        if pad_size_divisor < 0:
            raise ValueError(f'pad_size_divisor={pad_size_divisor} must be >= 0 (0 or 1: no '
                             'padding)')
        # 0 pads nothing in detectron2's ImageList and mmseg's stack_batch alike.
        self.pad_size_divisor = max(pad_size_divisor, 1)
        self.execution = check_execution(execution)
        self.trainable_clip_parameters = apply_finetune_policy(self, finetune_policy)
        options = compile_options(compile)
        if options is not None:
            if execution == 'cpu':
                raise ValueError("model.compile needs model.execution='plain' (or 'auto', which "
                                 "it makes 'plain'); the cpu plan is not compiled")
            # AOTAutograd gets the cpu plan's in-place chunk updates wrong (docs/gpu.md).
            self.execution = 'plain'
            compile_parts(self, options)

    @property
    def test_cfg(self) -> dict:
        """The inference options as configured; :attr:`test_settings` holds them validated."""
        return self._test_cfg

    @test_cfg.setter
    def test_cfg(self, cfg: Optional[dict]) -> None:
        self.test_settings = InferenceSettings.from_cfg(cfg)
        self._test_cfg = cfg if cfg is not None else dict(mode='whole')

    # ----------------------------------------------------------------- shared feature path
    @property
    def clip_size(self) -> Tuple[int, int]:
        """(H, W) of the CLIP input, e.g. (384, 384)."""
        return tuple(self.backbone.img_size)

    def encode_vocabulary(self, vocabulary: Optional[Sequence[str]], *,
                          training: bool = False) -> Tensor:
        """Text embeddings (T, P, C) of the given names, else of the current vocabulary."""
        if vocabulary is None:
            vocabulary = self.train_vocabulary if training else self.vocabulary
        if not vocabulary:
            which = 'train_vocabulary' if training else 'vocabulary'
            raise ValueError(f'CATSeg has no {which}: pass vocabulary=[...] to predict(), set '
                             f'model.{which} in the config, or add CATSegVocabularyHook to '
                             'custom_hooks so it is taken from the dataset metainfo')
        return self.text_encoder(vocabulary)

    def class_logits(self, views: Tensor, text_embeds: Tensor,
                     guidance_views: Optional[Tensor] = None,
                     plan: Optional[ExecutionPlan] = None) -> Tensor:
        """Per-class logits of a batch of views.

        Args:
            views (Tensor): Normalised images, (B, 3, H_img, W_img); resized to the CLIP
                resolution when they differ.
            text_embeds (Tensor): Class embeddings, (T, P, C).
            guidance_views (Tensor, optional): The guidance source's own views of the same
                images (``guidance_views()``); None: ``views`` as given, before the resize to
                the CLIP resolution (a 384x384 crop is what the v1 backbone reads).
            plan (ExecutionPlan, optional): The head's plan; None: the model's ``execution``.

        Returns:
            Tensor: Logits, (B, T, H_out, W_out), e.g. 96x96 for a 24x24 cost grid.
        """
        return self.decode_head(self._head_inputs(views, text_embeds, guidance_views),
                                plan or self._plan(views))

    def kept_logits(self, views: Tensor, text_embeds: Tensor,
                    guidance_views: Optional[Tensor] = None) -> ClassLogits:
        """:meth:`class_logits` of the classes the head kept, (B, K, H_out, W_out), and their
        indices (``CATSegHead.kept_logits``): the others' logit is a known constant."""
        return self.decode_head(self._head_inputs(views, text_embeds, guidance_views),
                                self._plan(views), kept=True)

    def _head_inputs(self, views: Tensor, text_embeds: Tensor,
                     guidance_views: Optional[Tensor]) -> CATSegHeadInputs:
        clip_feats = self.clip_features(views)
        guidance = self.guidance(views if guidance_views is None else guidance_views, clip_feats)
        text = text_embeds.unsqueeze(0).expand(views.shape[0], *text_embeds.shape)
        return CATSegHeadInputs(clip_feats.dense, text, guidance)

    def clip_features(self, views: Tensor):
        """CLIP image features (``CLIPImageFeatures``: dense (B, C, h, w) and intermediates) of
        normalised views (B, 3, H_img, W_img), resized to the CLIP resolution when they differ."""
        if tuple(views.shape[-2:]) != self.clip_size:
            views = F.interpolate(views, size=self.clip_size, mode='bilinear', align_corners=False)
        return self.backbone(views)

    def _plan(self, inputs: Tensor) -> ExecutionPlan:
        """The execution plan for tensors on the device of ``inputs``."""
        return execution_plan(self.execution, inputs.device.type)

    def whole_views(self, inputs: Tensor, batch_img_metas: List[dict],
                    size: Optional[Tuple[int, int]] = None,
                    pad_value: Optional[Tensor] = None) -> Tensor:
        """Each image cropped to its ``img_shape``, padded to ``pad_size_divisor`` with zeros (or
        the per-channel ``pad_value``, (3,)) in normalised space and resized to ``size`` (default
        the CLIP resolution), fixture README §3: (B, 3, *size)."""
        size = self.clip_size if size is None else tuple(size)
        views = []
        for image, meta in zip(inputs, batch_img_metas):
            image = self._unpadded(image, meta)
            height, width = image.shape[-2:]
            pad_h, pad_w = (-s % self.pad_size_divisor for s in (height, width))
            if pad_value is None:
                image = F.pad(image, (0, pad_w, 0, pad_h))
            else:
                padded = pad_value.to(image).view(-1, 1, 1).repeat(1, height + pad_h,
                                                                   width + pad_w)
                padded[:, :height, :width] = image
                image = padded
            views.append(F.interpolate(image[None], size=size, mode='bilinear',
                                       align_corners=False))
        return torch.cat(views)

    def guidance_views(self, inputs: Tensor, batch_img_metas: List[dict]) -> Optional[Tensor]:
        """Whole-image views of the guidance source's own size and padding (the paper's
        backbone: 384x384, zero in ImageNet normalisation), or None when it reads the CLIP
        views."""
        if self.guidance.img_size is None:
            return None
        return self.whole_views(inputs, batch_img_metas, self.guidance.img_size,
                                self.guidance.pad_value)

    def whole_logits(self, inputs: Tensor, batch_img_metas: List[dict],
                     text_embeds: Tensor) -> Tensor:
        """:meth:`class_logits` of the whole images, from their CLIP and guidance views."""
        return self.class_logits(self.whole_views(inputs, batch_img_metas), text_embeds,
                                 self.guidance_views(inputs, batch_img_metas))

    @staticmethod
    def _unpadded(image: Tensor, meta: dict) -> Tensor:
        height, width = meta.get('img_shape', image.shape[-2:])[:2]
        return image[..., :height, :width]

    # ----------------------------------------------------------------- mmseg entry points
    def extract_feat(self, inputs: Tensor):
        """CLIP features of CLIP-sized views: ``CLIPImageFeatures``."""
        return self.backbone(inputs)

    def encode_decode(self, inputs: Tensor, batch_img_metas: List[dict]) -> Tensor:
        """Logits of the whole images over the current vocabulary, (B, T, H_out, W_out)."""
        return self.whole_logits(inputs, batch_img_metas, self.encode_vocabulary(None))

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        """Per-pixel BCE of the whole (cropped) images over the training vocabulary."""
        logits = self.whole_logits(inputs, [s.metainfo for s in data_samples],
                                   self.encode_vocabulary(None, training=True))
        return add_prefix(self.decode_head.loss_by_feat(logits, data_samples), 'decode')

    def _forward(self, inputs: Tensor, data_samples: OptSampleList = None) -> Tensor:
        """Whole-image logits without post-processing, (B, T, H_out, W_out)."""
        return self.encode_decode(inputs, self._metas(inputs, data_samples))

    def predict(self,
                inputs: Tensor,
                data_samples: OptSampleList = None,
                vocabulary: Optional[Sequence[str]] = None) -> SampleList:
        """Segment a batch over ``vocabulary`` (default: ``self.vocabulary``).

        Returns:
            list[SegDataSample]: ``seg_logits`` holds class probabilities (T, H, W) at
            ``ori_shape`` (sigmoid outputs, averaged over views in slide mode) and
            ``pred_sem_seg`` their argmax (1, H, W). With ``test_cfg.return_probs=False``,
            ``seg_logits`` is replaced by ``pred_class_scores`` (T,), each class's mean
            probability over the image.
        """
        metas = self._metas(inputs, data_samples)
        plan = self._plan(inputs)
        text_embeds = self.encode_vocabulary(vocabulary)
        probs = self.inference(inputs, metas, text_embeds, plan)
        return self.postprocess_result(probs, data_samples, metas, len(text_embeds), plan)

    def inference(self, inputs: Tensor, batch_img_metas: List[dict], text_embeds: Tensor,
                  plan: ExecutionPlan) -> List[Iterable[ClassMaps]]:
        """Class probabilities of each image at model resolution, by ``test_cfg.mode``.

        Returns:
            list: Per image, its probabilities in class groups (``ClassMaps``), each map
            (t, h, w) or (1, t, h, w); in slide mode the groups are merged from the views as they
            are read, so the merged maps of every class need not exist at once. The classes
            dropped beyond ``pad_len`` in every view share one map.
        """
        with self._autocast(inputs.device.type):
            if self.test_settings.mode == 'slide':
                return [fused_chunks(patches, plan.merge_classes)
                        for patches in self._slide_patches(inputs, batch_img_metas, text_embeds)]
            return self._whole_probs(inputs, batch_img_metas, text_embeds)

    def postprocess_result(self, probs: List[Iterable[ClassMaps]], data_samples: OptSampleList,
                           batch_img_metas: List[dict], num_classes: int,
                           plan: ExecutionPlan) -> SampleList:
        """:meth:`inference`'s probabilities of the ``num_classes`` classes at ``ori_shape`` and
        their argmax, in ``data_samples`` (new ones when None), as :meth:`predict` documents."""
        if data_samples is None:
            data_samples = [SegDataSample(metainfo=meta) for meta in batch_img_metas]
        for sample, groups, meta in zip(data_samples, probs, batch_img_metas):
            # Maps at model resolution, (1 or absent, t, h, w) -> (t, h, w).
            groups = (ClassMaps(classes, maps.float().reshape(-1, *maps.shape[-2:]))
                      for classes, maps in groups)
            if self.test_settings.return_probs:
                prob = to_original(dense_maps(list(groups), num_classes), meta)
                sample.set_data(dict(pred_sem_seg=PixelData(data=prob.argmax(0, keepdim=True)),
                                     seg_logits=PixelData(data=prob)))
            else:
                label, sample.pred_class_scores = argmax_at_original(
                    groups, meta, num_classes, plan.argmax_chunk_bytes)
                sample.set_data(dict(pred_sem_seg=PixelData(data=label)))
        return data_samples

    # ----------------------------------------------------------------- inference modes
    def _autocast(self, device_type: str):
        dtype = autocast_dtype(self.test_settings.precision, device_type)
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type, dtype=dtype)

    def _whole_probs(self, inputs: Tensor, metas: List[dict],
                     text_embeds: Tensor) -> List[List[ClassMaps]]:
        """Each image's probabilities (t, h, w) in class groups (``image_class_maps``)."""
        # Through decode_head's __call__ (its hooks see every class): one view, nothing to merge.
        logits = ClassLogits(self.whole_logits(inputs, metas, text_embeds))
        return [[ClassMaps(classes, self._whole_output(class_probabilities(maps), meta,
                                                       inputs.shape[-2:]))
                 for classes, maps in image_class_maps(logits, index)]
                for index, meta in enumerate(metas)]

    def _whole_output(self, prob: Tensor, meta: dict, input_size: Tuple[int, int]) -> Tensor:
        """Whole-image probabilities (t, h, w) as ``test_cfg.whole_output`` asks."""
        if self.test_settings.whole_output == 'crop_padding':
            height, width = meta.get('img_shape', input_size)[:2]
            padded = tuple(s + (-s % self.pad_size_divisor) for s in (height, width))
            prob = F.interpolate(prob[None], size=padded, mode='bilinear',
                                 align_corners=False)[0, :, :height, :width]
        return prob

    def _slide_patches(self, inputs: Tensor, metas: List[dict],
                       text_embeds: Tensor) -> List[PatchLogits]:
        """Each image's view logits; ``fused_chunks`` merges them a class chunk at a time."""
        cfg = self.test_settings
        return [patch_logits(self._unpadded(image, meta)[None],
                             lambda views: self.kept_logits(views, text_embeds),
                             crop_size=cfg.crop_size, stride=cfg.stride,
                             resize_to=cfg.resize_to, with_global_view=cfg.with_global_view)
                for image, meta in zip(inputs, metas)]

    @staticmethod
    def _metas(inputs: Tensor, data_samples: OptSampleList) -> List[dict]:
        if data_samples is not None:
            return [copy.copy(sample.metainfo) for sample in data_samples]
        shape = tuple(inputs.shape[-2:])
        return [dict(ori_shape=shape, img_shape=shape, pad_shape=shape)
                for _ in range(inputs.shape[0])]
