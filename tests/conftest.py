"""Shared pytest fixtures: parity fixture directories from the official CAT-Seg code."""
import json
import os
from pathlib import Path
from typing import List, NamedTuple

import cat_seg  # noqa: F401,I001  (first: cat_seg.compat must run before mmseg.utils/models)
import pytest
import torch
from mmseg.utils import register_all_modules

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
