"""Evaluate a checkpoint on the six zero-shot benchmarks and write the paper's Markdown table.

    python tools/benchmark.py CONFIG CHECKPOINT [--nproc N] [--benchmarks ade847 pc459 ...]
        [--work-dir DIR] [--save-predictions] [--cfg-options ...]

Each benchmark is one ``tools/test.py CONFIG CHECKPOINT --benchmark configs/benchmarks/<b>.py``
run (``tools/dist_test.sh`` with ``--nproc`` > 1), so its log, metrics and failures stay separate.
Columns follow the paper (A-847, PC-459, A-150, PC-59, PAS-20, PAS-20b); the values are the
paper-compatible mIoU (``CATSegIoUMetric``'s ``mIoU``). Data roots are the benchmark configs'
(``data/...`` relative to the working directory, as in MMSeg). The table goes to
``WORK_DIR/benchmarks.md``; benchmarks that were not requested show "-", requested ones without
data "no data". The exit status is 1 when a requested benchmark failed or had no data.

Before the first run, the data of every requested benchmark is checked as tools/test.py checks it
(images and annotations pair up and decode); a problem stops the tool with an ``error:`` line and
exit status 2 before anything is evaluated. ``--allow-unpaired`` is passed on to tools/test.py.
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Union

import cat_seg  # noqa: F401  (first: registers CAT-Seg and applies cat_seg.compat)
from cat_seg.benchmarks import BENCHMARKS, benchmark_config, benchmark_dataset
from cat_seg.cli import main_guard
from cat_seg.datasets.pairing import check_test_data

TOOLS = Path(__file__).resolve().parent


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='model config')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--benchmarks', nargs='+', choices=list(BENCHMARKS),
                        default=list(BENCHMARKS), help='subset to evaluate (default: all six)')
    parser.add_argument('--nproc', type=int, default=1, help='processes (dist_test.sh) per run')
    parser.add_argument('--work-dir', type=Path, default=Path('work_dirs/benchmarks'),
                        help='logs, metrics and benchmarks.md go here')
    parser.add_argument('--save-predictions', action='store_true',
                        help='keep each benchmark\'s label maps in '
                        'WORK_DIR/<benchmark>/predictions')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='passed on to every tools/test.py run')
    parser.add_argument('--allow-unpaired', action='store_true',
                        help='evaluate only the images that have an annotation (and the '
                        'reverse), as tools/test.py --allow-unpaired')
    return parser.parse_args(argv)


def evaluate(args: argparse.Namespace, benchmark: str) -> Optional[float]:
    """One tools/test.py run; its paper-compatible mIoU, or None if it failed."""
    work_dir = args.work_dir / benchmark
    work_dir.mkdir(parents=True, exist_ok=True)
    metrics_file = work_dir / 'metrics.json'
    metrics_file.unlink(missing_ok=True)
    options = ['--benchmark', str(benchmark_config(benchmark)),
               '--work-dir', str(work_dir), '--metrics-json', str(metrics_file)]
    if args.save_predictions:
        options += ['--out', str(work_dir / 'predictions')]
    if args.allow_unpaired:
        options += ['--allow-unpaired']
    if args.cfg_options:
        options += ['--cfg-options', *args.cfg_options]
    if args.nproc > 1:
        command = ['bash', str(TOOLS / 'dist_test.sh'), args.config, args.checkpoint,
                   str(args.nproc), *options]
    else:
        command = [sys.executable, str(TOOLS / 'test.py'), args.config, args.checkpoint, *options]
    with open(work_dir / 'benchmark.log', 'w') as log:
        status = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT,
                                env=dict(os.environ, PYTHON=sys.executable)).returncode
    if status != 0 or not metrics_file.is_file():
        return None
    return json.loads(metrics_file.read_text())['mIoU']


def markdown_table(config: str, checkpoint: str, results: Dict[str, Union[float, str]]) -> str:
    """The paper's column order; a benchmark not run shows '-', a failed one its problem."""
    def cell(name: str) -> str:
        value = results.get(name, '-')
        return value if isinstance(value, str) else f'{value:.1f}'

    header = '| model | ' + ' | '.join(BENCHMARKS.values()) + ' |'
    rule = '|---|' + '---|' * len(BENCHMARKS)
    row = f'| {Path(config).stem} | ' + ' | '.join(cell(b) for b in BENCHMARKS) + ' |'
    return '\n'.join([f'mIoU (detectron2 definition) of `{checkpoint}`:', '', header, rule, row])


def check_benchmark_data(benchmarks: List[str], allow_unpaired: bool) -> None:
    """The files of each benchmark that has data pair up and decode (``check_test_data``)."""
    for benchmark in benchmarks:
        dataset = benchmark_dataset(benchmark)
        if Path(dataset['data_root']).is_dir():
            print(f'{BENCHMARKS[benchmark]}: checking the data ...', flush=True)
            check_test_data(dataset, allow_unpaired)


def main(argv=None) -> int:
    args = parse_args(argv)
    with main_guard(debug=False):
        for path, what in ((args.config, 'config'), (args.checkpoint, 'checkpoint')):
            if not Path(path).is_file():
                raise FileNotFoundError(f'{what} {path!r} does not exist')
        check_benchmark_data(args.benchmarks, args.allow_unpaired)
    results: Dict[str, Union[float, str]] = {}
    problems: List[str] = []
    for benchmark in args.benchmarks:
        name, root = BENCHMARKS[benchmark], Path(benchmark_dataset(benchmark)['data_root'])
        if not root.is_dir():
            results[benchmark] = 'no data'
            problems.append(f'{name}: no data at {root.resolve()} (prepare it as the README\'s '
                            '"Datasets" section says)')
            continue
        print(f'{name}: evaluating ...', flush=True)
        miou = evaluate(args, benchmark)
        if miou is None:
            results[benchmark] = 'failed'
            problems.append(f'{name}: tools/test.py failed, see '
                            f'{args.work_dir / benchmark / "benchmark.log"}')
        else:
            results[benchmark] = miou
            print(f'{name}: mIoU {miou:.2f}', flush=True)
    table = markdown_table(args.config, args.checkpoint, results)
    (args.work_dir / 'benchmarks.md').parent.mkdir(parents=True, exist_ok=True)
    (args.work_dir / 'benchmarks.md').write_text(table + '\n')
    print(f'\n{table}\n\nwritten to {args.work_dir / "benchmarks.md"}')
    for problem in problems:
        print(f'error: {problem}', file=sys.stderr)
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
