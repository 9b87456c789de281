"""Shared pytest fixtures: parity fixture directories from the official CAT-Seg code."""
import json
import os
import random
from pathlib import Path
from typing import List, NamedTuple

import cat_seg  # noqa: F401,I001  (first: cat_seg.compat must run before mmseg.utils/models)
import pytest
import torch
from mmseg.utils import register_all_modules
from PIL import Image

# Build configs by mmseg type names, as tools/train.py does through default_scope='mmseg'.
register_all_modules(init_default_scope=True)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PARITY_DIR = REPO_ROOT.parent / 'shared' / 'fixtures' / 'catseg_parity'


class ParityFixture(NamedTuple):
    """One fixture directory in the format of ``../shared/fixtures/catseg_parity`` (see its README)."""

    path: Path
    config: dict        # config.json
    state_dict: dict    # official-layout checkpoint, state_dict.pt['model']
    cases: dict         # cases.pt: name -> {'inputs': ..., 'expected': ..., extras}


def parity_fixture_dirs() -> List[Path]:
    """Directories named by ``CATSEG_PARITY_FIXTURES`` (os.pathsep-separated), else the shared one.

    A named directory that does not exist is an error, never a skip: a parity test that silently
    runs on nothing cannot fail.
    """
    raw = os.environ.get('CATSEG_PARITY_FIXTURES', '')
    dirs = [Path(p) for p in raw.split(os.pathsep) if p] or [DEFAULT_PARITY_DIR]
    missing = [str(d) for d in dirs if not (d / 'config.json').is_file()]
    if missing:
        raise FileNotFoundError(
            f'parity fixture directories without config.json: {missing}; set '
            f'CATSEG_PARITY_FIXTURES to directories in the format of {DEFAULT_PARITY_DIR}')
    return dirs


_LOADED = {}


def load_parity_fixture(path: Path) -> ParityFixture:
    """Load (once per process) the config, official checkpoint and cases of a fixture directory."""
    if path not in _LOADED:
        config = json.loads((path / 'config.json').read_text())
        state_dict = torch.load(path / 'state_dict.pt', map_location='cpu')['model']
        cases = torch.load(path / 'cases.pt', map_location='cpu')
        _LOADED[path] = ParityFixture(path, config, state_dict, cases)
    return _LOADED[path]


@pytest.fixture(params=parity_fixture_dirs(), ids=lambda p: p.name)
def parity_fixture(request) -> ParityFixture:
    """Each parity fixture directory, loaded."""
    return load_parity_fixture(request.param)


SYNTHETIC_COLOURS = ((70, 130, 230), (60, 170, 60), (110, 110, 110))   # sky, grass, road (RGB)
TINY_CONFIG = REPO_ROOT / 'tests' / 'data' / 'catseg_tiny_synthetic.py'


def write_synthetic_dataset(root: Path, num_train: int = 4, num_val: int = 2,
                            size=(80, 96), seed: int = 0) -> Path:
    """Images of horizontal bands of three visually distinct classes, mmseg layout.

    ``img_dir/{train,val}/*.jpg`` and ``ann_dir/{train,val}/*.png`` (uint8 class ids), as
    mmseg's ``BaseSegDataset`` reads them.
    """
    rng = random.Random(seed)
    for split, count in (('train', num_train), ('val', num_val)):
        (root / 'img_dir' / split).mkdir(parents=True, exist_ok=True)
        (root / 'ann_dir' / split).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            height, width = size
            cuts = sorted(rng.sample(range(8, height - 8), 2))
            label = torch.zeros(size, dtype=torch.uint8)
            label[cuts[0]:cuts[1]], label[cuts[1]:] = 1, 2
            colours = torch.tensor(SYNTHETIC_COLOURS, dtype=torch.uint8)
            image = colours[label.long()]
            noise = torch.randint(-12, 13, image.shape, generator=torch.Generator().manual_seed(index))
            image = (image.int() + noise).clamp(0, 255).byte()
            Image.fromarray(image.numpy()).save(root / 'img_dir' / split / f'{index:03d}.jpg')
            Image.fromarray(label.numpy()).save(root / 'ann_dir' / split / f'{index:03d}.png')
    return root


@pytest.fixture
def synthetic_dataset(tmp_path) -> Path:
    """A tiny three-class dataset on disk (see :func:`write_synthetic_dataset`)."""
    return write_synthetic_dataset(tmp_path / 'synthetic')


def tiny_model_config() -> dict:
    """The model of ``tests/data/catseg_tiny_synthetic.py`` (real configs, tiny dimensions)."""
    from mmengine.config import Config
    return Config.fromfile(str(TINY_CONFIG)).model.to_dict()


@pytest.fixture
def tiny_catseg():
    """A freshly built tiny CATSeg with random weights (seeded)."""
    from mmseg.registry import MODELS
    torch.manual_seed(0)
    return MODELS.build(tiny_model_config())
