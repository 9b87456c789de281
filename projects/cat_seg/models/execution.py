"""Execution plans: how a CAT-Seg model runs its operations, and the class chunking they share.

A plan is a frozen set of choices read by each module's one ``forward``; every choice computes
the same function (equal up to float rounding), only the order and size of the operations
change. ``PLAIN_PLAN`` has every field at its default: each module then reads as the paper, all
classes and views in one batch (few, large kernels, what a GPU wants). ``CPU_PLAN`` turns on the
cache-sized steps, fused kernels and in-place buffers of ``fast_paths.py``, which suit a few CPU
cores; measurements behind each budget: docs/performance.md. ``'auto'`` picks the cpu plan for
CPU tensors and the plain plan on every other device, once per call (``CATSeg``).
"""
from dataclasses import dataclass, replace
from typing import Callable, List, Optional, Sequence

import torch
from torch import Tensor


@dataclass(frozen=True)
class ExecutionPlan:
    """What the modules do beyond the paper's operations. The defaults add nothing to the
    model's operations; they only bound the post-processing's memory (merge and argmax chunks).

    Attributes:
        class_chunk_bytes (int, optional): Working set of one class chunk of the per-class
            stages (cost embedding, spatial aggregation): with ``class_chunk_size='auto'``, as
            many classes at a time as fit. None: the head's own long-vocabulary chunking only.
        decoder_chunk_bytes (int, optional): The same for one chunk's last decoder stage.
        class_step_tokens (int, optional): Tokens per class-aggregation step with
            ``class_chunk_size='auto'`` (every class of a few pixels). None: as the chunks.
        in_place_above_bytes (int, optional): Cost embeddings larger than this are updated in
            place without autograd (one copy of them in memory, not three). None: never.
        window_ordered_tokens (bool): Spatial aggregation permutes the tokens once per block
            into its window order instead of rolling and partitioning q, k, v and the output.
        fused_upsampling (bool): Each decoder stage runs its transposed convolution and first
            3x3 convolution as one 2x2 convolution (``fast_paths.fuse_upsampling``).
        exp_elu (bool): elu(x) + 1 computed as exp(min(x, 0)) + max(x, 0) (CPU ELU is scalar).
        mlp_rows_per_step (int, optional): MLPs without autograd run this many tokens at a time
            with the activation in place. None: one call.
        merge_classes (int): Classes whose sliding-window views are merged at a time, so
            that the crop- and resize-size maps of every class never exist at once.
        argmax_chunk_bytes (int): Without probabilities at the original size
            (``return_probs=False``), classes are upsampled to it and folded into the argmax
            this many bytes of maps at a time (at least one class), so that memory does not
            grow with T.
        any_class_count (bool): No Python decision reads the vocabulary size T, so that a
            traced graph (the ONNX export) serves every T: the head keeps the top min(T,
            pad_len) classes also when T <= pad_len (then all of them, reordered: class
            aggregation is permutation-equivariant), class aggregation always adds its padding
            term (weight 0 when T >= pad_len) and classes are never chunked.
    """

    class_chunk_bytes: Optional[int] = None
    decoder_chunk_bytes: Optional[int] = None
    class_step_tokens: Optional[int] = None
    in_place_above_bytes: Optional[int] = None
    window_ordered_tokens: bool = False
    fused_upsampling: bool = False
    exp_elu: bool = False
    mlp_rows_per_step: Optional[int] = None
    merge_classes: int = 64
    argmax_chunk_bytes: int = 256 * 2 ** 20
    any_class_count: bool = False

    def in_place(self, x: Tensor) -> bool:
        """Whether a buffer the caller owns is large enough to be updated in place."""
        return (self.in_place_above_bytes is not None and not torch.is_grad_enabled()
                and x.numel() * x.element_size() > self.in_place_above_bytes)


PLAIN_PLAN = ExecutionPlan()
CPU_PLAN = ExecutionPlan(
    # glibc serves smaller blocks from a reused heap; larger ones are mapped afresh and
    # page-faulted at every call.
    class_chunk_bytes=32 * 2 ** 20,
    # One chunk's last-stage decoder maps stay within the L3 cache the convolutions stream.
    decoder_chunk_bytes=12 * 2 ** 20,
    # Every class of a few pixels: a (tokens, C) tile in L2/L3.
    class_step_tokens=4096,
    in_place_above_bytes=512 * 2 ** 20,
    window_ordered_tokens=True,
    fused_upsampling=True,
    exp_elu=True,
    # The hidden layer stays cache- and heap-resident instead of being streamed.
    mlp_rows_per_step=2048,
    # One class at a time: its map and the running maximum are the only full-size temporaries.
    argmax_chunk_bytes=0)
# The plain plan with T free: what the ONNX export traces (apis/onnx_backend.py).
EXPORT_PLAN = replace(PLAIN_PLAN, any_class_count=True)
EXECUTION_PLANS = {'plain': PLAIN_PLAN, 'cpu': CPU_PLAN}
EXECUTION_CHOICES = (*EXECUTION_PLANS, 'auto')


def check_execution(name: str) -> str:
    """``name`` if it is one of ``EXECUTION_CHOICES``, else a ValueError naming them."""
    if name not in EXECUTION_CHOICES:
        raise ValueError(f'execution={name!r} is not one of {list(EXECUTION_CHOICES)}')
    return name


def resolve_execution(name: str, device_type: str) -> str:
    """The plan name that ``name`` means for tensors on ``device_type`` ('cpu', 'cuda', ...)."""
    if check_execution(name) != 'auto':
        return name
    return 'cpu' if device_type == 'cpu' else 'plain'


def execution_plan(name: str, device_type: str = 'cpu') -> ExecutionPlan:
    """The :class:`ExecutionPlan` of ``name`` ('plain', 'cpu' or 'auto') on ``device_type``."""
    return EXECUTION_PLANS[resolve_execution(name, device_type)]


# ----------------------------------------------------------------------------- class chunks
def class_chunks(num_classes: int, size: Optional[int] = None) -> List[slice]:
    """Slices of at most ``size`` (None: all) consecutive indices covering
    ``range(num_classes)``."""
    size = size or num_classes
    return [slice(start, start + size) for start in range(0, num_classes, size)]


def chunk_of(x: Tensor, chunk: slice) -> Tensor:
    """Classes ``chunk`` of x (B, T, ...) as a contiguous (B, t, ...) tensor.

    With several views the slice is strided across images; a contiguous copy lets (B, t) flatten
    as a view, so the convolutions get channels-last input, oneDNN's fast layout.
    """
    return x[:, chunk].contiguous()


def concat_classes(parts: Sequence[Tensor], dim: int = 1) -> Tensor:
    """``parts`` concatenated along the class axis; a single part as it is (no copy)."""
    return parts[0] if len(parts) == 1 else torch.cat(list(parts), dim=dim)


def map_chunks(x: Tensor, chunks: Sequence[slice], fn: Callable[[Tensor], Tensor],
               in_place: bool = False) -> Tensor:
    """``fn`` of each class chunk of x (B, T, ...), concatenated along T; one chunk: ``fn(x)``.

    With ``in_place`` (no gradient recorded), the results overwrite x instead, for a caller that
    owns x and whose ``fn`` maps each class independently.
    """
    if in_place:
        for chunk in chunks:
            x[:, chunk] = fn(chunk_of(x, chunk))
        return x
    if len(chunks) == 1:
        return fn(x)
    return torch.cat([fn(chunk_of(x, chunk)) for chunk in chunks], dim=1)
