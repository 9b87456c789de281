"""Small helpers shared by the command-line tools."""
import argparse
import contextlib
import logging
import os
import os.path as osp
import sys
import tempfile
from pathlib import Path
from typing import Callable, NoReturn, Optional

import torch
import torch.distributed as dist
from mmengine.config import Config, DictAction
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS
from PIL import Image

from .apis.text_cache import DEFAULT_TEXT_CACHE
from .models.segmentor.inference_settings import PRECISIONS
from .vocabulary import VOCABULARY_NAMES
from .weights.download import WEIGHTS_URL_ENV, released_weights_url


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
    """Every tool's handling of a bad argument or input: ``error: <message>`` on one line and
    exit status 2 (the traceback with ``--debug``).

    Examples:
        >>> with main_guard(args.debug):
        ...     check_arguments(args)
    """
    try:
        yield
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as error:
        if debug:
            raise
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f'error: {message}', file=sys.stderr)
        raise SystemExit(2) from None


def add_vocabulary_arguments(parser: argparse.ArgumentParser) -> None:
    """--vocab, --vocab-file or --dataset, one required (``vocabulary.read_vocabulary``)."""
    vocab = parser.add_mutually_exclusive_group(required=True)
    vocab.add_argument('--vocab', help='comma-separated class names, e.g. "sky, tree, person"')
    vocab.add_argument('--vocab-file', help='one name per line, a JSON list of names (or of '
                       'synonym lists), or a category file ([{"name": ..., "id": ...}, ...])')
    vocab.add_argument('--dataset', choices=VOCABULARY_NAMES,
                       help='the vocabulary of a benchmark or of the training set')


def check_writable(out: Path) -> None:
    """Create the output directory ``out`` and check that a file can be written in it.

    Raises:
        ValueError: Naming the directory and why not.
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):   # a probe of its own: ranks check at once
            pass
    except OSError as error:
        raise ValueError(f'output directory {str(out)!r} is not writable: {error}') from error


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The model options of the image tools (tools/demo.py, tools/segment.py); used by
    ``build_inferencer``."""
    parser.add_argument('--config', default='configs/catseg_vitb.py')
    parser.add_argument('--checkpoint', help='our or an official checkpoint: a path or a URL '
                        '(downloaded once into $TORCH_HOME/hub/checkpoints); default: the '
                        'released weights of --config (configs/metafile.yaml, or '
                        f'${WEIGHTS_URL_ENV})')
    parser.add_argument('--mode', choices=['slide', 'whole'], default='slide')
    parser.add_argument('--onnx', help='run each view\'s class logits from this ONNX graph '
                        '(tools/deployment/export_onnx.py, exported with the same --mode) on '
                        'onnxruntime\'s CPU provider (docs/deployment.md)')


def build_inferencer(args: argparse.Namespace, checkpoint: str):
    """The ``CATSegInferencer`` of ``add_model_arguments`` and ``add_inference_arguments``."""
    from .apis import CATSegInferencer   # the models' import is not needed by every tool
    return CATSegInferencer(args.config, checkpoint, args.device, args.mode,
                            text_cache_dir=args.text_cache or None, precision=args.precision,
                            backend='onnxruntime' if args.onnx else 'torch', onnx=args.onnx)


def add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    """Options the inference tools share (tools/demo.py, tools/webui.py); checked by
    ``check_inference_arguments``."""
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--precision', default='fp32', choices=list(PRECISIONS),
                        help='fp32 (default: reproduces the official numbers), or the forward '
                        'pass under autocast: bf16 on CPUs with bf16 units (AVX512-BF16, AMX; '
                        'elsewhere it runs in fp32, with a warning), fp16 on GPUs')
    parser.add_argument('--opacity', type=float, default=0.5,
                        help='weight of the class colours in the overlay, in [0, 1]')
    parser.add_argument('--text-cache', default=str(DEFAULT_TEXT_CACHE),
                        help='directory of text embeddings kept between runs ("" disables it)')
    parser.add_argument('--max-pixels', type=int, default=Image.MAX_IMAGE_PIXELS,
                        help='larger images are refused as possible decompression bombs '
                        '(default: PIL\'s limit, %(default)s)')
    parser.add_argument('--debug', action='store_true', help='show tracebacks')


