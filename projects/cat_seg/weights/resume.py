"""Which checkpoint ``tools/train.py --resume`` continues from, checked before the runner reads it.

``--resume FILE`` is refused, naming FILE, unless FILE is a readable training checkpoint whose
weights fit the config's model (mmengine resumes non-strictly: it would go on with the keys that
differ left at their initialisation, or fail later without naming FILE).
``--resume`` alone looks only inside the work dir being resumed: the checkpoint ``last_checkpoint``
names (by file name, so a copied or moved work dir resumes from its own copy), then
``iter_<N>.pth`` / ``epoch_<N>.pth`` from the largest N down; unreadable ones (torn, empty, not a
checkpoint) are skipped with one warning line.
"""
import os
import os.path as osp
import re
import sys
from typing import List, Optional

import torch
from mmseg.utils import ConfigType

from .loading import check_state_dict_fits
from .meta_device import build_model_on_meta

# What mmengine's Runner.resume reads from a checkpoint besides the weights.
RESUME_KEYS = ('meta', 'state_dict', 'optimizer')
# File names of mmengine's CheckpointHook (filename_tmpl 'iter_{}.pth' / 'epoch_{}.pth').
STEP_CHECKPOINT = re.compile(r'^(?:iter|epoch)_(\d+)\.pth$')


def resume_problem(path: str) -> Optional[str]:
    """Why ``path`` cannot be resumed from (unreadable: truncated, empty, not a ``torch.save``
    file or a pickle that is not plain data; or weights without the training state), or None."""
    try:
        # mmap: the check reads the file's structure, not every tensor.
        checkpoint = torch.load(path, map_location='cpu', weights_only=True, mmap=True)
    except Exception as error:  # the unpickler and the zip reader raise many types
        reason = (str(error).splitlines() or [''])[0]
        return ('it is not a readable checkpoint of tools/train.py (truncated, or another kind '
                f'of file: {type(error).__name__}: {reason})')
    missing = [key for key in RESUME_KEYS
               if not (isinstance(checkpoint, dict) and key in checkpoint)]
    if missing:
        return (f'it has no training state {missing}, so it is not a checkpoint of '
                f'tools/train.py; to start training from its weights use --cfg-options '
                f'load_from={path}')
    return None


def check_resume_checkpoint(path: str, model_cfg: ConfigType) -> None:
    """Refuse a ``--resume`` file before the runner reads it unless it is a training checkpoint
    of the config's model: mmengine would stop with a traceback on a truncated or foreign file.

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: ``cannot resume from '<path>': <resume_problem>``, or naming the keys that do
            not fit ``model_cfg``.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'--resume checkpoint {path!r} does not exist')
    problem = resume_problem(path)
    if problem:
        raise ValueError(f'cannot resume from {path!r}: {problem}')
    check_resume_fits(path, model_cfg)


def check_resume_fits(path: str, model_cfg: ConfigType) -> None:
    """Refuse a readable training checkpoint whose weights do not fit ``model_cfg``'s model.

    Raises:
        ValueError: ``cannot resume from '<path>': its weights do not match the config: ...``.
    """
    state_dict = torch.load(path, map_location='cpu', weights_only=True, mmap=True)['state_dict']
    check_state_dict_fits(build_model_on_meta(model_cfg), state_dict,
                          f'cannot resume from {path!r}: its weights do not match the config',
                          'resume with the config it was trained with')


def resume_candidates(work_dir: str) -> List[str]:
    """Checkpoints of ``work_dir``, newest first: the one ``last_checkpoint`` names (looked up by
    its file name inside ``work_dir``), then ``iter_<N>.pth`` / ``epoch_<N>.pth`` by N."""
    recorded = osp.join(work_dir, 'last_checkpoint')
    candidates = []
    if osp.isfile(recorded):
        with open(recorded) as file:
            name = osp.basename(file.read().strip())
        if name:
            candidates.append(osp.join(work_dir, name))
    steps = {}
    for name in (os.listdir(work_dir) if osp.isdir(work_dir) else []):
        match = STEP_CHECKPOINT.match(name)
        if match:
            steps[osp.join(work_dir, name)] = int(match[1])
    candidates += sorted(steps, key=steps.get, reverse=True)
    return list(dict.fromkeys(candidates))


def auto_resume_checkpoint(work_dir: str, model_cfg: ConfigType) -> Optional[str]:
    """The newest readable checkpoint of ``work_dir`` (``resume_candidates``), None when the work
    dir has none and records none (a new run). Skipped files are named in one warning line.

    Raises:
        ValueError: The work dir has checkpoints (or ``last_checkpoint`` names one), and none is
            readable: naming the work dir and each file tried with its problem. Or the newest
            readable one does not fit ``model_cfg`` (``check_resume_fits``).
    """
    tried = []
    for path in resume_candidates(work_dir):
        problem = resume_problem(path) if osp.isfile(path) else 'it does not exist'
        if problem is None:
            if tried:
                print(f'warning: skipped {"; ".join(tried)}; resuming from {path!r}',
                      file=sys.stderr)
            check_resume_fits(path, model_cfg)
            return path
        tried.append(f'{path!r} ({problem})')
    if tried:
        raise ValueError(f'no readable checkpoint to resume from in the work dir {work_dir!r}; '
                         f'tried {"; ".join(tried)}')
    return None
