"""Small helpers shared by the command-line tools."""
import contextlib
import sys

import torch
from mmengine.config import Config


def configure_distributed_backend(cfg: Config) -> None:
    """Use gloo when CUDA is absent: mmseg's default runtime asks for NCCL, which needs GPUs."""
    if not torch.cuda.is_available():
        cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'


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
