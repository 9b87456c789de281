"""ONNX export of CAT-Seg's class-logits call and its onnxruntime stand-in (issue 23 item 1).

The graph is :meth:`CATSeg.class_logits` under the plain execution plan: one view (1, 3, H, W)
and the text embeddings (T, P, C) in, the view's class logits (1, T, h, w) out. The text encoder
stays in torch: it runs once per vocabulary (and is cached on disk), so the image path is what
an export speeds up. :class:`OnnxClassLogits` replaces the segmentor's ``class_logits`` on an
instance, so whole and slide inference, merging and post-processing are the segmentor's own.

Which shapes the graph keeps dynamic (docs/deployment.md): T, for every T above the head's
``pad_len`` (the top-``pad_len`` selection runs inside the graph); the views go through it one
at a time, since the Swin window partition is traced with a fixed batch.
"""
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from ..models.head.cost_volume import ClassLogits
from ..models.segmentor.catseg import CATSeg

INPUT_NAMES = ('views', 'text_embeds')
OUTPUT_NAME = 'logits'


class ClassLogitsGraph(nn.Module):
    """``model.class_logits(views, text_embeds)`` as a module torch.onnx can trace."""

    def __init__(self, model: CATSeg):
        super().__init__()
        self.model = model

    def forward(self, views: Tensor, text_embeds: Tensor) -> Tensor:
        """Views (1, 3, H, W), embeddings (T, P, C) -> logits (1, T, h, w)."""
        return self.model.class_logits(views, text_embeds)


def unsupported_options(model: CATSeg) -> List[str]:
    """The options of ``model`` the exported graph cannot reproduce, each as 'option=value'."""
    head = model.decode_head
    problems = []
    if model.execution == 'cpu':   # the plain plan is exported; 'auto' resolves to it here
        problems.append("execution='cpu'")
    if model.test_settings.precision != 'fp32':
        problems.append(f'test_cfg.precision={model.test_settings.precision!r}')
    if model.guidance.img_size is not None:   # its own views would be a second graph input
        problems.append(f'guidance={type(model.guidance).__name__} (own views)')
    if not head.pad_len or head.keep_all_classes:
        # Without the top-pad_len selection the class count is traced into the Swin windows.
        problems.append(f'decode_head.pad_len={head.pad_len}, keep_all_classes='
                        f'{head.keep_all_classes}')
    if head.class_chunk_size not in (None, 'auto'):
        problems.append(f'decode_head.class_chunk_size={head.class_chunk_size!r}')
    return problems


def view_size(model: CATSeg) -> Tuple[int, int]:
    """(H, W) of the views the segmentor passes to ``class_logits`` in its ``test_cfg.mode``."""
    if model.test_settings.mode == 'slide':
        return tuple(model.test_settings.crop_size)
    return model.clip_size


def export_onnx(model: CATSeg, out: Path, opset: int = 17) -> None:
    """Write the class-logits graph of ``model`` for the views of its ``test_cfg.mode`` to
    ``out``.

    Raises:
        ValueError: Options the graph cannot reproduce (:func:`unsupported_options`).
    """
    problems = unsupported_options(model)
    if problems:
        raise ValueError('the ONNX export does not support ' + ', '.join(problems))
    size = view_size(model)
    model.execution = 'plain'
    graph = ClassLogitsGraph(model).eval()
    views = torch.randn(1, 3, *size)
    with torch.no_grad():
        # More classes than pad_len, so the selection (and every T above it) is in the trace.
        names = [f'class {i}' for i in range(model.decode_head.pad_len + 1)]
        text = model.encode_vocabulary(names)
        torch.onnx.export(graph, (views, text), str(out), dynamo=False, opset_version=opset,
                          input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME],
                          dynamic_axes={'text_embeds': {0: 'classes'},
                                        OUTPUT_NAME: {1: 'classes'}})


class OnnxClassLogits:
    """An onnxruntime session (CPU provider) called as :meth:`CATSeg.class_logits`.

    Args:
        path (str | Path): An ONNX file written by :func:`export_onnx`.
        pad_len (int): The exported head's ``pad_len``: the graph takes longer vocabularies only.
    """

    def __init__(self, path, pad_len: int):
        import onnxruntime
        self.session = onnxruntime.InferenceSession(
            str(path), providers=['CPUExecutionProvider'])
        self.view_shape = tuple(self.session.get_inputs()[0].shape[-2:])
        self.pad_len = pad_len

    def __call__(self, views: Tensor, text_embeds: Tensor,
                 guidance_views: Optional[Tensor] = None) -> Tensor:
        """Views (B, 3, H, W), embeddings (T, P, C) -> logits (B, T, h, w), view by view."""
        if tuple(views.shape[-2:]) != self.view_shape:
            raise ValueError(f'the ONNX graph takes {self.view_shape} views, got '
                             f'{tuple(views.shape[-2:])}: export it with the --mode and '
                             'test_cfg used for inference')
        if text_embeds.shape[0] <= self.pad_len:
            raise ValueError(f'the ONNX graph takes more than pad_len={self.pad_len} classes, '
                             f'got {text_embeds.shape[0]}')
        text = text_embeds.float().cpu().numpy()
        logits = [self.session.run(None, {INPUT_NAMES[0]: view[None].float().cpu().numpy(),
                                          INPUT_NAMES[1]: text})[0] for view in views]
        return torch.from_numpy(np.concatenate(logits)).to(views.device)


def use_onnx(model: CATSeg, path) -> CATSeg:
    """``model`` with its ``class_logits`` run by onnxruntime from ``path``; everything else
    (views, merging, post-processing) stays the segmentor's."""
    onnx_logits = OnnxClassLogits(path, model.decode_head.pad_len)
    model.class_logits = onnx_logits
    # Inference reads the kept classes; the graph returns every class (dropped ones at -100).
    model.kept_logits = lambda *args: ClassLogits(onnx_logits(*args))
    return model
