"""ONNX export of CAT-Seg's class-logits call and its onnxruntime stand-in (issue 23 item 1).

The graph is :meth:`CATSeg.class_logits` under ``EXPORT_PLAN`` (the plain plan with no Python
decision on the vocabulary size): views (B, 3, H, W) and text embeddings (T, P, C) in, class
logits (B, T, h, w) out, with B and T dynamic: one graph serves every vocabulary, the top-
``pad_len`` selection inside it. The text encoder stays in torch: it runs once per vocabulary
(and is cached on disk), so the image path is what an export speeds up.
:class:`OnnxClassLogits` replaces the segmentor's ``class_logits`` on an instance, so whole and
slide inference, merging and post-processing are the segmentor's own (docs/deployment.md).
"""
from contextlib import contextmanager
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from ..models.execution import EXPORT_PLAN
from ..models.head.cost_volume import ClassLogits
from ..models.segmentor.catseg import CATSeg

INPUT_NAMES = ('views', 'text_embeds')
OUTPUT_NAME = 'logits'
OPSET = 17
# Traced example sizes: none is 1 (broadcasting) or pad_len (the selection's edge).
TRACE_VIEWS, TRACE_CLASSES = 2, 3


class ClassLogitsGraph(nn.Module):
    """``model.class_logits(views, text_embeds)`` under ``EXPORT_PLAN``, for torch.onnx."""

    def __init__(self, model: CATSeg):
        super().__init__()
        self.model = model

    def forward(self, views: Tensor, text_embeds: Tensor) -> Tensor:
        """Views (B, 3, H, W), embeddings (T, P, C) -> logits (B, T, h, w)."""
        return self.model.class_logits(views, text_embeds, plan=EXPORT_PLAN)


def unsupported_options(model: CATSeg) -> List[str]:
    """The options of ``model`` the exported graph cannot reproduce, each as 'option=value'."""
    problems = []
    if model.test_settings.precision != 'fp32':
        problems.append(f'test_cfg.precision={model.test_settings.precision!r}')
    if model.guidance.img_size is not None:   # its own views would be a second graph input
        problems.append(f'guidance={type(model.guidance).__name__} (own views)')
    return problems


def view_size(model: CATSeg) -> Tuple[int, int]:
    """(H, W) of the views the segmentor passes to ``class_logits`` in its ``test_cfg.mode``."""
    if model.test_settings.mode == 'slide':
        return tuple(model.test_settings.crop_size)
    return model.clip_size


def _unflatten(g, tensor, dim, sizes):
    """ONNX of ``aten::unflatten`` whose target shape ONNX shape inference can follow.

    torch's own symbolic slices the input's shape at indices it computes in the graph; the
    exporter cannot infer that shape and falls back to the sizes seen while tracing, which then
    fixes B and T in every later reshape. Here the indices are constants (the rank is known).
    """
    from torch.onnx import symbolic_helper
    rank = symbolic_helper._get_tensor_rank(tensor)
    dim = symbolic_helper._get_const(dim, 'i', 'dim') % rank
    shape = g.op('Shape', tensor)

    def dims(start, end):
        return g.op('Slice', shape, g.op('Constant', value_t=torch.tensor([start])),
                    g.op('Constant', value_t=torch.tensor([end])))

    parts = ([dims(0, dim)] if dim else []) + [sizes] + (
        [dims(dim + 1, rank)] if dim + 1 < rank else [])
    return g.op('Reshape', tensor, g.op('Concat', *parts, axis_i=0))


@contextmanager
def _dynamic_unflatten():
    """:func:`_unflatten` registered for the duration of one export."""
    torch.onnx.register_custom_op_symbolic('aten::unflatten', _unflatten, OPSET)
    try:
        yield
    finally:
        torch.onnx.unregister_custom_op_symbolic('aten::unflatten', OPSET)


def export_onnx(model: CATSeg, out: Path) -> None:
    """Write the class-logits graph of ``model`` for the views of its ``test_cfg.mode`` to
    ``out``.

    Raises:
        ValueError: Options the graph cannot reproduce (:func:`unsupported_options`).
    """
    problems = unsupported_options(model)
    if problems:
        raise ValueError('the ONNX export does not support ' + ', '.join(problems))
    graph = ClassLogitsGraph(model).eval()
    views = torch.randn(TRACE_VIEWS, 3, *view_size(model))
    with torch.no_grad(), _dynamic_unflatten():
        text = model.encode_vocabulary([f'class {i}' for i in range(TRACE_CLASSES)])
        torch.onnx.export(graph, (views, text), str(out), dynamo=False, opset_version=OPSET,
                          input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAMES[0]: {0: 'views'},
                                        INPUT_NAMES[1]: {0: 'classes'},
                                        OUTPUT_NAME: {0: 'views', 1: 'classes'}})


class OnnxClassLogits:
    """An onnxruntime session (CPU provider) called as :meth:`CATSeg.class_logits`.

    Args:
        path (str | Path): An ONNX file written by :func:`export_onnx`.
    """

    def __init__(self, path):
        import onnxruntime
        self.session = onnxruntime.InferenceSession(
            str(path), providers=['CPUExecutionProvider'])
        self.view_shape = tuple(self.session.get_inputs()[0].shape[-2:])

    def __call__(self, views: Tensor, text_embeds: Tensor,
                 guidance_views: Optional[Tensor] = None) -> Tensor:
        """Views (B, 3, H, W), embeddings (T, P, C) -> logits (B, T, h, w), one view per run:
        the graph aggregates every class of its views at once (no class chunking), so one
        view bounds the working set to the release's one image (slide-150 at ViT-B dims, five
        views in one run: 12.7 GB peak RSS)."""
        if tuple(views.shape[-2:]) != self.view_shape:
            raise ValueError(f'the ONNX graph takes {self.view_shape} views, got '
                             f'{tuple(views.shape[-2:])}: export it with the --mode and '
                             'test_cfg used for inference')
        text = text_embeds.float().cpu().contiguous().numpy()
        logits = [self.session.run(None, {INPUT_NAMES[0]: view[None].float().cpu().numpy(),
                                          INPUT_NAMES[1]: text})[0] for view in views]
        return torch.from_numpy(np.concatenate(logits)).to(views.device)


def use_onnx(model: CATSeg, path) -> CATSeg:
    """``model`` with its ``class_logits`` run by onnxruntime from ``path``; everything else
    (views, merging, post-processing) stays the segmentor's."""
    onnx_logits = OnnxClassLogits(path)
    model.class_logits = onnx_logits
    # Inference reads the kept classes; the graph returns every class (dropped ones at -100).
    model.kept_logits = lambda *args: ClassLogits(onnx_logits(*args))
    return model