def check_inference_arguments(args: argparse.Namespace) -> str:
    """Check the options of ``add_inference_arguments`` and ``config``; set the image size
    limit; return the checkpoint to load (``checkpoint_to_load``)."""
    if not Path(args.config).is_file():
        raise FileNotFoundError(f'config file {args.config!r} does not exist')
    if not 0 <= args.opacity <= 1:
        raise ValueError(f'--opacity {args.opacity} must be in [0, 1]')
    if args.max_pixels < 1:
        raise ValueError(f'--max-pixels {args.max_pixels} must be a positive number of pixels')
    Image.MAX_IMAGE_PIXELS = args.max_pixels   # read by load_rgb for every image
    return checkpoint_to_load(args.config, args.checkpoint)


def checkpoint_to_load(config: str, checkpoint: Optional[str]) -> str:
    """The checkpoint an inference tool loads (a path or a URL): ``checkpoint``, else the
    released weights of ``config``, named in a ``weights:`` line.

    Raises:
        FileNotFoundError: No such checkpoint file.
        ValueError: No checkpoint given and ``config`` has no released weights.
    """
    resolved = checkpoint or released_weights_url(config)
    if '://' not in resolved and not Path(resolved).is_file():
        raise FileNotFoundError(f'no checkpoint at {resolved!r}: give a file or a URL with '
                                '--checkpoint, or leave it out for the released weights')
    if not checkpoint:
        origin = (f'${WEIGHTS_URL_ENV}' if os.environ.get(WEIGHTS_URL_ENV)
                  else Path(config).parent / 'metafile.yaml')
        print(f'weights: {resolved} (no --checkpoint: the weights of {config} in {origin})')
    return resolved


def exit_tool(main: Callable[[], int]) -> NoReturn:
    """Run a runner tool's ``main`` and exit with its status.

    A distributed run ends with ``os._exit`` once its output is flushed. Its DDP wrapper keeps
    the gloo process group, and so gloo's worker threads, alive into interpreter shutdown; a
    worker still releasing the tensors of the last collective then cannot take the GIL, is
    unwound through C++ and the process aborts (SIGABRT, "terminate called without an active
    exception") after its work is done: about one 2-process CPU run in five (torch 2.14,
    Python 3.11). Freeing the group earlier could deadlock instead (the main thread would join
    that worker while holding the GIL). Nothing is lost: checkpoints and logs are closed files
    by then, the visualizer closes in ``after_run``, and the OpenMMLab stack registers no
    ``atexit`` work.
    """
    try:
        status = main()
    except SystemExit as error:
        status = error.code
    if not (dist.is_available() and dist.is_initialized()):
        sys.exit(status)
    if status is not None and not isinstance(status, int):
        print(status, file=sys.stderr)  # what sys.exit does with a message
        status = 1
    dist.destroy_process_group()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status or 0)


def add_runner_arguments(parser: argparse.ArgumentParser) -> None:
    """Options every runner tool shares (MMSeg's usual names)."""
    parser.add_argument('--work-dir', help='directory for logs, checkpoints and metrics')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config values, e.g. train_cfg.max_iters=100')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    parser.add_argument('--debug', action='store_true', help='show tracebacks')


# What mmengine's slurm set-up reads; srun sets them in every task.
SLURM_VARIABLES = ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST')


def check_launcher_variables(launcher: str, wrapper: str) -> None:
    """Refuse ``--launcher slurm`` outside a task started by srun (``wrapper`` starts one).

    Raises:
        ValueError: Naming the variables that are missing.
    """
    missing = [name for name in SLURM_VARIABLES if name not in os.environ]
    if launcher == 'slurm' and missing:
        raise ValueError(f'--launcher slurm needs the variables srun sets; {missing} are not set: '
                         f'start the tool with {wrapper}')


def load_runner_config(args: argparse.Namespace, before_options=None) -> Config:
    """The config of a runner tool: file checked, launcher, ``before_options(cfg)`` (e.g. a
    benchmark), ``--cfg-options``, work dir (default ``work_dirs/<config name>``), backend."""
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    if not osp.isfile(args.config):
        raise FileNotFoundError(f'config file {args.config!r} does not exist')
    check_launcher_variables(args.launcher, 'tools/slurm_train.sh or tools/slurm_test.sh')
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if before_options is not None:
        before_options(cfg)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        './work_dirs', osp.splitext(osp.basename(args.config))[0])
    configure_distributed_backend(cfg)
    return cfg
