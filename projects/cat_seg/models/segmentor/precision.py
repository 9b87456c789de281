"""The dtype ``test_cfg.precision`` runs the forward pass in on a given device."""
import warnings
from typing import Optional

import torch

from .inference_settings import PRECISIONS

# cpuinfo's names (torch.cpu.get_capabilities) for bf16 arithmetic: x86 AVX512-BF16 and AMX-BF16,
# Arm's BF16 and SVE-BF16 extensions.
BF16_UNITS = ('avx512_bf16', 'amx_bf16', 'bf16', 'sve_bf16')
_fallback_warned = False


def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 arithmetic units (``BF16_UNITS``), as cpuinfo reports them.

    Before torch's ``torch.cpu.get_capabilities``, oneDNN's own check stands in; it also accepts
    AVX512 cores that only emulate bf16.
    """
    capabilities = getattr(torch.cpu, 'get_capabilities', None)
    if capabilities is None:
        return bool(torch.backends.mkldnn.is_available()
                    and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    found = capabilities()
    return any(found.get(unit, False) for unit in BF16_UNITS)


def autocast_dtype(precision: str, device_type: str) -> Optional[torch.dtype]:
    """The autocast dtype of ``precision`` (``PRECISIONS``) on ``device_type``; None: float32.

    'bf16' on a CPU without bf16 units runs in float32 with one warning per process: emulated
    there, it is slower than float32 and no more accurate. 'fp16' autocasts on every device.
    """
    global _fallback_warned
    if precision == 'bf16' and device_type == 'cpu' and not cpu_has_bf16():
        if not _fallback_warned:
            warnings.warn("precision='bf16' runs in fp32: this CPU has no bf16 units "
                          '(AVX512-BF16, AMX or Arm BF16), where bf16 would be emulated and '
                          'slower than fp32')
            _fallback_warned = True
        return None
    return PRECISIONS[precision]
