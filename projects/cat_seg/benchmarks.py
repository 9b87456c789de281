"""The zero-shot benchmarks of the paper (§4.1, Table 1), named once.

``configs/benchmarks/<name>.py`` holds each one's dataset; tools/benchmark.py and tools/demo.py
take the names and the vocabularies here."""
from pathlib import Path
from typing import Dict, List

from mmengine.config import Config
from mmseg.registry import DATASETS

from .configs import config_dir
from .engine.vocabulary_hook import dataset_vocabulary

# Benchmark -> the paper's column title, in the paper's column order.
BENCHMARKS: Dict[str, str] = {'ade847': 'A-847', 'pc459': 'PC-459', 'ade150': 'A-150',
                              'pc59': 'PC-59', 'voc20': 'PAS-20', 'voc20b': 'PAS-20b'}
# Datasets named by vocabulary besides the benchmarks: the training set (COCO-Stuff-171).
TRAINING_DATASETS: Dict[str, dict] = {'coco171': dict(type='COCOStuffDataset')}
VOCABULARY_NAMES: List[str] = [*BENCHMARKS, *TRAINING_DATASETS]


def benchmark_config(name: str) -> Path:
    """``configs/benchmarks/<name>.py``: the benchmark's test data, metric and sliding protocol."""
    if name not in BENCHMARKS:
        raise ValueError(f'benchmark {name!r} is not one of {list(BENCHMARKS)}')
    return config_dir() / 'benchmarks' / f'{name}.py'


def benchmark_dataset(name: str) -> dict:
    """The test dataset config of benchmark ``name``."""
    return Config.fromfile(str(benchmark_config(name))).test_dataloader.dataset.to_dict()


def named_vocabulary(name: str) -> List[str]:
    """The names a model predicts over on dataset ``name`` (``VOCABULARY_NAMES``), as
    ``CATSegVocabularyHook`` gives them: the dataset's metainfo, e.g. PAS-20 without VOC's
    background, PAS-20b's 59-name vocabulary, A-847's category file.

    Raises:
        ValueError: If ``name`` is unknown.
        FileNotFoundError: A-847 or PC-459 before its preparation script wrote the category file.
    """
    if name not in VOCABULARY_NAMES:
        raise ValueError(f'dataset {name!r} is not one of {VOCABULARY_NAMES}')
    dataset = TRAINING_DATASETS.get(name) or benchmark_dataset(name)
    # No images are read (lazy_init, no pipeline); mmseg's VOC and Context classes still refuse to be built
    # without their image folders, so the class table is read where it is fixed.
    dataset_type = DATASETS.get(dataset['type'])
    if dataset_type.METAINFO.get('classes'):
        return dataset_vocabulary(dataset_type)
    return dataset_vocabulary(DATASETS.build(dict(dataset, pipeline=[], lazy_init=True)))
