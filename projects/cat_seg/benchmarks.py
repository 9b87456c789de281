"""The zero-shot benchmarks of the paper (§4.1, Table 1), named once.

``configs/benchmarks/<name>.py`` holds each one's dataset; tools/benchmark.py takes the names here,
and ``cat_seg.vocabulary`` the vocabularies of their datasets."""
from pathlib import Path
from typing import Dict

from mmengine.config import Config

from .configs import config_dir

# Benchmark -> the paper's column title, in the paper's column order.
BENCHMARKS: Dict[str, str] = {'ade847': 'A-847', 'pc459': 'PC-459', 'ade150': 'A-150',
                              'pc59': 'PC-59', 'voc20': 'PAS-20', 'voc20b': 'PAS-20b'}


def benchmark_config(name: str) -> Path:
    """``configs/benchmarks/<name>.py``: the benchmark's test data, metric and sliding protocol."""
    if name not in BENCHMARKS:
        raise ValueError(f'benchmark {name!r} is not one of {list(BENCHMARKS)}')
    return config_dir() / 'benchmarks' / f'{name}.py'


def benchmark_dataset(name: str) -> dict:
    """The test dataset config of benchmark ``name``."""
    return Config.fromfile(str(benchmark_config(name))).test_dataloader.dataset.to_dict()
