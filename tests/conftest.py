"""Shared pytest fixtures (helpers live in catseg_testing.py)."""
import catseg_testing  # noqa: F401,I001  (first: imports cat_seg, whose compat must run first)
import re

import pytest
import torch
from mmseg.registry import MODELS
from mmseg.utils import register_all_modules

from cat_seg.compat import DORMANT_STACK_NOTICES
from cat_seg.weights.convert_release import convert_official_state_dict
from catseg_testing import (ParityFixture, catseg_config_from_fixture, load_parity_fixture,
                            parity_fixture_dirs, tiny_model_config)

# Build configs by mmseg type names, as tools/train.py does through default_scope='mmseg'.
register_all_modules(init_default_scope=True)


def pytest_configure(config):
    """The tools' filter of the dormant stack's notices, for in-process tests too: pytest
    imports this file inside its own warnings context, which drops the filters set on import."""
    for start, category in DORMANT_STACK_NOTICES:
        config.addinivalue_line('filterwarnings', f'ignore:{re.escape(start)}:{category.__name__}')


@pytest.fixture(params=parity_fixture_dirs(), ids=lambda p: p.name)
def parity_fixture(request) -> ParityFixture:
    """Each parity fixture directory, loaded."""
    return load_parity_fixture(request.param)


@pytest.fixture(params=['plain', 'cpu'])
def parity_model(request, parity_fixture):
    """The fixture's model with its converted official weights (strict load), in eval mode,
    under each execution plan."""
    config = catseg_config_from_fixture(parity_fixture.config)
    model = MODELS.build(dict(config, execution=request.param))
    model.load_state_dict(convert_official_state_dict(parity_fixture.state_dict))
    return model.eval()


@pytest.fixture
def tiny_catseg():
    """A freshly built tiny CATSeg with random weights (seeded)."""
    torch.manual_seed(0)
    return MODELS.build(tiny_model_config())


@pytest.fixture
def fixture_config(parity_fixture, tmp_path):
    """A config file holding the parity fixture's model, as a user's config would."""
    from mmengine.config import Config
    path = tmp_path / 'fixture_model.py'
    Config(dict(model=catseg_config_from_fixture(parity_fixture.config),
                custom_imports=dict(imports=['cat_seg']))).dump(str(path))
    return path


@pytest.fixture
def autocast_requests(monkeypatch):
    """The ``test_cfg.precision`` of every forward pass from now on, as CATSeg asks for its
    autocast dtype (the answer is unchanged)."""
    from cat_seg.models.segmentor import catseg
    seen, resolve = [], catseg.autocast_dtype
    monkeypatch.setattr(catseg, 'autocast_dtype', lambda precision, device_type:
                        seen.append(precision) or resolve(precision, device_type))
    return seen
