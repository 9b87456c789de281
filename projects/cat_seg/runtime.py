"""Small helpers shared by the command-line tools."""
import contextlib
import sys

import torch
from mmengine.config import Config
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class CATSegCPUDistributedDataParallel(MMDistributedDataParallel):
    """mmengine's DDP wrapper for CPU processes: the runner passes ``device_ids=[LOCAL_RANK]``,
    which torch rejects for a module on the CPU."""

    def __init__(self, module, device_ids=None, **kwargs):
        super().__init__(module=module, device_ids=None, **kwargs)


def configure_distributed_backend(cfg: Config) -> None:
    """Without CUDA: gloo instead of mmseg's default NCCL, and the CPU DDP wrapper."""
    if not torch.cuda.is_available():
        cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
        cfg.setdefault('model_wrapper_cfg', dict(
            type='CATSegCPUDistributedDataParallel',
            find_unused_parameters=cfg.get('find_unused_parameters', False)))


@contextlib.contextmanager
def main_guard(debug: bool):
    """Turn a user-facing error into ``error: <message>`` and exit status 2 (traceback with
    ``--debug``)."""
    try:
        yield
    except (FileNotFoundError, ValueError, TypeError, KeyError, RuntimeError) as error:
        if debug:
            raise
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f'error: {message}', file=sys.stderr)
        raise SystemExit(2) from None
