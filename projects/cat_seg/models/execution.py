"""Execution plans: how a CAT-Seg model runs its operations, chosen per call from the device.

- ``'plain'``: the paper's operations, every class and view in one batch, as the official code
  runs them; few, large kernels suit GPUs, where each operation costs a launch.
- ``'cpu'``: the same function computed in cache-sized steps with fused kernels and in-place
  buffers (``cpu_execution.py``), which suits a few CPU cores.
- ``'auto'``: ``'cpu'`` for CPU tensors, ``'plain'`` on every other device.
"""
EXECUTION_PLANS = ('plain', 'cpu')
EXECUTION_CHOICES = (*EXECUTION_PLANS, 'auto')


def check_execution(name: str) -> str:
    """``name`` if it is one of ``EXECUTION_CHOICES``, else a ValueError naming them."""
    if name not in EXECUTION_CHOICES:
        raise ValueError(f'execution={name!r} is not one of {list(EXECUTION_CHOICES)}')
    return name


def resolve_execution(name: str, device_type: str) -> str:
    """The plan that ``name`` means for tensors on ``device_type`` ('cpu', 'cuda', ...)."""
    if check_execution(name) != 'auto':
        return name
    return 'cpu' if device_type == 'cpu' else 'plain'
