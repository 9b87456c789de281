"""Which checkpoint ``tools/train.py --resume`` continues from, checked before the runner reads it."""
import os.path as osp

import torch

# What mmengine's Runner.resume reads from a checkpoint besides the weights.
RESUME_KEYS = ('meta', 'state_dict', 'optimizer')


def check_resume_checkpoint(path: str) -> None:
    """Refuse a ``--resume`` file that is not a training checkpoint before the runner reads it:
    mmengine would stop with a traceback on a truncated or foreign file.

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: Naming the file: unreadable (truncated, not a ``torch.save`` file, or a pickle
            that is not plain data), or weights without the training state.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'--resume checkpoint {path!r} does not exist')
    try:
        # mmap: the check reads the file's structure, not every tensor.
        checkpoint = torch.load(path, map_location='cpu', weights_only=True, mmap=True)
    except Exception as error:  # the unpickler and the zip reader raise many types
        reason = (str(error).splitlines() or [''])[0]
        raise ValueError(f'cannot resume from {path!r}: it is not a readable checkpoint of '
                         'tools/train.py (truncated, or another kind of file: '
                         f'{type(error).__name__}: {reason})') from error
    missing = [key for key in RESUME_KEYS
               if not (isinstance(checkpoint, dict) and key in checkpoint)]
    if missing:
        raise ValueError(f'cannot resume from {path!r}: it has no training state {missing}, so '
                         'it is not a checkpoint of tools/train.py; to start training from its '
                         f'weights use --cfg-options load_from={path}')
