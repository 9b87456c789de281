"""Time a long-vocabulary request to the web app's ``segment`` endpoint, end to end.

    python tools/analysis_tools/benchmark_webui.py \
        [--config configs/misc/catseg_tiny_synthetic.py] [--num-classes 10000] [--mode slide] \
        [--threads 2] [--repeats 1] [--json out.json]

Starts ``tools/webui.py`` on the config with random weights (seeded; speed does not depend on
them), with ``--max-classes`` raised to the vocabulary size and ``--threads`` torch threads, then
sends the photo ``demo/astronaut.jpg`` through gradio_client, as a user's script would. Prints the
seconds of the first request (its text embeddings computed: no disk cache) and of each repeat
(the same vocabulary: embeddings kept in memory). Figures are printed, never asserted.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import torch

import cat_seg  # noqa: F401  (first: registers CAT-Seg and applies cat_seg.compat)
from cat_seg.configs import model_config
from mmseg.registry import MODELS
from mmseg.utils import register_all_modules

REPO_ROOT = Path(__file__).resolve().parents[2]
WEBUI = REPO_ROOT / 'tools' / 'webui.py'
PHOTO = REPO_ROOT / 'demo' / 'astronaut.jpg'


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--config', default=str(REPO_ROOT / 'configs' / 'misc' / 'catseg_tiny_synthetic.py'))
    parser.add_argument('--num-classes', type=int, default=10000)
    parser.add_argument('--mode', choices=['slide', 'whole'], default='slide')
    parser.add_argument('--threads', type=int, default=2, help='torch threads of the server')
    parser.add_argument('--repeats', type=int, default=1,
                        help='requests after the first, with the same vocabulary')
    parser.add_argument('--startup-timeout', type=float, default=300,
                        help='seconds to wait for the server to answer')
    parser.add_argument('--json', help='also write the figures here')
    return parser.parse_args(argv)


def random_checkpoint(config: str, path: Path) -> None:
    """The config's model with seeded random weights, saved as a state dict."""
    register_all_modules()
    torch.manual_seed(0)
    torch.save(MODELS.build(model_config(config)).state_dict(), path)


def start_server(args: argparse.Namespace, checkpoint: Path, tmp: Path, port: int):
    """``tools/webui.py`` serving ``checkpoint`` on 127.0.0.1:``port``; its output in a log."""
    threads = str(args.threads)
    env = {**os.environ, 'OMP_NUM_THREADS': threads, 'MKL_NUM_THREADS': threads,
           'GRADIO_TEMP_DIR': str(tmp / 'gradio')}
    with open(tmp / 'server.log', 'w') as log:
        process = subprocess.Popen(
            [sys.executable, str(WEBUI), args.config, str(checkpoint), '--port', str(port),
             '--max-classes', str(args.num_classes), '--text-cache', ''],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp)
    url = f'http://127.0.0.1:{port}/'
    deadline = time.monotonic() + args.startup_timeout
    while True:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f'the web app did not answer on {url}:\n'
                               f'{(tmp / "server.log").read_text()[-3000:]}')
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return process, url
        except OSError:
            time.sleep(0.5)


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def main(argv=None) -> int:
    args = parse_args(argv)
    from gradio_client import Client, handle_file
    vocabulary = ', '.join(f'object {i}' for i in range(args.num_classes))
    with tempfile.TemporaryDirectory(prefix='catseg_benchmark_webui_') as tmp:
        tmp = Path(tmp)
        random_checkpoint(args.config, tmp / 'random.pth')
        process, url = start_server(args, tmp / 'random.pth', tmp, free_port())
        try:
            client = Client(url, download_files=str(tmp / 'downloads'), verbose=False)
            seconds = []
            for _ in range(1 + args.repeats):
                start = time.perf_counter()
                _, summary = client.predict(handle_file(str(PHOTO)), vocabulary, args.mode,
                                            api_name='/segment')
                seconds.append(round(time.perf_counter() - start, 2))
        finally:
            process.terminate()
            process.wait(timeout=30)
    figures = dict(config=args.config, num_classes=len(summary['vocabulary']), mode=args.mode,
                   threads=args.threads, first_request_s=seconds[0],
                   repeated_vocabulary_s=seconds[1:], classes_present=len(summary['present']))
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
